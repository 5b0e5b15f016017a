#!/usr/bin/env python3
# Phase handlers of modules nobody configured are left out of a worker's chain
# (pt_module.phase_used): a configuration without filters answers as before, and a
# reload that adds an access list, a method restriction, a rate limit or a rule brings
# its handler in for the new workers at once; a reload that removes them takes it out.
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 60)

BASE = """workers = 1;
error_log = { path = "{tmp}/error.log"; level = "info"; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
%s
routes = ( { path_prefix = "/"; %s return = { status = 200; body = "ok\\n"; }; } );
"""

p = Portico(BASE % ("", ""))
is_(p.get("/x").status, 200, "no filter configured: answered")


def reload_to(conf):
    old = p.worker_pids()
    p.reload(conf)
    p.wait_workers(1, exclude=old)


cases = [
    ("a global access list", 'filters = { global = { deny = [ "127.0.0.0/8" ]; }; };', "", "GET", 403),
    ("a route's access list", "", 'deny = [ "all" ];', "GET", 403),
    ("a method restriction", "", 'methods = [ "POST" ];', "GET", 405),
    ("a rule", 'filters = { rules = ( { name = "no-x"; match = "^/x"; in = [ "path" ]; '
               'action = "deny"; } ); global = { rules = [ "no-x" ]; }; };', "", "GET", 403),
    ("a rate limit", 'filters = { rate_limits = ( { name = "one"; key = "$remote_addr"; rate = "1r/m"; '
                     'burst = 1; } ); global = { rate_limit = [ "one" ]; }; };', "", "GET", 0),
]
for name, top, route, method, want in cases:
    reload_to(BASE % (top, route))
    if want == 0:                           # the rate limit: the third request is refused
        got = [p.get("/x").status for i in range(3)]
        is_(got[-1], 429, "a reload adds %s: its handler runs (%s)" % (name, got))
    else:
        r = p.get("/x", method=method)
        is_(r.status, want, "a reload adds %s: its handler runs (%d)" % (name, want))
    reload_to(BASE % ("", ""))
    is_(p.get("/x").status, 200, "a reload removes it: answered again")

done_testing()
