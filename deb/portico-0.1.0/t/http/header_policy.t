#!/usr/bin/env python3
# Header fields portico owns or checks: server_tokens (true: portico/VERSION, false:
# portico, "off": no Server field) on generated, refused and proxied responses; Server and
# Date refused alike in return.headers and set_response_headers; configured field values
# must be field-values and a configured Host must be a valid Host (-t names file:line and
# the key).
import os, re, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

version = portico_version()
origin = Origin.fixed(headers=[("Server", "origin-server/1.0"), ("Date", "Tue, 01 Jan 2030 00:00:00 GMT"),
                               ("X-Origin", "yes")], body=b"from origin\n")
nodate = Origin.fixed(headers=[("Server", "origin-server/1.0")], body=b"no date\n")


def conf(tokens=None, extra_routes=""):
    ups = [upstream("o", [origin.address]), upstream("nodate", [nodate.address])]
    routes = [proxy_route("nodate", "/nodate/"), proxy_route("o", "/proxied/"),
              '{ path_prefix = "/ret"; return = { status = 200; body = "ret\\n"; }; }']
    if extra_routes:
        routes.append(extra_routes)
    return proxy_config(ups, routes, extra="" if tokens is None else "server_tokens = %s;" % tokens)


# --- server_tokens ----------------------------------------------------------------------------
for tokens, want in ((None, ["portico/" + version]), ("true", ["portico/" + version]), ("false", ["portico"]),
                     ('"off"', [])):
    what = "server_tokens = %s" % tokens if tokens else "server_tokens unset"
    p = Portico(conf(tokens))
    got = {}
    r = p.get("/ret")
    got["return"] = (r.status, r.headers.get_all("Server"), r.headers.count("Date"))
    r = p.get("/nothing-here")
    got["404"] = (r.status, r.headers.get_all("Server"), r.headers.count("Date"))
    r = p.request(b"GET / HTTP/1.1\r\n\r\n")
    got["400"] = (r.status, r.headers.get_all("Server"), r.headers.count("Date"))
    r = p.get("/proxied/x")
    got["proxied"] = (r.status, r.headers.get_all("Server"), r.headers.get_all("Date"), r.header("X-Origin"))
    r = p.get("/nodate/x")
    got["proxied, no Date"] = (r.status, r.headers.get_all("Server"), r.headers.count("Date"))
    is_(got, {"return": (200, want, 1), "404": (404, want, 1), "400": (400, want, 1),
              "proxied": (200, want, ["Tue, 01 Jan 2030 00:00:00 GMT"], "yes"),
              "proxied, no Date": (200, want, 1)},
        "%s: Server %s on generated, refused and proxied responses (the origin's Server never passes; "
        "its Date does, else portico's)" % (what, want[0] if want else "absent"))
    p.stop()

# --- -t: the values server_tokens takes -------------------------------------------------------
tmp = tempfile.mkdtemp(prefix="portico-t-hdr-")
add_cleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
LISTEN = 'listeners = ( { address = "127.0.0.1:8080"; } );\n'
UP = 'upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:9"; } ); } );\n'


def check(name, text):
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    cp = run_bin(["-t", "-c", path], timeout=30)
    return path, cp.returncode, (cp.stdout + cp.stderr).strip()


def bad(name, text, line, msg, what):
    path, rc, out = check(name, text)
    is_((rc, out.splitlines()[:1]), (1, ["portico: %s:%d: %s" % (path, line, msg)]), "-t: %s" % what)


def good(name, text, what):
    path, rc, out = check(name, text)
    is_((rc, out), (0, "portico: configuration file %s test is successful" % path), "-t: %s" % what)


bad("tokens-on", LISTEN + 'server_tokens = "on";\n', 2,
    "key 'server_tokens': \"on\": expected true, false or \"off\"", 'server_tokens = "on": refused')
bad("tokens-int", LISTEN + 'server_tokens = 1;\n', 2,
    "key 'server_tokens': expected true, false or \"off\", got an integer", "server_tokens = 1: refused")
good("tokens-off", LISTEN + 'server_tokens = "off";\n', 'server_tokens = "off": accepted')

