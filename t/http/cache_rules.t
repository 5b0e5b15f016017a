#!/usr/bin/env python3
# What the shared cache does not store (no-store, private, Set-Cookie, Authorization,
# Vary: *, statuses, default_ttl_s = 0, objects over max_object_size), what it stores in
# spite of it (public / s-maxage with Authorization, store_set_cookie), Vary variants,
# no-cache and must-revalidate, a client's no-cache, unsafe methods invalidating, and the
# route's status_header = false.
import os, re, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *
from cachetest import *

o = CountingOrigin()
M60 = ("Cache-Control", "max-age=60")
o.set("/c/nostore", headers=[("Cache-Control", "no-store, max-age=60")], body=b"n")
o.set("/c/private", headers=[("Cache-Control", "private, max-age=60")], body=b"p")
o.set("/c/cookie", headers=[M60, ("Set-Cookie", "a=b")], body=b"k")
o.set("/c/auth", headers=[M60], body=b"a")
o.set("/c/authpub", headers=[("Cache-Control", "public, max-age=60")], body=b"ap")
o.set("/c/authsmax", headers=[("Cache-Control", "s-maxage=60")], body=b"as")
o.set("/c/varystar", headers=[M60, ("Vary", "*")], body=b"v")
o.set("/c/s500", 500, headers=[M60], body=b"e")
o.set("/c/s302", 302, headers=[("Location", "/x")], body=b"r")
o.set("/c/s404", 404, headers=[], body=b"nf")
o.set("/c/nottl", body=b"t")
o.set("/c/max", headers=[M60], body=b"x" * 5000)
o.set("/c/maxchunked", headers=[M60], body=b"y" * 5000, chunked=True)
o.set("/c/smallchunked", headers=[M60], body=b"z" * 3000, chunked=True)
o.set("/c/vary", headers=[M60, ("Vary", "Accept-Encoding")],
      body=lambda o, req: ("enc=%s" % (req.header("Accept-Encoding") or "none")).encode())
o.set("/c/nocache", headers=[("Cache-Control", "no-cache"), ("ETag", '"n1"')], body=b"nc")
o.set("/c/post", headers=[M60], body=b"post")
o.set("/c/lock", body=b"L")
o.delay("/c/lock", 2.0)
o.set("/c/hide", headers=[M60], body=b"h")
o.set("/sc/cookie", headers=[M60, ("Set-Cookie", "a=b")], body=b"sk")

p = Portico(cache_config(
    o, route_cache="default_ttl_s = 0;", main_cache="size_mb = 8; max_object_size = 4096;",
    extra_routes=[proxy_route("app", "/c/hide", cache="{ status_header = false; }"),
                  proxy_route("app", "/c/lock", cache="{ default_ttl_s = 60; "
                                                      "lock_timeout_ms = 300; }"),
                  proxy_route("app", "/sc/", cache="{ store_set_cookie = true; }")]))


def twice(path, headers=()):
    a = p.get(path, headers=list(headers))
    b = p.get(path, headers=list(headers))
    return a, b


for path, why in [("/c/nostore", "no-store"), ("/c/private", "private"),
                  ("/c/cookie", "Set-Cookie"), ("/c/varystar", "Vary: *"),
                  ("/c/s500", "status 500"), ("/c/s302", "302 without explicit freshness"),
                  ("/c/nottl", "no freshness and default_ttl_s = 0")]:
    mark = p.log_mark()
    a, b = twice(path)
    is_((a.header("X-Cache-Status"), b.header("X-Cache-Status")), ("MISS", "MISS"),
        "%s: not stored (MISS twice)" % why)
    is_(o.hits(path), 2, "%s: the origin saw both" % why)
    ok(p.wait_log(r"cache: response \d+ not stored: ", start=mark),
       "%s: the debug log says why" % why)

a, b = twice("/c/s404")
is_(b.header("X-Cache-Status"), "MISS", "404 without freshness and default_ttl_s 0: not stored")

# Authorization: not stored, not served from another's entry; public / s-maxage are
a, b = twice("/c/auth", [("Authorization", "Basic eDp5")])
is_((b.header("X-Cache-Status"), o.hits("/c/auth")), ("MISS", 2),
    "with Authorization: not stored")
a, b = twice("/c/authpub", [("Authorization", "Basic eDp5")])
is_((b.header("X-Cache-Status"), o.hits("/c/authpub")), ("HIT", 1),
    "with Authorization and public: stored")
a, b = twice("/c/authsmax", [("Authorization", "Basic eDp5")])
is_((b.header("X-Cache-Status"), o.hits("/c/authsmax")), ("HIT", 1),
    "with Authorization and s-maxage: stored")
p.get("/c/auth")
r = p.get("/c/auth", headers=[("Authorization", "Basic eDp5")])
is_(r.header("X-Cache-Status"), "MISS",
    "stored without Authorization: a request with Authorization still goes to the origin")

# store_set_cookie
a, b = twice("/sc/cookie")
is_((b.header("X-Cache-Status"), o.hits("/sc/cookie")), ("HIT", 1),
    "store_set_cookie = true: stored")
