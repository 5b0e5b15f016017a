#!/usr/bin/env python3
# The access log's "json" format and X-Request-Id: one valid JSON object per line with
# the request's fields, hostile request bytes escaped; a request id generated when absent
# (passed to the origin, logged), a client's plain id kept, an unusable one replaced;
# request_id = false turns it off.
import json, os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 90)

echo = Origin.echo()
JSON_LOG = ('access_log = { path = "{tmp}/access.log"; format = "json"; enabled = true; '
            'flush_ms = 50; };')
ROUTES = [proxy_route("app", "/app/"),
          '{ path_prefix = "/h"; return = { status = 200; body = "hello\\n"; }; }']
p = Portico(proxy_config(upstream("app", [echo.address]), ROUTES, access_log=JSON_LOG))


def entries(n):
    p.wait_access_log(n)
    out = []
    for line in p.access_log_lines():
        out.append(json.loads(line))        # raises: the test fails on invalid JSON
    return out


def origin_ids(req):
    return [v for k, v in req.headers if k.lower() == "x-request-id"]


# -- a proxied request without an id
r = p.get("/app/x?a=1", headers=[("User-Agent", "ua/1"), ("Referer", "http://r.example/")])
is_(r.status, 200, "proxied")
got = origin_ids(echo.received[-1])
is_(len(got), 1, "the origin gets one X-Request-Id")
ok(re.match(r"^[0-9a-f]{32}$", got[0] or ""), "a generated id: 32 hex digits (%s)" % got[0])
e = entries(1)[-1]
ok(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["time"]), "time: ISO 8601 UTC with ms")
is_({k: e[k] for k in ("remote_addr", "request_id", "method", "uri", "protocol", "host",
                       "listener", "status", "referer", "user_agent", "upstream_addr",
                       "upstream_status", "cache_status")},
    {"remote_addr": "127.0.0.1", "request_id": got[0], "method": "GET", "uri": "/app/x?a=1",
     "protocol": "HTTP/1.1", "host": "a.example", "listener": "main", "status": 200,
     "referer": "http://r.example/", "user_agent": "ua/1", "upstream_addr": echo.address,
     "upstream_status": 200, "cache_status": None},
    "the JSON line has the request's fields and the id the origin got")
is_(e["body_bytes_sent"], len(r.body), "body_bytes_sent is the body's length")
ok(e["bytes_sent"] > e["body_bytes_sent"], "bytes_sent counts the head too")
ok(isinstance(e["request_time"], float) and isinstance(e["upstream_response_time"], float),
   "request_time and upstream_response_time are numbers")
is_(e["tls_protocol"], None, "tls_protocol: null on a plain connection")

# -- no upstream: nulls
r = p.get("/h")
e = entries(2)[-1]
is_((e["status"], e["upstream_addr"], e["upstream_status"], e["upstream_response_time"],
     e["referer"]), (200, None, None, None, None), "a return route: upstream fields are null")
ok(re.match(r"^[0-9a-f]{32}$", e["request_id"]), "and it has an id too")

# -- a client's id is kept; an unusable one replaced
p.get("/app/y", headers=[("X-Request-Id", "lb1:abc-123_Z.=")])
is_(origin_ids(echo.received[-1]), ["lb1:abc-123_Z.="], "a plain client id goes to the origin as it is")
is_(entries(3)[-1]["request_id"], "lb1:abc-123_Z.=", "and is logged")
for bad in ['a"b', "x" * 129, "a b"]:
    n = len(p.access_log_lines())
    p.get("/app/z", headers=[("X-Request-Id", bad)])
    got = origin_ids(echo.received[-1])
    ok(len(got) == 1 and re.match(r"^[0-9a-f]{32}$", got[0]),
       "an unusable id (%r) is replaced by a generated one" % bad[:10])
    is_(entries(n + 1)[-1]["request_id"], got[0], "the replacement is logged")

# -- hostile bytes stay valid JSON and decode to what was sent
n = len(p.access_log_lines())
ua = 'x"y\\z\tend'
with p.connect() as c:
    # UTF-8 (e-acute, a 4-byte emoji), then bytes that are not: a lone 0xff, an overlong
    # slash (c0 af), a surrogate (ed a0 80), a cut sequence (e2 82)
    c.send(b"GET /h HTTP/1.1\r\nHost: a.example\r\nUser-Agent: " + ua.encode()
           + b"\xc3\xa9\xf0\x9f\x98\x80\xff\xc0\xaf\xed\xa0\x80\xe2\x82\r\n\r\n")
    r = c.read_response()
e = entries(n + 1)[-1]
is_(e["user_agent"], ua + "\u00e9\U0001f600" + "\u00ff\u00c0\u00af\u00ed\u00a0\u0080\u00e2\u0082",
    "quote, backslash, tab escaped; UTF-8 kept as text; bytes that are not UTF-8 as \\u00XX")
raw = p.access_log_lines()[-1]
ok("\t" not in raw and "\ufffd" not in raw, "no raw control, no byte that is not UTF-8 in the line")
ok("\u00e9\U0001f600" in raw, "the UTF-8 characters are in the line as they were sent")

# -- a refused request is a line too
n = len(p.access_log_lines())
with p.connect() as c:
    c.send(b"GET / HTTP/1.1\r\n\r\n")
    is_(c.read_response().status, 400, "no Host: 400")
e = entries(n + 1)[-1]
is_((e["status"], e["request_id"]), (400, None), "the refused request is logged as JSON (no id: "
    "refused before it was given one)")

# -- ids are distinct
ids = set()
for i in range(50):
    p.get("/app/u")
    ids.add(origin_ids(echo.received[-1])[0])
is_(len(ids), 50, "50 requests, 50 distinct ids")
p.stop()

# -- request_id = false
q = Portico(proxy_config(upstream("app", [echo.address]), ROUTES, access_log=JSON_LOG,
                         extra="request_id = false;"))
q.get("/app/x")
is_(origin_ids(echo.received[-1]), [], "request_id = false: no id added")
q.wait_access_log(1)
is_(json.loads(q.access_log_lines()[-1])["request_id"], None, "and null in the log")
q.get("/app/x", headers=[("X-Request-Id", "keep-me")])
is_(origin_ids(echo.received[-1]), ["keep-me"], "a client's id still passes through untouched")

done_testing()
