#!/usr/bin/env python3
# Keep-alive, Connection: close, HTTP/1.0, pipelining (case 24), bodies on keep-alive
# connections, Expect: 100-continue to a return route (case 21).
import os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

p = Portico(standard_config(limits=BASE_LIMITS.replace("client_body_timeout_ms = 1000",
                                                       "client_body_timeout_ms = 3000")))


def conn_tokens(r):
    return [t.strip().lower() for t in (r.header("Connection") or "").split(",") if t.strip()]


# --- HTTP/1.1: keep-alive by default -----------------------------------------------------
with p.connect() as c:
    bodies = []
    for i in range(5):
        r = c.request("GET", "/re/%d" % i, host="b.example")
        bodies.append((r.status, r.body, "close" in conn_tokens(r)))
    is_(bodies, [(201, b"RE\n", False)] * 5, "HTTP/1.1: five requests on one connection")
    # Idle for less than keepalive_timeout (2 s) between requests: the timer restarts.
    seq = []
    for i in range(3):
        time.sleep(1.2)
        r = c.request("GET", "/", host="a.example")
        seq.append((r.status, r.body))
    is_(seq, [(200, b"A\n")] * 3, "requests 1.2 s apart (3.6 s in all) on one connection")

# --- Connection: close ---------------------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/", host="a.example", headers=["Connection: close"])
    is_((r.status, r.body), (200, b"A\n"), "Connection: close: answered")
    is_(conn_tokens(r), ["close"], "Connection: close in the response")
    ok(c.closed(2.0), "Connection: close: server closes")

with p.connect() as c:
    r = c.request("GET", "/", host="a.example", headers=["Connection: keep-alive, close"])
    ok("close" in conn_tokens(r) and c.closed(2.0), "Connection: keep-alive, close: close wins")

# --- HTTP/1.0 --------------------------------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/", host="a.example", version="HTTP/1.0")
    is_((r.status, r.body), (200, b"A\n"), "HTTP/1.0: answered")
    ok("keep-alive" not in conn_tokens(r), "HTTP/1.0: no Connection: keep-alive")
    ok(c.closed(2.0), "HTTP/1.0 without keep-alive: closed")

with p.connect() as c:
    r = c.request("GET", "/", host="a.example", version="HTTP/1.0", headers=["Connection: keep-alive"])
    is_((r.status, r.body), (200, b"A\n"), "HTTP/1.0 keep-alive: answered")
    is_(conn_tokens(r), ["keep-alive"], "HTTP/1.0 keep-alive: Connection: keep-alive in the response")
    r = c.request("GET", "/h", host="b.example", version="HTTP/1.0", headers=["Connection: Keep-Alive"])
    is_((r.status, r.body), (200, b"H\n"), "HTTP/1.0 keep-alive: second request on the connection")
    r = c.request("GET", "/re/7", host="b.example", version="HTTP/1.0")
    is_((r.status, r.body), (201, b"RE\n"), "HTTP/1.0: third request without keep-alive")
    ok(c.closed(2.0), "...after which the server closes")

# --- pipelining -------------------------------------------------------------------------------
with p.connect() as c:
    c.send(build_request("GET", "/", "a.example") + build_request("GET", "/h", "b.example")
           + build_request("GET", "/re/1", "b.example") + build_request("GET", "/zzz", "b.example"))
    rs = c.read_responses(4)
    is_([(r.status, r.body) for r in rs],
        [(200, b"A\n"), (200, b"H\n"), (201, b"RE\n"), (404, error_body(404))],
        "four pipelined GETs in one write: answered in order")

with p.connect() as c:
    c.send(build_request("GET", "/", "a.example") + build_request("HEAD", "/h", "b.example")
           + build_request("POST", "/", "a.example", body=b"hello")
           + build_request("GET", "/re/2", "b.example"))
    rs = c.read_responses(["GET", "HEAD", "POST", "GET"])
    is_([(r.status, r.body) for r in rs],
        [(200, b"A\n"), (200, b""), (200, b"A\n"), (201, b"RE\n")],
        "GET, HEAD, POST (CL 5 + body), GET pipelined: in order")
    is_(rs[1].header("Content-Length"), "2", "pipelined HEAD: Content-Length without body")
    r = c.request("GET", "/", host="a.example")
    is_((r.status, r.body), (200, b"A\n"), "the connection goes on after the pipeline")

