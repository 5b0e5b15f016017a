#!/usr/bin/env python3
# Allowed methods: a request that a route would take but for its method gets 405 with an
# Allow field naming what the routes matching it allow (their union), not 404; a later
# route without the condition still takes it.
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from filtertest import *

if not os.path.exists(TEST_BIN):
    skip_all("no test binary (t/portico-test; make check builds it)")

ROUTES = """routes = (
  { path_prefix = "/_counters"; test_counters = true; },
  { host = "x.example"; path_prefix = "/a"; methods = ["GET", "HEAD"]; return = { body = "xa\\n"; }; },
  { path_prefix = "/a"; methods = ["POST"]; return = { body = "a-post\\n"; }; },
  { path_prefix = "/b"; methods = ["PURGE"]; return = { body = "purged\\n"; }; },
  { path_prefix = "/b"; methods = ["BAN", "PURGE", "GET"]; return = { body = "banned\\n"; }; },
  { path_prefix = "/c"; methods = ["GET"]; return = { body = "c-get\\n"; }; },
  { path_prefix = "/c"; return = { body = "c-any\\n"; }; },
  { host = "y.example"; path_prefix = "/d"; methods = ["PUT"]; return = { body = "d\\n"; }; },
  { listener = "other"; path_prefix = "/e"; methods = ["DELETE"]; return = { body = "e\\n"; }; }
);"""
p = Portico(standard_config(routes=ROUTES, workers=1), bin=TEST_BIN)

mark = p.log_mark()
with p.connect() as c:
    c.send(build_request("DELETE", "/a/1", "x.example"))
    r = c.read_response()
    is_((r.status, r.body, r.header("Allow")), (405, error_body(405), "GET, HEAD, POST"),
        "405 with the union of the methods of every route that holds but for the method "
        "(host route GET, HEAD + host-less POST)")
    c.send(build_request("GET", "/a/1", "x.example"))
    r = c.read_response()
    is_((r.status, r.body), (200, b"xa\n"), "...and the connection is kept for the next request")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 405 Method Not Allowed \(method not allowed: "
              r"the route allows GET, HEAD, POST\)", 3, mark), "the refusal is logged with what is allowed")

r = p.get("/a/1", host="other.example", method="DELETE")
is_((r.status, r.header("Allow")), (405, "POST"), "another host: only the host-less route counts")
r = p.get("/a/1", host="other.example", method="POST", body=b"")
is_((r.status, r.body), (200, b"a-post\n"), "the allowed method is served")

r = p.get("/b", host="z.example", method="PUT", body=b"")
is_((r.status, r.header("Allow")), (405, "GET, PURGE, BAN"),
    "method tokens portico does not know (PURGE, BAN) are listed once each, after the known ones")
r = p.get("/b", host="z.example", method="BAN")
is_((r.status, r.body), (200, b"banned\n"), "a later route allowing the method takes it")

r = p.get("/c", host="z.example", method="POST", body=b"")
is_((r.status, r.body, r.header("Allow")), (200, b"c-any\n", None),
    "a later route with no methods condition takes what an earlier one does not allow")

r = p.get("/d", host="z.example", method="GET")
is_((r.status, r.body), (404, error_body(404)), "a route for another host is not a reason for 405: 404")
r = p.get("/zzz", host="z.example")
is_(r.status, 404, "no route at all: 404")

r = p.get("/e", host="z.example", method="GET")
is_(r.status, 404, "a route for another listener does not count")
r = p.get("/e", host="z.example", method="GET", port="port2")
is_((r.status, r.header("Allow")), (405, "DELETE"), "...on its own listener it does")

r = p.get("/a/1", host="x.example", method="HEAD")
is_((r.status, r.body), (200, b""), "HEAD where it is listed")

with p.connect() as c:
    c.send(b"CONNECT x.example:443 HTTP/1.1\r\nHost: x.example:443\r\n\r\n")
    r = c.read_response()
    is_((r.status, r.header("Allow")), (405, "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
        "CONNECT keeps its own 405 (refused by the parser before routing)")
is_(counters(p).get("route:methods"), 4, "the four 405s of routes' methods counted in route:methods (not the parser's CONNECT)")
done_testing()
