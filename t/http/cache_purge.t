#!/usr/bin/env python3
# PURGE: the exact key and the prefix form ("/path*"), every variant, from purge_allow
# only (403 with an info log line for everyone else, and for everyone when the list is
# absent); a PURGE of nothing stored is 404.
import os, re, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *
from cachetest import *

o = CountingOrigin()
for path in ("/c/a", "/c/p/1", "/c/p/2", "/c/q"):
    o.set(path, headers=[("Cache-Control", "max-age=60")], body=path.encode())
o.set("/c/v", headers=[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
      body=lambda o, req: (req.header("Accept-Language") or "-").encode())

p = Portico(cache_config(o, main_cache='size_mb = 8; purge_allow = [ "127.0.0.0/8" ];'))


def status(path, headers=()):
    return p.get(path, headers=list(headers)).header("X-Cache-Status")


for path in ("/c/a", "/c/p/1", "/c/p/2", "/c/q"):
    p.get(path)
    is_(status(path), "HIT", "%s stored" % path)

mark = p.log_mark()
r = p.get("/c/a", method="PURGE")
is_((r.status, r.body), (200, b"purged 1\n"), "PURGE of a stored URL: 200")
ok(p.wait_log(r"cache: PURGE /c/a from 127\.0\.0\.1: 1 objects removed", start=mark), "logged")
is_(status("/c/a"), "MISS", "then a miss")
r = p.get("/c/a?x", method="PURGE")
is_(r.status, 404, "PURGE of a URL not stored: 404")

r = p.get("/c/p/*", method="PURGE")
is_((r.status, r.body), (200, b"purged 2\n"), "prefix PURGE /c/p/*: both under it")
is_((status("/c/p/1"), status("/c/p/2"), status("/c/q")), ("MISS", "MISS", "HIT"),
    "the two are gone, /c/q stays")

for lang in ("en", "fr", "de"):
    p.get("/c/v", headers=[("Accept-Language", lang)])
is_(status("/c/v", [("Accept-Language", "fr")]), "HIT", "variants stored")
r = p.get("/c/v", method="PURGE")
is_((r.status, r.body), (200, b"purged 3\n"), "PURGE removes every variant")
is_(status("/c/v", [("Accept-Language", "en")]), "MISS", "en gone")
is_(status("/c/v", [("Accept-Language", "de")]), "MISS", "de gone")

# not allowed
p2 = Portico(cache_config(o, main_cache='size_mb = 8; purge_allow = [ "10.1.0.0/16" ];'))
p2.get("/c/q")
mark = p2.log_mark()
r = p2.get("/c/q", method="PURGE")
is_(r.status, 403, "PURGE from an address not in purge_allow: 403")
ok(p2.wait_log(r"refused request from 127\.0\.0\.1: 403 Forbidden \(PURGE from an address "
               r"not in purge_allow\)", start=mark), "info log line says why")
is_(p2.get("/c/q").header("X-Cache-Status"), "HIT", "nothing purged")
p2.stop()

p3 = Portico(cache_config(o, main_cache='size_mb = 8;'))
p3.get("/c/q")
mark = p3.log_mark()
r = p3.get("/c/q", method="PURGE")
is_(r.status, 403, "no purge_allow: PURGE is 403 for everyone")
ok(p3.wait_log(r"403 Forbidden \(PURGE with no purge_allow configured\)", start=mark), "logged")
is_(p3.get("/c/q").header("X-Cache-Status"), "HIT", "nothing purged")

done_testing()
