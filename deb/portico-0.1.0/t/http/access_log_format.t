#!/usr/bin/env python3
# The access log's format_string: request variables (server/var.c) and those known once
# the response is sent, client bytes escaped, empty values as "-"; -t errors for an
# unknown variable and malformed references.
import os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 60)

echo = Origin.echo()
FMT = (r'$remote_addr|$host|$method|$uri|$request_uri|$args|$arg_a|$http_user_agent|'
       r'$cookie_s|$status|$body_bytes_sent|$bytes_sent|$request_time|\"$request\"|'
       r'$request_id|$upstream_addr|$upstream_status|$upstream_response_time|'
       r'$time_iso8601|$time_local|$server_protocol|$scheme|$cache_status|$tls_protocol|'
       r'$listener|$$|${status}x')
LOG = ('access_log = { path = "{tmp}/access.log"; format_string = "%s"; flush_ms = 50; };'
       % FMT)
p = Portico(proxy_config(upstream("app", [echo.address]),
                         [proxy_route("app", "/app/"),
                          '{ path_prefix = "/h"; return = { status = 204; }; }'],
                         access_log=LOG), vars={"status": "{status}"})   # ${status} stays

r = p.get("/app/x%41?a=1&b=2", headers=[("User-Agent", 'ua "q"'), ("Cookie", "s=c1; t=2"),
                                        ("X-Request-Id", "rid-1")])
is_(r.status, 200, "proxied")
p.wait_access_log(1)
f = p.access_log_lines()[-1].split("|")
is_(len(f), 27, "27 fields")
is_(f[:9], ["127.0.0.1", "a.example", "GET", "/app/xA", "/app/x%41?a=1&b=2", "a=1&b=2", "1",
            'ua \\x22q\\x22', "c1"],
    "request variables: address, host, method, normalised path, target, query, argument, "
    "field (quotes escaped), cookie")
is_((f[9], f[10], f[14], f[15], f[16]), ("200", str(len(r.body)), "rid-1", echo.address, "200"),
    "status, body bytes, request id, upstream address and status")
ok(int(f[11]) > int(f[10]), "bytes_sent counts the head")
ok(re.match(r"^\d+\.\d{3}$", f[12]) and re.match(r"^\d+\.\d{3}$", f[17]),
   "request_time and upstream_response_time in seconds.ms")
is_(f[13], '"GET /app/x%41?a=1&b=2 HTTP/1.1"', "$request between the format's quotes")
ok(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", f[18]), "time_iso8601 (%s)" % f[18])
ok(re.match(r"^\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$", f[19]), "time_local (%s)" % f[19])
is_((f[20], f[21], f[22], f[23], f[24], f[25], f[26]),
    ("HTTP/1.1", "http", "-", "-", "main", "$", "200x"),
    "protocol, scheme, empty cache status and TLS protocol as '-', listener, $$, ${status}")

r = p.get("/h")
p.wait_access_log(2)
f = p.access_log_lines()[-1].split("|")
is_((f[9], f[15], f[16], f[17]), ("204", "-", "-", "-"), "no upstream: '-' for its fields")
ok(re.match(r"^[0-9a-f]{32}$", f[14]), "a generated request id")
p.stop()


def t_error(fmt, want, name):
    d = Portico(proxy_config(upstream("app", [echo.address]), proxy_route("app"),
                             access_log='access_log = { path = "{tmp}/a.log"; format_string = "%s"; };' % fmt),
                start=False)
    cp = run_bin(["-t", "-c", d.conf_path])
    is_(cp.returncode, 1, name + ": -t fails")
    like(cp.stderr, r"portico\.conf:\d+: key 'access_log\.format_string': .*" + want, name)


t_error("$nope", r"\"\$nope\": unknown variable \$nope \(known: .*\$status", "an unknown variable")
t_error("${status", r"'\$\{' without '\}'", "an unclosed ${")
t_error("$", r"'\$' without a variable name", "a lone $")
done_testing()
