#!/usr/bin/env python3
# The shared cache, the basics: a miss is stored while it streams and the next request is
# a hit the origin never sees; Age on hits; X-Cache-Status and the access log's cache
# field; HEAD answered from a stored GET; a client's own conditional answered 304 from the
# store; freshness from s-maxage, max-age, Expires and the route's default_ttl_s.
import os, re, sys, threading, time
from email.utils import formatdate
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *
from cachetest import *

o = CountingOrigin()
ETAG = '"v1"'
LM = "Mon, 01 Jan 2024 00:00:00 GMT"
o.set("/c/a", headers=[("Cache-Control", "max-age=60"), ("ETag", ETAG),
                       ("Last-Modified", LM), ("X-Origin", "yes")], body=b"A" * 1000)
o.set("/c/smax", headers=[("Cache-Control", "s-maxage=60, max-age=0")], body=b"S")
NOW = time.time()
o.set("/c/exp", headers=[("Date", formatdate(NOW, usegmt=True)),
                         ("Expires", formatdate(NOW + 60, usegmt=True))], body=b"E")
o.set("/c/exp-old", headers=[("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                             ("Expires", "Mon, 01 Jan 2024 00:01:00 GMT")], body=b"X")
o.set("/c/plain", body=b"P")
o.set("/c/big", headers=[("Cache-Control", "max-age=60")], body=bytes(range(256)) * 2000)
o.set("/c/age", headers=[("Cache-Control", "max-age=60"), ("Age", "10")], body=b"G")
o.set("/other", headers=[("Cache-Control", "max-age=60")], body=b"O")

HALF = 100000
release = threading.Event()


def streaming(org, c, req):
    """Half the body, then the rest only once the test has seen the first half arrive."""
    body = bytes(range(256)) * (2 * HALF // 256 + 1)
    body = body[:2 * HALF]
    c.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body[:HALF])
    release.wait(10)
    c.sendall(body[HALF:])
    return True


so = Origin(streaming)
BIG = 300000
o.set("/c/store-big", headers=[("Cache-Control", "max-age=60")], body=b"s" * BIG)
o.set("/c/nostore-big", headers=[("Cache-Control", "no-store")], body=b"n" * BIG)

p = Portico(proxy_config(
    [upstream("app", [o.address]), upstream("stream", [so.address])],
    [proxy_route("stream", "/c/stream", cache="{ default_ttl_s = 30; }"),
     proxy_route("app", "/c/", cache="{ default_ttl_s = 30; }"), proxy_route("app", "/")],
    extra="cache = { size_mb = 8; };"))
w = the_worker(p)

r = p.get("/c/a")
is_((r.status, r.body), (200, b"A" * 1000), "a miss: the origin's answer")
is_(r.header("X-Cache-Status"), "MISS", "X-Cache-Status: MISS")
is_(r.header("X-Origin"), "yes", "the origin's fields")
r = p.get("/c/a")
is_((r.status, r.body), (200, b"A" * 1000), "then a hit: the same body")
is_(r.header("X-Cache-Status"), "HIT", "X-Cache-Status: HIT")
is_(r.header("X-Origin"), "yes", "the stored fields")
is_(r.header("ETag"), ETAG, "ETag stored")
like(r.header("Age") or "", r"^\d+$", "Age on a hit")
is_(r.headers.count("Content-Length"), 1, "one Content-Length")
is_(o.hits("/c/a"), 1, "the origin saw one request")

# the access log's cache field
lines = p.wait_access_log(2)
like(lines[0], r" MISS$", "access log: MISS")
like(lines[1], r" HIT$", "access log: HIT")

# query strings are part of the default key
r = p.get("/c/a?x=1")
is_(r.header("X-Cache-Status"), "MISS", "another query: another object")
is_(o.hits("/c/a"), 2, "the origin saw it")

# HEAD from the stored GET
r = p.get("/c/a", method="HEAD")
is_((r.status, r.body), (200, b""), "HEAD from the stored GET: 200, no body")
is_(r.header("Content-Length"), "1000", "with the stored length")
is_(r.header("X-Cache-Status"), "HIT", "a HIT")
is_(o.hits("/c/a"), 2, "the origin not asked")

# HEAD of an unknown key goes to the origin and stores nothing
r = p.get("/c/plain", method="HEAD")
is_((r.status, r.header("X-Cache-Status")), (200, "MISS"), "HEAD miss: to the origin")
r = p.get("/c/plain")
is_((r.body, r.header("X-Cache-Status")), (b"P", "MISS"), "the GET after it is still a miss")
r = p.get("/c/plain")
is_((r.body, r.header("X-Cache-Status")), (b"P", "HIT"),
    "no freshness from the origin: default_ttl_s = 30 applies")
is_(o.hits("/c/plain"), 2, "origin: the HEAD and one GET")

# client conditionals answered from the store
r = p.get("/c/a", headers=[("If-None-Match", ETAG)])
is_((r.status, r.body), (304, b""), "If-None-Match matching the stored ETag: 304")
is_(r.header("ETag"), ETAG, "the 304 carries the ETag")
is_(r.header("X-Cache-Status"), "HIT", "from the store")
r = p.get("/c/a", headers=[("If-None-Match", '"other"')])
is_((r.status, len(r.body)), (200, 1000), "a different ETag: the full response")
r = p.get("/c/a", headers=[("If-Modified-Since", LM)])
is_(r.status, 304, "If-Modified-Since at Last-Modified: 304")
r = p.get("/c/a", headers=[("If-Modified-Since", "Sun, 31 Dec 2023 00:00:00 GMT")])
is_(r.status, 200, "If-Modified-Since before Last-Modified: 200")
is_(o.hits("/c/a"), 2, "none of those reached the origin")

# a client conditional on a miss: the origin's full answer is stored, the client gets 304
r = p.get("/c/a?cond", headers=[("If-None-Match", ETAG)])
is_((r.status, r.header("X-Cache-Status")), (304, "MISS"), "conditional miss: 304 to the client")
req = o.requests_for("/c/a")[-1]
is_(req.header("If-None-Match"), None, "the client's conditional not sent to the origin")
r = p.get("/c/a?cond")
is_((r.status, len(r.body), r.header("X-Cache-Status")), (200, 1000, "HIT"),
    "the full response was stored")

# s-maxage over max-age; Expires - Date
p.get("/c/smax")
r = p.get("/c/smax")
is_((r.body, r.header("X-Cache-Status")), (b"S", "HIT"), "s-maxage=60 wins over max-age=0")
p.get("/c/exp")
r = p.get("/c/exp")
is_((r.body, r.header("X-Cache-Status")), (b"E", "HIT"), "Expires - Date = 60 s: stored")
p.get("/c/exp-old")
r = p.get("/c/exp-old")
is_((r.body, r.header("X-Cache-Status")), (b"X", "EXPIRED"),
    "Expires - Date = 60 s but Date two years ago: the apparent age makes it stale")

# Age: the origin's Age counts
p.get("/c/age")
r = p.get("/c/age")
ok(int(r.header("Age") or 0) >= 10, "Age includes the origin's Age (10)")

# a body over the inline size: chunks
r = p.get("/c/big")
is_((r.status, sha(r.body)), (200, sha(bytes(range(256)) * 2000)), "512000 bytes: a miss")
r = p.get("/c/big")
is_((r.header("X-Cache-Status"), sha(r.body)), ("HIT", sha(bytes(range(256)) * 2000)),
    "and a hit with the same bytes")
is_(o.hits("/c/big"), 1, "origin once")

# a route without cache: untouched
r = p.get("/other")
r = p.get("/other")
is_((r.body, r.header("X-Cache-Status")), (b"O", None), "uncached route: no X-Cache-Status")
is_(o.hits("/other"), 2, "and every request goes to the origin")

# a miss streams to its client while it is stored
with p.connect() as c:
    c.send(build_request("GET", "/c/stream", "a.example"))
    got = b""
    deadline = time.monotonic() + 5
    while len(got) < HALF and time.monotonic() < deadline:
        got += c.read_available(0.1)
    ok(len(got) >= HALF, "a miss: the first half of the body reached the client while the "
       "origin holds back the rest (%d bytes)" % len(got))
    release.set()
    head_len = got.index(b"\r\n\r\n") + 4
    deadline = time.monotonic() + 10
    while len(got) - head_len < 2 * HALF and time.monotonic() < deadline:
        got += c.read_available(0.1)
    is_(len(got) - head_len, 2 * HALF, "then the rest")
body = bytes(range(256)) * (2 * HALF // 256 + 1)
r = p.get("/c/stream")
is_((r.header("X-Cache-Status"), sha(r.body)), ("HIT", sha(body[:2 * HALF])),
    "and once complete it was stored whole")

# responses that are not stored still go by splice; stored ones through the filter
p0 = pipe_count(w)
r = p.get("/c/store-big")
is_((r.status, len(r.body), r.header("X-Cache-Status")), (200, BIG, "MISS"),
    "a storable 300000-byte miss")
is_(pipe_count(w), p0, "...copied through the cache's filter (no splice pipe taken)")
r = p.get("/c/nostore-big")
is_((r.status, len(r.body), r.header("X-Cache-Status")), (200, BIG, "MISS"),
    "a 300000-byte no-store response on the cached route")
cmp_ok(pipe_count(w), ">", p0, "...relayed by splice (the filter went off for it)")

done_testing()
