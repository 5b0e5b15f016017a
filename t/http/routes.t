#!/usr/bin/env python3
# Route matching (first match in file order; host exact and wildcard, path_prefix,
# path_regex, listener, methods), the return module (status, body, content_type, headers,
# location), absolute-form targets, and many exact hosts.
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

ROUTES = """routes = (
  { host = "a.example"; path_prefix = "/"; return = { status = 200; body = "A\\n"; }; },
  { host = "*.wild.example"; return = { status = 200; body = "W\\n"; }; },
  { path_regex = "^/re/[0-9]+$"; return = { status = 201; body = "RE\\n"; }; },
  { path_prefix = "/only-get"; methods = ["GET"]; return = { status = 200; body = "G\\n"; }; },
  { listener = "other"; path_prefix = "/"; return = { status = 200; body = "OTHER\\n"; }; },
  { path_prefix = "/redir"; return = { status = 301; location = "http://a.example/"; }; },
  { path_prefix = "/h"; return = { status = 200; body = "H\\n";
      headers = ( { name = "X-Test"; value = "yes"; }, { name = "X-Two"; value = "2"; } ); }; },
  { path_prefix = "/json"; return = { status = 200; body = "{}"; content_type = "application/json"; }; },
  { path_prefix = "/teapot"; return = { status = 418; body = "short and stout\\n"; }; },
  { path_prefix = "/empty"; return = { status = 204; }; },
  { path_prefix = "/found"; return = { status = 302; location = "/elsewhere"; body = "moved\\n"; }; },
  { path_prefix = "/multi"; methods = ["POST", "PUT"]; return = { status = 202; body = "M\\n"; }; }%s
);"""

# Many exact hosts: h0.many.example .. h1999.many.example, each with its own body.
MANY = "".join(',\n  { host = "h%d.many.example"; return = { status = 200; body = "many %d\\n"; }; }'
               % (i, i) for i in range(2000))
p = Portico(standard_config(routes=ROUTES % MANY))


def get(target, host, port="port", method="GET", **kw):
    r = p.get(target, host=host, port=port, method=method, **kw)
    return (r.status, r.body)


# --- host -----------------------------------------------------------------------------------
is_(get("/", "a.example"), (200, b"A\n"), "exact host")
is_(get("/anything/at/all", "a.example"), (200, b"A\n"), "exact host, any path under /")
is_(get("/", "a.example:80"), (200, b"A\n"), "exact host with a port in Host")
is_(get("/", "A.Example"), (200, b"A\n"), "host names are case-insensitive")
is_(get("/", "x.wild.example"), (200, b"W\n"), "wildcard *.wild.example: x.wild.example")
is_(get("/deep/path", "y.wild.example"), (200, b"W\n"), "wildcard: any path")
is_(get("/zzz", "wild.example"), (404, error_body(404)), "wildcard does not match the bare domain")
is_(get("/zzz", "xwild.example"), (404, error_body(404)), "wildcard needs the dot")
is_(get("/zzz", "b.example"), (404, error_body(404)), "no route: 404")

# --- first match in file order --------------------------------------------------------------------
is_(get("/re/5", "a.example"), (200, b"A\n"), "host route listed before the regex route wins")
is_(get("/h", "a.example"), (200, b"A\n"), "host route listed before /h wins")

# --- path_regex -------------------------------------------------------------------------------------
is_(get("/re/123", "b.example"), (201, b"RE\n"), "regex ^/re/[0-9]+$")
is_(get("/re/123?x=1", "b.example"), (201, b"RE\n"), "regex is matched against the path, not the query")
is_(get("/re/12a", "b.example"), (404, error_body(404)), "regex: /re/12a does not match")
is_(get("/re/123/x", "b.example"), (404, error_body(404)), "regex is anchored ($)")
is_(get("/x/re/1", "b.example"), (404, error_body(404)), "regex is anchored (^)")

# --- methods ---------------------------------------------------------------------------------------
is_(get("/only-get", "b.example"), (200, b"G\n"), "methods = [GET]: GET")
# a route that holds but for the method: 405 with what it allows (t/http/methods.t has more)
r = p.get("/only-get", host="b.example", method="POST", body=b"")
is_((r.status, r.body, r.header("Allow")), (405, error_body(405), "GET"),
    "methods = [GET]: POST is 405 with Allow: GET")