is_(b.header("Set-Cookie"), None, "but the Set-Cookie field is never served from the store")

# max_object_size
mark = p.log_mark()
a, b = twice("/c/max")
is_((len(a.body), len(b.body)), (5000, 5000), "over max_object_size: the whole body passes")
is_((b.header("X-Cache-Status"), o.hits("/c/max")), ("MISS", 2), "and is not stored")
ok(p.wait_log(r"not stored: larger than max_object_size", start=mark), "logged")

mark = p.log_mark()
a, b = twice("/c/maxchunked")
is_((a.body, b.body), (b"y" * 5000, b"y" * 5000),
    "chunked, found over max_object_size while stored: the whole body still passes")
is_((b.header("X-Cache-Status"), o.hits("/c/maxchunked")), ("MISS", 2), "and is not stored")
ok(p.wait_log(r"not stored: larger than max_object_size, or no room", start=mark), "logged")
a, b = twice("/c/smallchunked")
is_((b.body, b.header("X-Cache-Status")), (b"z" * 3000, "HIT"),
    "chunked within max_object_size: stored")

# Vary
r1 = p.get("/c/vary", headers=[("Accept-Encoding", "gzip")])
r2 = p.get("/c/vary", headers=[("Accept-Encoding", "br")])
r3 = p.get("/c/vary", headers=[("Accept-Encoding", "gzip")])
r4 = p.get("/c/vary", headers=[("Accept-Encoding", "br")])
r5 = p.get("/c/vary")
is_([r.body for r in (r1, r2, r3, r4, r5)],
    [b"enc=gzip", b"enc=br", b"enc=gzip", b"enc=br", b"enc=none"], "Vary: each variant its body")
is_([r.header("X-Cache-Status") for r in (r1, r2, r3, r4, r5)],
    ["MISS", "MISS", "HIT", "HIT", "MISS"], "Vary: variants stored apart")
is_(o.hits("/c/vary"), 3, "the origin saw one request per variant")

# no-cache: stored, revalidated on every use
a, b = twice("/c/nocache")
is_((b.status, b.body, b.header("X-Cache-Status")), (200, b"nc", "REVALIDATED"),
    "no-cache: revalidated before use (REVALIDATED)")
is_(o.revalidations("/c/nocache"), 1, "the origin got a conditional request and said 304")
req = o.requests_for("/c/nocache")[-1]
is_(req.header("If-None-Match"), '"n1"', "with the stored ETag")

# a client's no-cache: revalidate even a fresh object
p.get("/c/authpub")
r = p.get("/c/authpub", headers=[("Cache-Control", "no-cache")])
is_(r.header("X-Cache-Status"), "EXPIRED", "client no-cache on a fresh object without "
    "validators: refetched (EXPIRED)")
r = p.get("/c/authpub", headers=[("Cache-Control", "no-store")])
is_(r.header("X-Cache-Status"), "BYPASS", "client no-store: BYPASS")
r = p.get("/c/authpub", headers=[("Cache-Control", "only-if-cached")])
is_((r.status, r.header("X-Cache-Status")), (200, "HIT"), "only-if-cached, stored: HIT")
r = p.get("/c/none", headers=[("Cache-Control", "only-if-cached")])
is_(r.status, 504, "only-if-cached, nothing stored: 504")

# an unsafe method invalidates
p.get("/c/post")
r = p.get("/c/post")
is_(r.header("X-Cache-Status"), "HIT", "stored")
r = p.get("/c/post", method="POST", body=b"x")
is_((r.status, r.header("X-Cache-Status")), (200, "BYPASS"), "POST: passed (BYPASS)")
r = p.get("/c/post")
is_(r.header("X-Cache-Status"), "MISS", "and the stored response is gone")

# lock_timeout_ms: a waiter gives up waiting and goes to the origin itself
res = {}
t1 = threading.Thread(target=lambda: res.update(first=p.get("/c/lock")))
t1.start()
ok(o.wait_hits("/c/lock", 1) == 1, "the first miss reached the origin (slow: 2 s)")
second = p.get("/c/lock")
t1.join(10)
is_((second.status, second.body, second.header("X-Cache-Status")), (200, b"L", "MISS"),
    "a concurrent miss waited lock_timeout_ms = 300, then went to the origin itself")
is_((res["first"].status, res["first"].header("X-Cache-Status")), (200, "MISS"),
    "the first one is answered too")
is_(o.hits("/c/lock"), 2, "the origin saw both (the waiter did not wait for the first)")
o.delay("/c/lock", 0)
is_(p.get("/c/lock").header("X-Cache-Status"), "HIT", "and the object was stored")

# status_header = false
a, b = twice("/c/hide")
is_((b.header("X-Cache-Status"), o.hits("/c/hide")), (None, 1),
    "status_header = false: cached, no X-Cache-Status")
ok(wait_for(lambda: any(re.search(r'"GET /c/hide HTTP/1.1" 200 .* HIT$', l)
                        for l in p.access_log_lines())),
   "but the access log has it")

done_testing()
