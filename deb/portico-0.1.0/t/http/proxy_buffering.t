#!/usr/bin/env python3
# Request buffering: a body up to request_buffer_size is read whole before an origin is
# chosen, so clients sending slowly hold no origin connection; bigger ones are streamed.
# client_body_min_rate cuts a body trickling in, counting only the time portico waits for
# the client (not the time a slow origin makes it wait).
import os, socket, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *


def slow_reader(o, c):
    """Reads request bodies 16 KiB at a time with a pause between reads."""
    while True:
        req = c.read_head()
        if req is None:
            return
        o.record(c, req)
        remaining, n = int(req.header("Content-Length")), 0
        while remaining:
            time.sleep(0.05)
            d = c.read_exact(min(remaining, 16384))
            if d is None:
                return
            remaining -= len(d)
            n += len(d)
        c.sendall(response_bytes(200, [], b"read %d\n" % n))


counting = Origin.echo()
streamed = Origin.echo()                # keepalive = 0: each request opens a connection
slow = Origin(slow_reader, raw=True)
LIMITS = ("limits = { client_header_timeout_ms = 5000; client_body_timeout_ms = 1000; "
          "client_body_min_rate = 100; keepalive_timeout_ms = 5000; send_timeout_ms = 5000; "
          "drain_timeout_ms = 3000; };")
p = Portico(proxy_config(
    [upstream("c", [counting.address]), upstream("s", [streamed.address], keepalive=0),
     upstream("slow", [slow.address])],
    [proxy_route("s", "/stream/", request_buffering=False),
     proxy_route("s", "/small/", request_buffer_size=1000),
     proxy_route("slow", "/slow/", request_buffering=False),
     proxy_route("c", "/")], limits=LIMITS))

# --- slow bodies hold no origin connection -------------------------------------------------
N = 20
body = bytes(range(256)) * 4          # 1,024 bytes
results = [None] * N
clients = [p.connect(timeout=10) for _ in range(N)]
for i, c in enumerate(clients):
    c.send(b"POST /up/%d HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % (i, len(body)))
# every client sends its body in 8 pieces 150 ms apart (~1 s, about 1 KiB/s: above the minimum rate)
seen_open = []
for k in range(8):
    piece = body[k * 128:(k + 1) * 128]
    # sampled before each piece: every body is still incomplete then (after the last one
    # the origin is rightly contacted at once)
    seen_open.append(counting.open_conns + counting.accepted)
    for c in clients:
        c.send(piece)
    if k < 7:
        time.sleep(0.15)
is_(max(seen_open), 0, "%d clients sending 1 KiB bodies slowly: no origin connection opened meanwhile" % N)
for i, c in enumerate(clients):
    r = c.read_response(timeout=10)
    results[i] = (r.status, r.body.endswith(b"\r\n\r\n" + body))
    c.close()
is_(results, [(200, True)] * N, "...then every body reaches the origin whole")
cmp_ok(counting.accepted, "<=", N, "...over at most one origin connection per request")

# bigger than request_buffer_size: streamed, the origin is contacted before the body is in
n0 = streamed.accepted
with p.connect() as c:
    c.send(b"POST /small/big HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2000\r\n\r\n" + b"a" * 100)
    ok(wait_for(lambda: streamed.accepted == n0 + 1, 3),
       "a body over request_buffer_size (Content-Length 2000 > 1000): streamed, origin contacted at once")
    c.send(b"b" * 1900)
    r = c.read_response()
    is_((r.status, r.body.endswith(b"a" * 100 + b"b" * 1900)), (200, True), "...and it arrives whole")

# a chunked body that turns out bigger than request_buffer_size: what was held, then the rest
with p.connect() as c:
    c.send(b"POST /small/chunks HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(b"258\r\n" + b"x" * 600 + b"\r\n")
    time.sleep(0.2)
    c.send(b"258\r\n" + b"y" * 600 + b"\r\n0\r\n\r\n")
    r = c.read_response()
    req = streamed.received[-1]
    is_((r.status, req.header("Transfer-Encoding"), req.body[-1200:]), (200, "chunked", b"x" * 600 + b"y" * 600),
        "chunked body passing request_buffer_size: held part and the rest streamed, chunked")

# --- client_body_min_rate ---------------------------------------------------------------------
def trickle(target):
    """Sends a 1,000-byte body one byte every 50 ms (20 B/s, under 100 B/s); returns the
    response, how long it took and how many bytes went out."""
    c = p.connect(timeout=10)
    c.send(b"POST %s HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1000\r\n\r\n" % target)
    t0, sent = time.monotonic(), 0
    while sent < 1000:
        if not c.send(b"z"):
            break
        sent += 1
        try:
            c.sock.setblocking(False)
            peek = c.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            peek = None
        except OSError:
            peek = b""
        finally:
            c.sock.setblocking(True)
        if peek is not None:
            break                       # an answer (or the close) came
        time.sleep(0.05)
    try:
        r = c.read_response(timeout=5)
    except HTTPError:
        r = None
    c.close()
    return r, time.monotonic() - t0, sent

mark = p.log_mark()
n0 = counting.accepted
r, took, sent = trickle(b"/trickle")
is_((r.status, r.body) if r else None, (408, error_body(408)),
    "a body trickling in under client_body_min_rate: 408 (each byte within client_body_timeout_ms)")
cmp_ok(sent, "<", 1000, "...before the body was complete (%d bytes, %.1f s)" % (sent, took))
is_(counting.accepted, n0, "...and the origin was never contacted")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 408 Request Timeout \(client sent the request body "
              r"below client_body_min_rate\)", 3, mark), "...logged with the reason")

n0 = streamed.accepted
r, took, sent = trickle(b"/stream/trickle")
is_((r.status if r else None, streamed.wait_open(0, 3)), (408, 0),
    "streamed: the trickle is cut too, and its origin connection closed")
is_(streamed.accepted, n0 + 1, "...(that one origin connection had been opened for the stream)")

# a slow origin makes portico stop reading the client: that wait is not the client's
data = b"s" * (1 << 20)
r = p.get("/slow/up", method="POST", body=data, timeout=30)
is_((r.status, r.body), (200, b"read %d\n" % len(data)),
    "1 MiB streamed to an origin reading 16 KiB per 50 ms (~3 s, far under the minimum rate "
    "from the client's side if back-pressure counted): completes")

ok(any("EOF in body" in e for e in streamed.errors), "...the origin saw the body end early")
is_(counting.errors + slow.errors, [], "the other origins saw only well-formed requests")
done_testing()
