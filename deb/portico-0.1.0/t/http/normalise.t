#!/usr/bin/env python3
# Path normalisation and host checks against a deny route (issue 6, item 5): a route
# { path_prefix = "/admin"; return = { status = 403; }; } and a host route for
# internal.example, both before a catch-all proxy route to a counting origin. Every
# spelling of /admin is either denied (403) or refused (400), and then the origin
# receives nothing; what is proxied reaches the origin with its original target.
# The second listener ("ci") has the same deny routes with path_ignore_case = true.
import os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

o = Origin.echo()

CONF = """workers = 1;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
%s
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; },
              { name = "ci"; address = "127.0.0.1:{port2}"; } );
upstreams = ( { name = "app"; servers = ( { address = "%s"; } ); } );
routes = (
  { listener = "ci"; path_prefix = "/admin"; path_ignore_case = true;
    return = { status = 403; }; },
  { listener = "ci"; path_regex = "^/re/admin$"; path_ignore_case = true;
    return = { status = 403; }; },
  { path_prefix = "/admin"; return = { status = 403; }; },
  { path_regex = "^/re/admin$"; return = { status = 403; }; },
  { host = "internal.example"; return = { status = 403; }; },
  { path_prefix = "/"; upstream = "app"; }
);
""" % (PROXY_LIMITS, o.address)

p = Portico(CONF)

# (what, target, Host, listener, status, reason in the 400 log line)
# status 200: proxied, and the origin must get exactly this target.
TABLE = [
    # the deny route itself
    ("/admin", "/admin", "a.example", "port", 403, None),
    ("/admin/x", "/admin/x", "a.example", "port", 403, None),
    # case: the route is case-sensitive unless it says path_ignore_case
    ("/ADMIN without path_ignore_case: proxied", "/ADMIN", "a.example", "port", 200, None),
    ("/ADMIN with path_ignore_case", "/ADMIN", "a.example", "port2", 403, None),
    ("/aDmIn/x with path_ignore_case", "/aDmIn/x", "a.example", "port2", 403, None),
    ("/%41DMIN with path_ignore_case", "/%41DMIN", "a.example", "port2", 403, None),
    ("/RE/ADMIN regex without path_ignore_case: proxied", "/RE/ADMIN", "a.example", "port",
     200, None),
    ("/RE/ADMIN regex with path_ignore_case", "/RE/ADMIN", "a.example", "port2", 403, None),
    ("/admin on the ci listener", "/admin", "a.example", "port2", 403, None),
    # resolved the same way by every origin: denied
    ("//admin", "//admin", "a.example", "port", 403, None),
    ("/./admin", "/./admin", "a.example", "port", 403, None),
    ("/x/../admin", "/x/../admin", "a.example", "port", 403, None),
    ("/%61dmin", "/%61dmin", "a.example", "port", 403, None),
    ("/admin;jsessionid=1", "/admin;jsessionid=1", "a.example", "port", 403, None),
    ("/x;p/../admin", "/x;p/../admin", "a.example", "port", 403, None),
    ("/admin%2fx", "/admin%2fx", "a.example", "port", 403, None),
    ("/admin?x=1", "/admin?x=1", "a.example", "port", 403, None),
    ("absolute-form /admin", "http://a.example/admin", "b.example", "port", 403, None),
    # read differently by different origins: refused
    ("/x/..;/admin", "/x/..;/admin", "a.example", "port", 400, "or a ;parameter"),
    ("/x/.;/admin", "/x/.;/admin", "a.example", "port", 400, "or a ;parameter"),
    ("/x\\..\\admin", "/x\\..\\admin", "a.example", "port", 400, "backslash in the path"),
    ("/\\admin", "/\\admin", "a.example", "port", 400, "backslash in the path"),
    ("/%5cadmin", "/%5cadmin", "a.example", "port", 400, "percent-encoded backslash"),
    ("/%5Cadmin", "/%5Cadmin", "a.example", "port", 400, "percent-encoded backslash"),
    ("/x/%c0%ae%c0%ae/admin (overlong UTF-8)", "/x/%c0%ae%c0%ae/admin", "a.example", "port",
     400, "overlong UTF-8"),
    ("/%c0%afadmin (overlong '/')", "/%c0%afadmin", "a.example", "port", 400,
     "overlong UTF-8"),
    ("/x/%e0%80%ae%e0%80%ae/admin (overlong, 3 bytes)", "/x/%e0%80%ae%e0%80%ae/admin",
     "a.example", "port", 400, "invalid UTF-8"),
    ("/x/%252e%252e/admin (double encoding)", "/x/%252e%252e/admin", "a.example", "port",
     400, "double encoding"),
    ("/%2561dmin (double encoding)", "/%2561dmin", "a.example", "port", 400,
     "double encoding"),
    ("/x/%2e%2e/admin", "/x/%2e%2e/admin", "a.example", "port", 400, "percent-encoding or"),
    ("/x/.%2e/admin", "/x/.%2e/admin", "a.example", "port", 400, "percent-encoding or"),
    ("/x/..%2fadmin", "/x/..%2fadmin", "a.example", "port", 400, "encoded slash"),
    ("/y/x%2f..%2f../admin", "/y/x%2f..%2f../admin", "a.example", "port", 400,
     "encoded slash"),
    ("/x;%2f..%2f..%2fadmin", "/x;%2f..%2f..%2fadmin", "a.example", "port", 400,
     "encoded slash in a ;parameter"),
    ("/admin%00", "/admin%00", "a.example", "port", 400, "percent-encoded NUL"),
    ("/%00/admin", "/%00/admin", "a.example", "port", 400, "percent-encoded NUL"),
    ("/%ff/admin (invalid UTF-8)", "/%ff/admin", "a.example", "port", 400, "UTF-8"),
    ("/%e9 (Latin-1, not UTF-8)", "/%e9", "a.example", "port", 400, "UTF-8"),
    ("/%ed%a0%80 (a surrogate)", "/%ed%a0%80", "a.example", "port", 400, "UTF-8"),
    ("/.. above the root", "/../admin", "a.example", "port", 400, "above the root"),
    # hosts
    ("Host internal.example", "/", "internal.example", "port", 403, None),
    ("Host INTERNAL.Example.", "/", "INTERNAL.Example.", "port", 403, None),
    ("Host internal%2eexample", "/", "internal%2eexample", "port", 400, "invalid Host field"),
    ("Host internal.example%00", "/", "internal.example%00", "port", 400,
     "invalid Host field"),
    ("Host internal.example;x", "/", "internal.example;x", "port", 400, "invalid Host field"),
    ("Host internal..example", "/", "internal..example", "port", 400, "invalid Host field"),
    ("absolute-form http://internal%2eexample/", "http://internal%2eexample/", "a.example",
     "port", 400, "invalid authority"),
    ("absolute-form http://internal.example/", "http://internal.example/x", "a.example",
     "port", 403, None),
    # proxied with the target as the client sent it
    ("/public", "/public", "a.example", "port", 200, None),
    ("/a/./b;x=1/%7euser", "/a/./b;x=1/%7euser", "a.example", "port", 200, None),
    ("/100%25 (a '%', no escape after it)", "/100%25", "a.example", "port", 200, None),
    ("/caf%c3%a9 (UTF-8)", "/caf%c3%a9", "a.example", "port", 200, None),
    ("/admi (a shorter prefix)", "/admi", "a.example", "port", 200, None),
]

