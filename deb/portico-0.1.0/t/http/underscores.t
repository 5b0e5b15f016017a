#!/usr/bin/env python3
# Request fields with '_' in their name (underscores_in_headers): an origin that maps field
# names to CGI variables reads X_Real_IP as X-Real-IP, so by default they never reach it.
# "drop" (default) removes every such field, "pass" keeps them except the twins of fields
# portico manages (and of the route's set_request_headers), "reject" answers 400. Checked
# against a real origin (echo) for each mode, with the error-log line of each drop.
import os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

o = Origin.echo()

ROUTES = [
    proxy_route("app", path_prefix="/env",
                set_request_headers='( { name = "X-Env"; value = "prod"; } )'),
    proxy_route("app"),
]

SPOOF = [("X_Real_IP", "6.6.6.6"), ("X_Forwarded_For", "6.6.6.6"),
         ("Transfer_Encoding", "chunked"), ("Content_Length", "5")]
TWIN_NAMES = "X_Real_IP, X_Forwarded_For, Transfer_Encoding, Content_Length"


def start(mode):
    extra = "" if mode is None else 'underscores_in_headers = "%s";' % mode
    return Portico(proxy_config(upstream("app", [o.address]), ROUTES, extra=extra))


def raw_get(p, target, fields, body=b"", method="GET"):
    """One request on a fresh connection with fields exactly as given (names untouched)."""
    head = "%s %s HTTP/1.1\r\nHost: a.example\r\n" % (method, target)
    head += "".join("%s: %s\r\n" % f for f in fields) + "\r\n"
    c = p.connect()
    c.send(head.encode("latin-1") + body)
    try:
        r = c.read_response(method)
    except ConnectionClosed:
        r = None
    return r, c


def last_origin_request(before):
    """The request the origin received after `before` requests, or None."""
    if o.wait_requests(before + 1, 3.0) <= before:
        return None
    return o.received[before]


DROP_LINE = (r"\[info\] \d+#worker \d+: dropped %d request header fields? with '_' in the "
             r"name from 127\.0\.0\.1: %s%s$")


def check_spoof(p, mode, kept_extra, log_names, log_suffix):
    """The four spoofing fields plus My_Field and X-Plain: what reaches the origin."""
    mark = p.log_mark()
    n0 = o.requests
    r, c = raw_get(p, "/spoof", SPOOF + [("My_Field", "mine"), ("X-Plain", "p")])
    c.close()
    is_(r.status if r else None, 200, "%s: the request is proxied" % mode)
    req = last_origin_request(n0)
    ok(req is not None, "%s: the origin got it" % mode)
    if req is None:
        return
    is_(headers_of(req), request_fields(extra=[("X-Plain", "p")] + kept_extra),
        "%s: the origin got exactly portico's X-Real-IP / X-Forwarded-For and no twin" % mode)
    is_((req.header("X-Real-IP"), req.header("X-Forwarded-For")), ("127.0.0.1", "127.0.0.1"),
        "%s: X-Real-IP and X-Forwarded-For are the client's address, not 6.6.6.6" % mode)
    ok(b"6.6.6.6" not in req.head, "%s: 6.6.6.6 appears nowhere in the forwarded head" % mode)
    nlog = len(log_names.split(", "))
    ok(p.wait_log(DROP_LINE % (nlog, re.escape(log_names), re.escape(log_suffix)), 3.0,
                  start=mark),
       "%s: info line: dropped %d fields, which ones, which client" % (mode, nlog))


def check_framing(p, mode):
    """A twin next to the real framing field: the origin sees one framing, the real one."""
    n0 = o.requests
    r, c = raw_get(p, "/cl", [("Content-Length", "5"), ("Transfer_Encoding", "chunked")],
                   b"hello", "POST")
    c.close()
    req = last_origin_request(n0)
    ok(r is not None and r.status == 200 and req is not None
       and (req.header("Content-Length"), req.header("Transfer-Encoding"), req.body)
       == ("5", None, b"hello")
       and not any("_" in n for n, v in req.headers),
       "%s: Content-Length + Transfer_Encoding: body by Content-Length, no twin" % mode)
    n0 = o.requests
    r, c = raw_get(p, "/te", [("Transfer-Encoding", "chunked"), ("Content_Length", "3")],
                   b"5\r\nhello\r\n0\r\n\r\n", "POST")
    c.close()
    req = last_origin_request(n0)
    # request buffering (the default) reads the chunked body whole: it goes on with its
    # own length, never the client's Content_Length
    ok(r is not None and r.status == 200 and req is not None and not req.chunked
       and req.body == b"hello" and req.header("Content-Length") == "5"
       and not any("_" in n for n, v in req.headers),
       "%s: Transfer-Encoding + Content_Length: chunked body, no twin" % mode)