r = p.get("/only-get", host="b.example", method="DELETE")
is_((r.status, r.header("Allow")), (405, "GET"), "methods = [GET]: DELETE is 405 too")
is_(get("/multi", "b.example", method="POST", body=b"x"), (202, b"M\n"), "methods = [POST, PUT]: POST")
is_(get("/multi", "b.example", method="PUT", body=b"x"), (202, b"M\n"), "methods = [POST, PUT]: PUT")
r = p.get("/multi", host="b.example")
is_((r.status, r.header("Allow")), (405, "POST, PUT"), "methods = [POST, PUT]: GET is 405, Allow: POST, PUT")

# --- listener ----------------------------------------------------------------------------------------
is_(get("/", "b.example", port="port2"), (200, b"OTHER\n"), "listener = other: on the other port")
is_(get("/zzz", "b.example", port="port2"), (200, b"OTHER\n"), "listener = other: any path")
is_(get("/zzz", "b.example", port="port"), (404, error_body(404)), "listener = other: not on the main port")
is_(get("/", "a.example", port="port2"), (200, b"A\n"), "on the other port, the earlier host route still wins")

# --- return: status, body, content type, headers, location ------------------------------------
r = p.get("/redir", host="b.example")
is_((r.status, r.reason), (301, "Moved Permanently"), "redirect: 301 Moved Permanently")
is_(r.header("Location"), "http://a.example/", "redirect: Location")
is_((r.header("Content-Length"), r.body), ("0", b""), "redirect without body: Content-Length 0")
r = p.get("/found/x", host="b.example")
is_((r.status, r.reason, r.header("Location"), r.body), (302, "Found", "/elsewhere", b"moved\n"),
    "302 with location and body")
is_(r.header("Content-Type"), "text/plain", "302 body: text/plain")

r = p.get("/h", host="b.example")
is_((r.status, r.body), (200, b"H\n"), "headers route: body")
is_((r.header("X-Test"), r.header("X-Two")), ("yes", "2"), "configured headers are sent")
is_(r.headers.count("X-Test"), 1, "configured header sent once")
r = p.get("/h", host="b.example", method="HEAD")
is_((r.status, r.body, r.header("X-Test"), r.header("Content-Length")), (200, b"", "yes", "2"),
    "HEAD: configured headers, Content-Length, no body")

r = p.get("/json", host="b.example")
is_((r.status, r.body, r.header("Content-Type"), r.header("Content-Length")),
    (200, b"{}", "application/json", "2"), "content_type is used")
r = p.get("/teapot", host="b.example")
is_((r.status, r.body), (418, b"short and stout\n"), "any configured status (418)")
r = p.get("/empty", host="b.example")
is_((r.status, r.body), (204, b""), "204 without body")
is_(r.header("Content-Length"), None, "204: no Content-Length")
is_(r.header("Transfer-Encoding"), None, "204: no Transfer-Encoding")
with p.connect() as c:
    r = c.request("GET", "/empty", host="b.example")
    r2 = c.request("GET", "/h", host="b.example")
    is_((r.status, r2.status, r2.body), (204, 200, b"H\n"), "a 204 keeps the connection in sync")

# --- absolute-form ------------------------------------------------------------------------------
r = p.request(b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n")
is_((r.status, r.body), (200, b"A\n"), "absolute-form: routed by its authority, not Host")
r = p.request(b"GET http://x.wild.example/y HTTP/1.1\r\nHost: a.example\r\n\r\n")
is_((r.status, r.body), (200, b"W\n"), "absolute-form to a wildcard host")
r = p.request(b"GET http://b.example/re/9 HTTP/1.1\r\nHost: a.example\r\n\r\n")
is_((r.status, r.body), (201, b"RE\n"), "absolute-form: its path is used for path matching")
r = p.request(b"GET http://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n")
is_((r.status, r.body), (200, b"A\n"), "absolute-form with a port")

# --- many exact hosts ---------------------------------------------------------------------------------
got = [get("/", "h%d.many.example" % i) for i in (0, 1, 999, 1999)]
is_(got, [(200, ("many %d\n" % i).encode()) for i in (0, 1, 999, 1999)], "2000 exact hosts: each its own")
is_(get("/zzz", "h2000.many.example"), (404, error_body(404)), "2000 exact hosts: an unknown one is 404")

done_testing()