for what, target, host, port, status, reason in TABLE:
    n0, a0 = o.requests, o.accepted
    mark = p.log_mark()
    raw = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, host))
    r = p.request(raw.encode("latin-1"), port=port)
    is_(r.status, status, "%s: %d" % (what, status))
    if status == 200:
        req = o.received[n0] if o.wait_requests(n0 + 1, 3.0) > n0 else None
        want = target if not target.startswith("http://") else target[len("http://a.example"):]
        is_(req.target if req else None, want, "%s: the origin gets the original target" % what)
        continue
    # answered by portico itself, before any upstream work: nothing can be on its way
    is_((o.requests - n0, o.accepted - a0), (0, 0), "%s: the origin received nothing" % what)
    if status == 400:
        ok(p.wait_log(r"refused request from 127\.0\.0\.1: 400 Bad Request \([^)]*%s"
                      % re.escape(reason), 3.0, start=mark),
           "%s: refusal logged (%s)" % (what, reason))

# --- path_prefix and path_ignore_case are checked at load ------------------------------------
BAD = [
    ('{ path_prefix = "/a//b"; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_prefix': \"/a//b\" can never match: routes see the normalised "
     r"path \(\"/a/b\"\)"),
    ('{ path_prefix = "/admin;x"; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_prefix': \"/admin;x\" can never match: .*\(\"/admin\"\)"),
    ('{ path_prefix = "/%61dmin"; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_prefix': \"/%61dmin\" can never match: .*\(\"/admin\"\)"),
    ('{ path_prefix = "/x/../admin"; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_prefix': \"/x/../admin\" can never match: .*\(\"/admin\"\)"),
    ('{ path_prefix = "/a\\\\b"; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_prefix': \"/a\\b\": backslash in the path \(requests with "
     r"it are refused with 400\)"),
    ('{ path_ignore_case = true; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_ignore_case': there is no path_prefix or path_regex to apply "
     r"it to"),
    ('{ path_prefix = "/a"; path_ignore_case = "yes"; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_ignore_case': .*boolean"),
    ('{ path_regex = "^/(a"; path_ignore_case = true; return = { status = 403; }; }',
     r"key 'routes\[0\]\.path_regex': .* at offset \d+"),
]
for route, err in BAD:
    q = Portico("""listeners = ( { address = "127.0.0.1:{port}"; } );
routes = ( %s );
""" % route, start=False)
    with open(q.conf_path) as f:
        line = [i for i, l in enumerate(f, 1) if l.startswith("routes")][0]
    res = run_bin(["-t", "-c", q.conf_path])
    is_(res.returncode, 1, "-t refuses %s" % route)
    like(res.stderr, r"portico\.conf:%d: " % line + err,
         "-t says why, with file and line: %s" % route)

ok(not o.errors, "the origin saw no malformed request")
ok(p.running(), "the server is still running")
done_testing()
