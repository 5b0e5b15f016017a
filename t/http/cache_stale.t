#!/usr/bin/env python3
# Stale objects: revalidation with ETag and Last-Modified (REVALIDATED, the 304 refreshing
# the stored head), refetching without validators (EXPIRED), stale-while-revalidate (STALE
# at once, one background refresh for everyone, UPDATING meanwhile), stale-if-error (the
# origin answering 5xx, or down), must-revalidate forbidding both.
import os, re, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *
from cachetest import *

o = CountingOrigin()
o2 = CountingOrigin()           # the origin that goes down
LM = "Mon, 01 Jan 2024 00:00:00 GMT"
o.set("/c/etag", headers=[("Cache-Control", "max-age=1"), ("ETag", '"e1"'),
                          ("X-Version", "1")], body=b"etag body")
BIGB = bytes(range(256)) * 1000
o.set("/c/bigetag", headers=[("Cache-Control", "max-age=1"), ("ETag", '"b1"')], body=BIGB)
o.set("/c/bigsie", headers=[("Cache-Control", "max-age=1, stale-if-error=300")], body=BIGB)
o.set("/c/maxstale", headers=[("Cache-Control", "max-age=1")], body=b"ms")
o.set("/c/minfresh", headers=[("Cache-Control", "max-age=60")], body=b"mf")
o.set("/t/slow", headers=[("Cache-Control", "max-age=1, stale-if-error=300")], body=b"slow")
o.set("/c/lm", headers=[("Cache-Control", "max-age=1"), ("Last-Modified", LM)], body=b"lm")
o.set("/c/noval", headers=[("Cache-Control", "max-age=1")], body=b"v1")
o.set("/c/changed", headers=[("Cache-Control", "max-age=1"), ("ETag", '"c1"')], body=b"c1")
o.set("/c/swr", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")],
      body=b"old")
o.set("/c/swr304", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30"),
                            ("ETag", '"w1"')], body=b"swr304")
o.set("/c/sie", headers=[("Cache-Control", "max-age=1, stale-if-error=300")], body=b"sie")
o.set("/c/mr", headers=[("Cache-Control", "max-age=1, stale-if-error=300, must-revalidate")],
      body=b"mr")
o.set("/c/nosie", headers=[("Cache-Control", "max-age=1")], body=b"nosie")
o2.set("/d/x", headers=[("Cache-Control", "max-age=1, stale-if-error=300")], body=b"down")
o2.set("/d/y", headers=[("Cache-Control", "max-age=1")], body=b"gone")

p = Portico(proxy_config(
    [upstream("app", [o.address]), upstream("down", [o2.address]),
     upstream("short", [o.address], read_timeout_ms=300)],
    [proxy_route("short", "/t/", cache="{ default_ttl_s = 0; }"),
     proxy_route("app", "/c/", cache="{ default_ttl_s = 0; }"),
     proxy_route("down", "/d/", cache="{ default_ttl_s = 0; }")],
    extra="cache = { size_mb = 8; };"))

paths = ["/t/slow", "/c/maxstale", "/c/minfresh", "/c/bigetag", "/c/bigsie", "/c/swr304", "/c/etag", "/c/lm", "/c/noval", "/c/changed", "/c/swr", "/c/sie", "/c/mr",
         "/c/nosie", "/d/x", "/d/y"]
for path in paths:
    r = p.get(path)
    is_(r.header("X-Cache-Status"), "MISS", "%s: stored" % path)
for path in paths:
    r = p.get(path)
    is_(r.header("X-Cache-Status"), "HIT", "%s: fresh for max-age=1" % path)
time.sleep(2.1)                  # the objects age past max-age=1 (not a synchronisation)

# ETag
o.set("/c/etag", headers=[("Cache-Control", "max-age=60"), ("ETag", '"e1"'),
                          ("X-Version", "2")], body=b"etag body")
r = p.get("/c/etag")
is_((r.status, r.body, r.header("X-Cache-Status")), (200, b"etag body", "REVALIDATED"),
    "ETag: revalidated, the client gets the full stored response")
is_(o.revalidations("/c/etag"), 1, "the origin answered 304")
is_(o.requests_for("/c/etag")[-1].header("If-None-Match"), '"e1"', "to If-None-Match")
is_(r.header("X-Version"), "2", "the 304's fields replace the stored ones")
r = p.get("/c/etag")
is_((r.body, r.header("X-Cache-Status")), (b"etag body", "HIT"),
    "the refreshed object is fresh again (max-age=60 from the 304)")
is_(o.hits("/c/etag"), 2, "origin: the miss and the revalidation")
r = p.get("/c/etag", headers=[("If-None-Match", '"e1"')])
is_(r.status, 304, "a client's conditional on it: 304")

# the client's own limits
r = p.get("/c/maxstale", headers=[("Cache-Control", "max-stale=100")])
is_((r.body, r.header("X-Cache-Status")), (b"ms", "STALE"),
    "a request with max-stale=100 takes the stale object")
is_(o.hits("/c/maxstale"), 1, "without asking the origin")
r = p.get("/c/minfresh", headers=[("Cache-Control", "min-fresh=1000")])
is_(r.header("X-Cache-Status"), "EXPIRED", "min-fresh=1000 on an object fresh for < 60 s: "
    "fetched again")
r = p.get("/c/minfresh", headers=[("Cache-Control", "max-age=30")])
is_(r.header("X-Cache-Status"), "HIT", "max-age=30 on the object just fetched: a hit")
r = p.get("/c/minfresh", headers=[("Cache-Control", "max-age=0")])
is_(r.header("X-Cache-Status"), "EXPIRED", "max-age=0: fetched again")
is_(o.hits("/c/minfresh"), 3, "the origin saw those two")

