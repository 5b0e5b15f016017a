#!/usr/bin/env python3
# Reverse proxying, zero-copy relay: Content-Length bodies of 16 KiB and more go from the
# origin socket to the client socket through a pipe with splice(2). Around that path:
# keep-alive on both sides after a spliced body, pipelined requests, a client reading
# slowly, an origin closing midway, an origin sending more than it announced, HEAD.
import hashlib, os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 120)

SIZE = 256 << 10
big = Origin.large(SIZE)
half = Origin.close_mid_body(total=1 << 20, sent=600 << 10)
BODY = bytes(range(256)) * 400            # 102400 bytes


def overlong(o, c, req):
    """The first connection's answer carries 7 bytes after its announced body."""
    extra = b"GARBAGE" if c.index == 1 else b""
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY + extra)
    return True


over = Origin(overlong)
ups = [upstream("big", [big.address]), upstream("half", [half.address]),
       upstream("over", [over.address])]
routes = [proxy_route("half", "/half/"), proxy_route("over", "/over/"), proxy_route("big", "/")]
p = Portico(proxy_config(ups, routes))
w = the_worker(p)
want = pattern_sha256(SIZE)

# --- keep-alive on both sides ---------------------------------------------------------------
with p.connect() as c:
    got = []
    for i in range(3):
        c.send(build_request("GET", "/k%d" % i))
        r = c.read_response(timeout=10)
        got.append((r.status, len(r.body), hashlib.sha256(r.body).hexdigest()))
    is_(got, [(200, SIZE, want)] * 3, "three 256 KiB bodies on one client connection, every byte right")
is_(big.accepted, 1, "...over one origin connection, reused after each spliced body")

# --- pipelined ------------------------------------------------------------------------------
with p.connect() as c:
    c.send(build_request("GET", "/p1") + build_request("HEAD", "/p2") + build_request("GET", "/p3"))
    rs = c.read_responses(["GET", "HEAD", "GET"], timeout=10)
    is_([(r.status, len(r.body), r.header("Content-Length")) for r in rs],
        [(200, SIZE, str(SIZE)), (200, 0, str(SIZE)), (200, SIZE, str(SIZE))],
        "pipelined GET, HEAD, GET: each answered in order, HEAD without a body")
    ok(hashlib.sha256(rs[2].body).hexdigest() == want, "...the last body intact")

# --- a slow reader --------------------------------------------------------------------------
with p.connect(rcvbuf=8192) as c:
    c.send(build_request("GET", "/slow"))
    body = read_raw_body(c.sock, SIZE, piece=4096, pause=0.001)
    is_((len(body), hashlib.sha256(body).hexdigest()), (SIZE, want),
        "a client reading 4 KiB at a time through an 8 KiB window gets every byte")

# --- an origin closing midway ---------------------------------------------------------------
mark = p.log_mark()
with p.connect() as c:
    c.send(build_request("GET", "/half/x"))
    data = c.read_until_close(timeout=10)
    head_end = data.find(b"\r\n\r\n")
    ok(data.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 1048576" in data[:head_end],
       "origin closing after 600 KiB of 1 MiB: the head went out as it was")
    is_(len(data) - head_end - 4, 600 << 10, "...then the 600 KiB it sent, then a close (no more, no less)")
ok(p.wait_log(r"upstream closed the connection in the middle of the body", start=mark),
   "...logged")

# --- an origin sending more than it announced -----------------------------------------------
r = p.get("/over/1")
is_((r.status, r.body == BODY), (200, True), "origin sending 7 bytes past Content-Length: the client gets the body")
r2 = p.get("/over/2")
is_((r2.status, r2.body == BODY), (200, True), "...and the next request a clean answer")
is_(over.accepted, 2, "...from a new origin connection: the one with stray bytes was not reused")

r = p.get("/after")
is_((r.status, len(r.body)), (200, SIZE), "the worker still answers")
done_testing()