# --- default (no key) and "drop": every '_' field goes ---------------------------------------
for mode in (None, "drop"):
    name = "default" if mode is None else 'drop'
    p = start(mode)
    check_spoof(p, name, [], TWIN_NAMES + ", My_Field", "")
    check_framing(p, name)
    # a name that starts or ends with '_', any case
    n0 = o.requests
    r, c = raw_get(p, "/edge", [("_Lead", "1"), ("trail_", "2"), ("x-forwarded_HOST", "h")])
    c.close()
    req = last_origin_request(n0)
    ok(req is not None and not any("_" in n for n, v in req.headers)
       and req.header("X-Forwarded-Host") == "a.example",
       "%s: _Lead, trail_ and x-forwarded_HOST dropped; X-Forwarded-Host is portico's" % name)
    # no '_' in any name: nothing dropped, no log line
    mark = p.log_mark()
    n0 = o.requests
    r, c = raw_get(p, "/plain", [("X-Plain", "under_score_in_value")])
    c.close()
    req = last_origin_request(n0)
    ok(req is not None and req.header("X-Plain") == "under_score_in_value",
       "%s: '_' in a value is nothing special" % name)
    ok(re.search("dropped", p.error_log()[mark:]) is None,
       "%s: no drop line for a request without '_' in a name" % name)
    p.stop()

# --- "pass": ordinary '_' fields pass, twins of managed fields never do ----------------------
p = start("pass")
check_spoof(p, "pass", [("My_Field", "mine")], TWIN_NAMES,
            " (read with '-', a field portico manages)")
check_framing(p, "pass")
n0 = o.requests
r, c = raw_get(p, "/edge", [("Keep_Alive", "1"), ("Proxy_Connection", "x"),
                            ("X_Forwarded_Proto", "https"), ("x-forwarded_HOST", "h"),
                            ("X_Forwarded_Port", "443")])
c.close()
req = last_origin_request(n0)
ok(req is not None and req.header("X-Forwarded-Proto") == "http"
   and req.header("X-Forwarded-Host") == "a.example" and req.header("X_Forwarded_Port") == "443"
   and [n for n, v in req.headers if "_" in n] == ["X_Forwarded_Port"],
   "pass: Keep_Alive, Proxy_Connection, X_Forwarded_Proto, x-forwarded_HOST dropped; "
   "X_Forwarded_Port (not managed) passes")
# a twin of a field the route sets with set_request_headers
mark = p.log_mark()
n0 = o.requests
r, c = raw_get(p, "/env", [("X_Env", "evil"), ("x_ENV", "evil2"), ("My_Field", "m")])
c.close()
req = last_origin_request(n0)
ok(req is not None and req.header_all("X-Env") == ["prod"]
   and [n for n, v in req.headers if "_" in n] == ["My_Field"],
   "pass: X_Env and x_ENV do not reach the origin beside the route's X-Env")
ok(p.wait_log(r"\[info\] .*dropped request header field X_Env from 127\.0\.0\.1: read with "
              r"'-', a field this route sets", 3.0, start=mark),
   "pass: info line for the set_request_headers twin")
p.stop()

# --- "reject": 400, the usual refusal line, nothing reaches the origin ----------------------
p = start("reject")
o.reset_counters()
for fields, first in ((SPOOF, "X_Real_IP"), ([("X-Ok", "1"), ("My_Field", "m")], "My_Field")):
    mark = p.log_mark()
    n0 = o.requests
    r, c = raw_get(p, "/spoof", fields)
    is_(r.status if r else None, 400, "reject: %s refused with 400" % first)
    is_(r.header("Connection") if r else None, "close", "reject: Connection: close")
    ok(c.closed(2.0), "reject: the connection is closed")
    c.close()
    ok(p.wait_log(refused_re(400).replace(r"\(.+\)", "") +
                  re.escape("(header field name with '_': %s)" % first), 3.0, start=mark),
       "reject: refusal line names %s" % first)
is_((o.requests, o.accepted), (0, 0), "reject: the origin received nothing (no connection)")
r, c = raw_get(p, "/plain", [("X-Plain", "a_b")])
c.close()
is_(r.status if r else None, 200, "reject: a request without '_' in a name is proxied")
p.stop()

# --- the key's values are checked ------------------------------------------------------------
p = Portico(proxy_config(upstream("app", [o.address]), ROUTES,
                         extra='underscores_in_headers = "allow";'), start=False)
res = run_bin(["-t", "-c", p.conf_path])
is_(res.returncode, 1, "underscores_in_headers = \"allow\": -t fails")
like(res.stderr, r"portico\.conf:\d+: key 'underscores_in_headers': \"allow\" is not one of "
     r"drop, pass, reject", "-t names the file, line, key and the allowed values")
p = Portico(proxy_config(upstream("app", [o.address]), ROUTES,
                         extra='underscores_in_headers = true;'), start=False)
res = run_bin(["-t", "-c", p.conf_path])
is_(res.returncode, 1, "underscores_in_headers = true: -t fails")

ok(not o.errors, "the origin saw no malformed request")
done_testing()