# The same pipeline written byte by byte.
with p.connect() as c:
    c.send_slowly(build_request("GET", "/", "a.example") + build_request("POST", "/", "a.example", body=b"hello")
                  + build_request("GET", "/h", "b.example"), delay=0.001)
    rs = c.read_responses(3)
    is_([(r.status, r.body) for r in rs], [(200, b"A\n"), (200, b"A\n"), (200, b"H\n")],
        "pipeline sent byte by byte: same answers")

# A valid request, then an invalid one, then a valid one, in one write.
with p.connect() as c:
    c.send(build_request("GET", "/", "a.example") + b"GET / HTTP/1.1\r\nHost: a.example\r\nX-A: a\r\n b\r\n\r\n"
           + build_request("GET", "/h", "b.example"))
    r1 = c.read_response()
    is_((r1.status, r1.body), (200, b"A\n"), "valid then invalid: first answered")
    r2 = c.read_response()
    is_((r2.status, r2.body, conn_tokens(r2)), (400, error_body(400), ["close"]),
        "valid then invalid: then 400 with Connection: close")
    ok(c.closed(2.0), "valid then invalid: closed, the third request is not answered")

# A body is never parsed as a request: the POST body is itself a request.
inner = build_request("GET", "/redir", "b.example")
with p.connect() as c:
    c.send(build_request("POST", "/", "a.example", body=inner) + build_request("GET", "/h", "b.example"))
    rs = c.read_responses(2)
    is_([(r.status, r.body) for r in rs], [(200, b"A\n"), (200, b"H\n")],
        "POST whose body looks like a request, then GET: two answers, no 301")
    is_(c.read_available(0.3), b"", "nothing more is sent")

with p.connect() as c:
    c.send(build_request("POST", "/", "a.example", headers=["Transfer-Encoding: chunked"],
                         body=chunked(inner)) + build_request("GET", "/h", "b.example"))
    rs = c.read_responses(2)
    is_([(r.status, r.body) for r in rs], [(200, b"A\n"), (200, b"H\n")],
        "chunked POST whose body looks like a request, then GET: two answers")

# Content-Length: 0 swallows nothing.
with p.connect() as c:
    c.send(b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n" + build_request("GET", "/h", "b.example"))
    rs = c.read_responses(2)
    is_([(r.status, r.body) for r in rs], [(200, b"A\n"), (200, b"H\n")], "POST CL 0, then GET")

# --- bodies on keep-alive connections --------------------------------------------------------
with p.connect() as c:
    r = c.request("POST", "/", host="a.example", body=b"x" * 700)
    is_((r.status, r.body), (200, b"A\n"), "POST 700 bytes to a return route")
    c.send(b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\n\r\n")
    time.sleep(0.2)
    c.send(b"0123456789")
    r = c.read_response()
    is_((r.status, r.body), (200, b"A\n"), "POST with the body in a second write")
    r = c.request("GET", "/h", host="b.example")
    is_((r.status, r.body), (200, b"H\n"), "next request on the same connection")

# --- Expect: 100-continue to a return route -----------------------------------------------
# The answer comes without 100 Continue; then either the server closes, or it reads and
# discards the body and goes on. The body (itself a request) must never be parsed.
with p.connect() as c:
    c.send(build_request("POST", "/", "a.example", headers=["Expect: 100-continue",
                                                             "Content-Length: %d" % len(inner)]))
    try:
        r = c.read_response()     # a 1xx raises ProtocolError: no interim response allowed
        is_((r.status, r.body), (200, b"A\n"), "Expect: 100-continue: final response, no 100 Continue")
        if c.closed(1.0):
            ok(True, "Expect: 100-continue: the server closed the connection")
        else:
            c.send(inner + build_request("GET", "/h", "b.example"))
            n = c.read_response()
            is_((n.status, n.body), (200, b"H\n"), "Expect: 100-continue: body discarded, next request answered")
            is_(c.read_available(0.3), b"", "Expect: 100-continue: the body was not answered as a request")
    except HTTPError as e:
        ok(False, "Expect: 100-continue: a final response, then close or keep-alive")
        diag(str(e))

# Expect: 100-continue with the body sent at once anyway.
with p.connect() as c:
    c.send(build_request("POST", "/", "a.example", headers=["Expect: 100-continue"], body=inner)
           + build_request("GET", "/h", "b.example"))
    try:
        r = c.read_response()
        is_((r.status, r.body), (200, b"A\n"), "Expect + body at once: answered without 100")
        n = c.try_read_response()
        ok(n is None or (n.status, n.body) == (200, b"H\n"),
           "Expect + body at once: then the GET is answered or the connection closed; the body is never a request")
    except HTTPError as e:
        ok(False, "Expect + body at once: answered")
        diag(str(e))

done_testing()