# a big body (256000 bytes, sent in pieces from the store)
r = p.get("/c/bigetag")
is_((r.status, sha(r.body), r.header("X-Cache-Status")), (200, sha(BIGB), "REVALIDATED"),
    "a 256000-byte object revalidated: every byte from the store")
r = p.get("/c/bigetag")
is_((sha(r.body), r.header("X-Cache-Status")), (sha(BIGB), "HIT"), "and stored again whole")
o.set("/c/bigsie", 500, headers=[], body=b"err")
r = p.get("/c/bigsie")
is_((r.status, sha(r.body), r.header("X-Cache-Status")), (200, sha(BIGB), "STALE"),
    "a 256000-byte stale object standing in for a 500")

# Last-Modified
r = p.get("/c/lm")
is_((r.body, r.header("X-Cache-Status")), (b"lm", "REVALIDATED"), "Last-Modified: revalidated")
is_(o.requests_for("/c/lm")[-1].header("If-Modified-Since"), LM, "with If-Modified-Since")

# no validators: refetched
o.set("/c/noval", headers=[("Cache-Control", "max-age=60")], body=b"v2")
r = p.get("/c/noval")
is_((r.body, r.header("X-Cache-Status")), (b"v2", "EXPIRED"), "no validator: refetched")
is_(o.requests_for("/c/noval")[-1].header("If-None-Match"), None, "unconditionally")
r = p.get("/c/noval")
is_((r.body, r.header("X-Cache-Status")), (b"v2", "HIT"), "the new answer stored")

# the origin has something new: 200 to our conditional
o.set("/c/changed", headers=[("Cache-Control", "max-age=60"), ("ETag", '"c2"')], body=b"c2")
r = p.get("/c/changed")
is_((r.body, r.header("X-Cache-Status")), (b"c2", "EXPIRED"), "a new version: EXPIRED, stored")
r = p.get("/c/changed")
is_((r.body, r.header("ETag"), r.header("X-Cache-Status")), (b"c2", '"c2"', "HIT"),
    "the new version is served")

# stale-while-revalidate
o.set("/c/swr", headers=[("Cache-Control", "max-age=60")], body=b"new")
o.delay("/c/swr", 1.0)
mark = p.log_mark()
r = p.get("/c/swr")
is_((r.body, r.header("X-Cache-Status")), (b"old", "STALE"),
    "stale-while-revalidate: the stale object at once")
r = p.get("/c/swr")
is_((r.body, r.header("X-Cache-Status")), (b"old", "UPDATING"),
    "while the refresh runs: UPDATING")
ok(p.wait_log(r"cache: background refresh of /c/swr: stored", start=mark),
   "the background refresh stored the new answer")
r = p.get("/c/swr")
is_((r.body, r.header("X-Cache-Status")), (b"new", "HIT"), "then the new one is a hit")
is_(o.hits("/c/swr"), 2, "the origin saw exactly one background refresh")
o.delay("/c/swr", 0)

# stale-while-revalidate, and the background refresh gets a 304
o.set("/c/swr304", headers=[("Cache-Control", "max-age=60"), ("ETag", '"w1"')], body=b"swr304")
mark = p.log_mark()
r = p.get("/c/swr304")
is_((r.body, r.header("X-Cache-Status")), (b"swr304", "STALE"), "stale-while-revalidate: STALE")
ok(p.wait_log(r"cache: background refresh of /c/swr304: revalidated \(304\)", start=mark),
   "the background refresh revalidated it (304)")
is_(o.requests_for("/c/swr304")[-1].header("If-None-Match"), '"w1"',
    "with the stored ETag")
r = p.get("/c/swr304")
is_((r.body, r.header("X-Cache-Status")), (b"swr304", "HIT"), "then fresh again: HIT")
is_(o.hits("/c/swr304"), 2, "origin: the miss and the one refresh")

# stale-if-error: the origin answers 5xx
o.set("/c/swr304", headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30"),
                            ("ETag", '"w1"')], body=b"swr304")
o.set("/c/sie", 503, headers=[], body=b"busy")
o.set("/c/mr", 503, headers=[], body=b"busy")
o.set("/c/nosie", 503, headers=[], body=b"busy")
mark = p.log_mark()
r = p.get("/c/sie")
is_((r.status, r.body, r.header("X-Cache-Status")), (200, b"sie", "STALE"),
    "stale-if-error: the origin's 503 replaced by the stale object")
ok(p.wait_log(r"cache: origin answered 503: the stale response is served", start=mark),
   "logged")
r = p.get("/c/mr")
is_((r.status, r.body), (503, b"busy"), "must-revalidate: never stale, the 503 passes")
r = p.get("/c/nosie")
is_((r.status, r.header("X-Cache-Status")), (503, "EXPIRED"), "no stale-if-error: the 503")

# stale-if-error: the origin times out (read_timeout_ms = 300)
o.delay("/t/slow", 2.0)
mark = p.log_mark()
r = p.get("/t/slow")
is_((r.status, r.body, r.header("X-Cache-Status")), (200, b"slow", "STALE"),
    "origin timing out: the stale object instead of the 504")
ok(p.wait_log(r"cache: origin answered 504: the stale response is served", start=mark),
   "logged")
o.delay("/t/slow", 0)

# stale-if-error: the origin is down
o2.stop()
r = p.get("/d/x")
is_((r.status, r.body, r.header("X-Cache-Status")), (200, b"down", "STALE"),
    "origin down: the stale object (stale-if-error=300)")
r = p.get("/d/y")
is_(r.status, 502, "without stale-if-error: 502")

done_testing()
