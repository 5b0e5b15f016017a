#!/usr/bin/env python3
# Reverse proxying under the core's client limits: a request body too slow (408) or too
# big (413, also when chunked and already half forwarded), a client that takes no
# response bytes for send_timeout_ms: the client gets the core's answer or a close, and
# the origin connection is closed (never pooled with half a request on it).
import os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

LIMITS = ("limits = { client_header_timeout_ms = 2000; client_body_timeout_ms = 500; "
          "keepalive_timeout_ms = 5000; max_header_size = 8192; max_body_size = 1000; "
          "send_timeout_ms = 500; drain_timeout_ms = 3000; };")
echo = Origin.echo()
big = Origin.large(64 << 20)
p = Portico(proxy_config([upstream("echo", [echo.address]), upstream("big", [big.address])],
                         [proxy_route("big", "/big/"), proxy_route("echo", "/stream/", request_buffering=False),
                          proxy_route("echo", "/")], limits=LIMITS))
w = the_worker(p)

# --- too slow --------------------------------------------------------------------------------------
with p.connect() as c:
    c.send(b"POST /stream/slow-body HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\n0123456789")
    t0 = time.monotonic()
    r = c.read_response(timeout=5)
    took = time.monotonic() - t0
    is_((r.status, r.body), (408, error_body(408)), "streamed request body stalls for client_body_timeout_ms: 408")
    ok(0.4 <= took < 3, "...after about 500 ms (%.2f s)" % took)
    ok("close" in conn_tokens(r) and c.closed(3), "...and the client connection is closed")
is_(echo.wait_open(0, 3), 0, "the origin connection that had half the body is closed")
ok(any("EOF in body" in e for e in echo.errors), "...the origin saw the body end early")
echo.errors[:] = []

n0 = echo.accepted
with p.connect() as c:
    c.send(b"POST /slow-body HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\n0123456789")
    r = c.read_response(timeout=5)
    is_((r.status, r.body), (408, error_body(408)), "buffered request body stalls: 408")
is_(echo.accepted, n0, "...and the origin was never contacted (the body is read before an origin is chosen)")

# --- too big -------------------------------------------------------------------------------------------
n0 = echo.accepted
r = p.get("/cl-too-big", method="POST", body=b"x" * 1001)
is_((r.status, r.body), (413, error_body(413)), "Content-Length over max_body_size: 413")
is_(echo.accepted, n0, "...without contacting the origin")

with p.connect() as c:
    c.send(b"POST /stream/chunked-too-big HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(b"258\r\n" + b"a" * 600 + b"\r\n")
    ok(wait_for(lambda: echo.open_conns == 1, 3), "streamed chunked upload: the first 600 bytes go to the origin")
    c.send(b"258\r\n" + b"b" * 600 + b"\r\n0\r\n\r\n")
    r = c.read_response(timeout=5)
    is_((r.status, r.body), (413, error_body(413)), "chunked body passing max_body_size midway: 413")
is_(echo.wait_open(0, 3), 0, "...and the origin connection with half a body is closed")
ok(any("EOF" in e for e in echo.errors), "...the origin saw the body end early")
echo.errors[:] = []

n0 = echo.accepted
with p.connect() as c:
    c.send(b"POST /chunked-too-big HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(b"258\r\n" + b"a" * 600 + b"\r\n")
    c.send(b"258\r\n" + b"b" * 600 + b"\r\n0\r\n\r\n")
    r = c.read_response(timeout=5)
    is_((r.status, r.body), (413, error_body(413)), "buffered chunked body passing max_body_size: 413")
is_(echo.accepted, n0, "...without contacting the origin")

r = p.get("/after", method="POST", body=b"y" * 1000)
is_((r.status, r.body.endswith(b"\r\n\r\n" + b"y" * 1000)), (200, True), "a body of exactly max_body_size passes")

# --- a client that takes nothing -------------------------------------------------------------------------
fd0 = stable_fds(w)
c = p.connect(rcvbuf=4096)
c.send(build_request("GET", "/big/x"))
t0 = time.monotonic()
closed = c.closed(0.2)
ok(not closed, "client reading nothing of a 64 MiB answer: at first, open")
is_(big.wait_open(0, 5), 0, "...after send_timeout_ms without progress portico gives up: the origin connection is closed")
cmp_ok(big.bytes_sent, "<", 32 << 20, "...the origin could send only what buffers hold")
c.close()
is_(wait_fds(w, fd0), fd0, "...and no descriptor is left")
ok(p.wait_log(r"request from 127\.0\.0\.1 aborted: client took no response bytes within send_timeout_ms"),
   "...logged")
done_testing()
