#!/usr/bin/env python3
# The cache's configuration: `-t` names FILE:LINE, the key and what is wrong; a bad
# reload keeps the old configuration (and its cache); a good reload keeps the cache's zone
# (same name and size), so stored objects survive it.
import os, re, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *
from cachetest import *

tmp = tempfile.mkdtemp(prefix="portico-t-cconf-")
add_cleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
LISTEN = 'listeners = ( { address = "127.0.0.1:8080"; } );\n'
UP = 'upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:9"; } ); } );\n'
ROUTE = 'routes = ( { upstream = "app"; cache = { enabled = true; }; } );\n'


def check(text, name):
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    cp = run_bin(["-t", "-c", path], timeout=30)
    return path, cp.returncode, cp.stdout + cp.stderr


BAD = [
    ("no-size", LISTEN + UP + "cache = {\n  path = \"/tmp/x\"; };\n" + ROUTE, 3,
     r"key 'cache': needs size_mb \(1\.\.1048576\)", "cache without size_mb"),
    ("size-range", LISTEN + UP + "cache = { size_mb = 0; };\n" + ROUTE, 3,
     r"key 'cache\.size_mb': 0 is out of range 1\.\.1048576", "size_mb = 0"),
    ("max-object", LISTEN + UP + "cache = { size_mb = 1;\n  max_object_size = 600000; };\n" + ROUTE,
     4, r"key 'cache\.max_object_size': 600000 is more than half the cache \(size_mb = 1\): "
        r"at most 524288", "max_object_size over half the zone"),
    ("purge-allow", LISTEN + UP + "cache = { size_mb = 1; purge_allow = [ \"10.0.0.0/33\" ]; };\n"
     + ROUTE, 3, r"key 'cache\.purge_allow", "a bad CIDR in purge_allow"),
    ("no-main", LISTEN + UP + "routes = (\n { upstream = \"app\"; cache = { enabled = true; }; } );\n",
     4, r"key 'routes\[0\]\.cache': a route's cache needs the top-level cache = "
        r"\{ size_mb = \.\.\.; \}", "a route's cache without the zone"),
    ("no-upstream", LISTEN + "cache = { size_mb = 1; };\nroutes = (\n { return = { status = 200; }; "
     "cache = { enabled = true; }; } );\n", 4,
     r"key 'routes\[0\]\.cache': the cache stores what an upstream answers: this route has "
     r"no upstream", "a cache on a route without upstream"),
    ("key-novar", LISTEN + UP + "cache = { size_mb = 1; };\nroutes = ( { upstream = \"app\";\n"
     "  cache = { key = \"static\"; }; } );\n", 5,
     r"key 'routes\[0\]\.cache\.key': \"static\" has no variable", "a key with no variable"),
    ("key-badvar", LISTEN + UP + "cache = { size_mb = 1; };\nroutes = ( { upstream = \"app\";\n"
     "  cache = { key = \"$nosuch\"; }; } );\n", 5, r"key 'routes\[0\]\.cache\.key'",
     "a key with an unknown variable"),
    ("lock-range", LISTEN + UP + "cache = { size_mb = 1; };\nroutes = ( { upstream = \"app\";\n"
     "  cache = { lock_timeout_ms = 600001; }; } );\n", 5,
     r"key 'routes\[0\]\.cache\.lock_timeout_ms': 600001 is out of range 0\.\.600000",
     "lock_timeout_ms out of range"),
    ("unknown", LISTEN + UP + "cache = { size_mb = 1; };\nroutes = ( { upstream = \"app\";\n"
     "  cache = { ttl = 3; }; } );\n", 5, r"key 'routes\[0\]\.cache\.ttl': unknown key",
     "an unknown route cache key"),
]
for name, text, line, msg, what in BAD:
    path, rc, out = check(text, name)
    is_(rc, 1, "-t: %s: exit 1" % what)
    like(out, r"(?m)^portico: %s:%d: %s" % (re.escape(path), line, msg),
         "-t: %s: file:line and why" % what)

path, rc, out = check(LISTEN + UP + "cache = { size_mb = 4; purge_allow = [ \"127.0.0.0/8\" ]; "
                      "max_object_size = 65536; };\n"
                      "routes = ( { upstream = \"app\"; cache = { default_ttl_s = 10; "
                      "key = \"$host$uri\"; stale_while_revalidate_s = 30; stale_if_error_s = "
                      "300; lock_timeout_ms = 5000; status_header = false; "
                      "store_set_cookie = true; }; } );\n", "good")
is_((rc, out.strip()), (0, "portico: configuration file %s test is successful" % path),
    "-t: every key accepted")

# reloads: the zone (and what it holds) is kept; a bad reload changes nothing
o = CountingOrigin()
o.set("/c/a", headers=[("Cache-Control", "max-age=300")], body=b"A")
good = cache_config(o)
p = Portico(good)
p.get("/c/a")
is_(p.get("/c/a").header("X-Cache-Status"), "HIT", "stored")
workers = p.worker_pids()
p.reload(good.replace("default_ttl_s = 60;", "default_ttl_s = 61;"))
p.wait_workers(1, exclude=workers)
is_(p.get("/c/a").header("X-Cache-Status"), "HIT", "after a reload: the object is still there")
mark = p.log_mark()
workers = p.worker_pids()
p.reload(good.replace("size_mb = 8;", "size_mb = 0;"))
ok(p.wait_log(r"key 'cache\.size_mb': 0 is out of range", start=mark),
   "a bad reload is logged with the key")
is_(p.worker_pids(), workers, "and keeps the workers")
is_(p.get("/c/a").header("X-Cache-Status"), "HIT", "and the cache")
is_(o.hits("/c/a"), 1, "the origin saw one request in all")

# a reload that changes size_mb: a new zone, empty, logged; the old one is left to the old
# workers, which finish what they serve from it
mark = p.log_mark()
workers = p.worker_pids()
p.reload(good.replace("size_mb = 8;", "size_mb = 16;"))
ok(p.wait_log(r'shared memory zone "cache": its size changed from 8388608 to 16777216 bytes: '
              r'a new zone, empty', start=mark), "a size change on reload is logged")
p.wait_workers(1, exclude=workers)
ok(wait_for(lambda: not any(proc_alive(w) for w in workers), 10), "the old workers exit")
is_(p.get("/c/a").header("X-Cache-Status"), "MISS", "the new zone starts empty: a miss")
is_(p.get("/c/a").header("X-Cache-Status"), "HIT", "then a hit from the new zone")
is_(o.hits("/c/a"), 2, "the origin saw the one refetch")
unlike(p.error_log()[mark:], r"\[(error|alert|crit|emerg)\]", "no error logged since the reload")

done_testing()