# --- Server and Date: refused alike by return.headers and set_response_headers -----------------
RET = 'routes = (\n  { path_prefix = "/";\n    return = { status = 200; headers = ( { name = "X-Ok"; value = "1"; },\n      { name = "%s"; value = "%s"; } ); }; } );\n'
SETR = 'routes = (\n  { upstream = "app";\n    set_response_headers = ( { name = "X-Ok"; value = "1"; },\n      { name = "%s"; value = "%s"; } ); } );\n'
for field, value, ret_why, set_why in (
        ("Server", "mine/1.0", "set by portico \\(see server_tokens\\)", "\\(see server_tokens\\)"),
        ("server", "", "set by portico \\(see server_tokens\\)", "\\(see server_tokens\\)"),
        ("Date", "Tue, 01 Jan 2030 00:00:00 GMT", "set by portico from its clock",
         "\\(the origin's Date is passed on, else portico adds its own\\)")):
    path, rc, out = check("ret-" + field, LISTEN + RET % (field, value))
    is_(rc, 1, "return.headers naming %s: -t fails" % field)
    like(out, r"(?m)^portico: %s:5: key 'routes\[0\]\.return\.headers\[1\]\.name': \"%s\": %s" % (re.escape(path), field, ret_why),
         "...naming file:line, the key and why")
    path, rc, out = check("set-" + field, LISTEN + UP + SETR % (field, value))
    is_(rc, 1, "set_response_headers naming %s: -t fails" % field)
    like(out, r"(?m)^portico: %s:6: key 'routes\[0\]\.set_response_headers\[1\]\.name': \"%s\" is managed by the "
         r"proxy and cannot be set %s" % (re.escape(path), field, set_why), "...naming file:line, the key and why")

# --- configured field values and Host ----------------------------------------------------------
SETQ = 'routes = (\n  { upstream = "app";\n    set_request_headers = ( { name = "X-Ok"; value = "1"; },\n      { name = "%s"; value = "%s"; } ); } );\n'
VALUE_KEY = "key 'routes\\[0\\]\\.set_request_headers\\[1\\]\\.value'"
for field, value, why in (
        ("Host", "a b", '"a b" is not a valid Host'),
        ("Host", "example.com:99999", '"example.com:99999" is not a valid Host'),
        ("Host", "example.com:", '"example.com:" is not a valid Host'),
        ("Host", "[::1", '"\\[::1" is not a valid Host'),
        ("Host", "a,b", '"a,b" is not a valid Host'),
        ("Host", "user@example.com", '"user@example.com" is not a valid Host'),
        ("Host", "example.com/x", '"example.com/x" is not a valid Host'),
        ("X-A", " padded", "leading or trailing whitespace is not allowed in a field value"),
        ("X-A", "padded\\t", "leading or trailing whitespace is not allowed in a field value"),
        ("X-A", "a\\rb", "control characters \\(CR, LF, ...\\) are not allowed"),
        ("X-A", "a\\nX-Injected: 1", "control characters \\(CR, LF, ...\\) are not allowed"),
        ("X-A", "del\\x7f", "control characters \\(CR, LF, ...\\) are not allowed")):
    path, rc, out = check("req-%s-%d" % (field, abs(hash(value))), LISTEN + UP + SETQ % (field, value))
    is_(rc, 1, "set_request_headers %s = \"%s\": -t fails" % (field, value))
    like(out, r"(?m)^portico: %s:6: %s: %s" % (re.escape(path), VALUE_KEY, why), "...naming file:line, the key and why")
path, rc, out = check("req-name", LISTEN + UP + SETQ % ("X A", "1"))
like(out, r"(?m)^portico: %s:6: key 'routes\[0\]\.set_request_headers\[1\]\.name': \"X A\" is not a valid field name"
     % re.escape(path), "set_request_headers name \"X A\": not a token, refused")
path, rc, out = check("ret-value", LISTEN + RET % ("X-A", "v "))
like(out, r"(?m)^portico: %s:5: key 'routes\[0\]\.return\.headers\[1\]\.value': leading or trailing whitespace"
     % re.escape(path), "return.headers value with trailing whitespace: refused the same way")
path, rc, out = check("ret-ctype", LISTEN + 'routes = ( { return = { body = "x";\n content_type = " text/plain"; }; } );\n')
like(out, r"(?m)^portico: %s:3: key 'routes\[0\]\.return\.content_type': leading or trailing whitespace"
     % re.escape(path), "return.content_type with leading whitespace: refused")

for value in ("backend.internal", "backend.internal:8080", "10.0.0.1:80", "[::1]:8080", "[2001:db8::1]", "my_host.example"):
    good("host-%d" % abs(hash(value)), LISTEN + UP + SETQ % ("Host", value), 'set_request_headers Host = "%s": accepted' % value)
good("inner-ws", LISTEN + UP + SETQ % ("X-A", "a b\\tc"), "a value with inner SP and HTAB: accepted")

# --- a valid configured Host reaches the origin as written --------------------------------------
echo = Origin.echo()
p = Portico(proxy_config(upstream("e", [echo.address]),
                         proxy_route("e", "/", set_request_headers='( { name = "Host"; value = "backend.internal:8080"; } )')))
r = p.get("/h", host="client.example")
is_((r.status, echo.received[-1].header_all("Host") if echo.received else None), (200, ["backend.internal:8080"]),
    "set_request_headers Host = \"backend.internal:8080\": the origin gets exactly that Host")
p.stop()

done_testing()
