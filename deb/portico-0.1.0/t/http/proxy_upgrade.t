#!/usr/bin/env python3
# Reverse proxying, Upgrade: a 101 from the origin turns the exchange into a byte tunnel
# both ways (echo, 4 MB each way at once), closes propagate from either side (also
# half-closes), the tunnel's own idle timeout; an Upgrade answered with 200 is a normal
# response; Upgrade: h2c is never forwarded.
import hashlib, os, signal, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

WS_REQ = (b"GET /ws/chat HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, Upgrade\r\n"
          b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          b"Sec-WebSocket-Version: 13\r\n\r\n")


def switch(c, req):
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
              % req.header("Upgrade", "none").encode())


def says_bye(o, c, req):
    """After the 101: one message, then the origin closes."""
    switch(c, req)
    c.sendall(b"bye")
    time.sleep(0.05)
    return False


def after_eof(o, c, req):
    """After the 101: echoes until the client's EOF, then one more message and a close."""
    switch(c, req)
    while True:
        d = c.recv_some()
        if not d:
            break
        c.sendall(d)
    c.sendall(b"after-eof")
    return False


def ws_echo(o, c, req):
    """101, then every byte back until EOF."""
    switch(c, req)
    while True:
        d = c.recv_some()
        if not d:
            return False
        c.sendall(d)


ws = Origin(ws_echo)
bye = Origin(says_bye)
half = Origin(after_eof)
normal = Origin.echo()
silent = Origin.silent()
ups = [upstream("ws", [ws.address], tunnel_timeout_ms=1000), upstream("bye", [bye.address]),
       upstream("half", [half.address]), upstream("normal", [normal.address]),
       upstream("wslong", [ws.address]), upstream("silent", [silent.address])]
routes = [proxy_route("bye", "/bye/"), proxy_route("half", "/half/"),
          proxy_route("wslong", "/long/"), proxy_route("silent", "/silent/"),
          proxy_route("normal", "/normal/"), proxy_route("ws", "/ws/")]
p = Portico(proxy_config(ups, routes))
w = the_worker(p)
BASE = fd_count(w)                      # nothing open but listeners, logs, epoll, ...


def upgrade(c, req=WS_REQ):
    c.send(req)
    return c.read_response(allow_interim=True)


def read_n(c, n, timeout=5):
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        d = c.read_available(0.05)
        out += d
        if c.eof:
            break
    return bytes(out)


# --- 101 and the tunnel ------------------------------------------------------------------------------------
c = p.connect(timeout=10)
r = upgrade(c)
is_((r.status, r.header("Upgrade"), conn_tokens(r)), (101, "websocket", ["upgrade"]),
    "101 relayed with Upgrade: websocket and Connection: upgrade")
is_((r.header("Content-Length"), r.header("Transfer-Encoding"), r.header("Sec-WebSocket-Accept")),
    (None, None, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "no framing fields; the origin's other fields relayed")
req = ws.received[-1] if ws.received else OriginRequest()
is_(headers_of(req), request_fields(extra=[("Connection", "upgrade"), ("Upgrade", "websocket"),
                                           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                           ("Sec-WebSocket-Version", "13")]),
    "the origin gets Upgrade and Connection: upgrade (and nothing of the client's Connection)")
c.send(b"ping")
is_(read_n(c, 4), b"ping", "bytes go through the tunnel and come back")

data = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)
sent = []


def sender():
    c.sock.sendall(data)
    sent.append(len(data))


t = threading.Thread(target=sender)
t.start()
got = read_n(c, len(data), 60)
t.join(60)
is_((sent, len(got), sha256(got) == sha256(data)), ([len(data)], len(data), True),
    "4 MiB each way at the same time: all of it, intact")

c.shutdown_write()
t0 = time.monotonic()
ok(c.closed(10.0), "the client's close reaches the origin, whose close reaches the client")
is_(ws.wait_open(0, 10), 0, "the origin connection is closed")
c.close()
is_(wait_fds(w, BASE), BASE, "...and portico holds no descriptor for the tunnel any more")

# the client closes its socket outright in the middle of the tunnel
c = p.connect()
r = upgrade(c)
c.send(b"hello?")
is_((r.status, read_n(c, 6)), (101, b"hello?"), "second tunnel: open")
c.close()
is_(ws.wait_open(0, 3), 0, "the client closes its socket: the origin connection is closed")
is_(wait_fds(w, BASE), BASE, "...no descriptor left")

# --- the origin closes first ----------------------------------------------------------------------------------
with p.connect() as c:
    r = upgrade(c, WS_REQ.replace(b"/ws/chat", b"/bye/x"))
    is_(r.status, 101, "origin that closes after one message: 101")
    is_(c.read_until_close(3), b"bye", "the client gets its message, then EOF")
is_(wait_fds(w, BASE), BASE, "the client's close then ends the tunnel: no descriptor left")

# --- half-close: the client stops sending, the origin still answers ----------------------------------------------
with p.connect() as c:
    r = upgrade(c, WS_REQ.replace(b"/ws/chat", b"/half/x"))
    c.send(b"last words")
    is_(read_n(c, 10), b"last words", "half-close: echoed")
    c.shutdown_write()
    is_(c.read_until_close(3), b"after-eof", "client half-closes: the origin sees EOF and can still send, then closes")

# --- idle timeout ------------------------------------------------------------------------------------------------
is_(wait_fds(w, BASE), BASE, "(no descriptor left from the half-closed tunnel)")
with p.connect() as c:
    r = upgrade(c)
    echoed = b""
    for i in range(6):                  # 1.25 s of traffic, 0.25 s apart: never idle for 1 s
        if i:
            time.sleep(0.25)
        c.send(b"%d" % i)
        echoed += read_n(c, 1)
    t0 = time.monotonic()               # the last activity
    is_(echoed, b"012345", "a tunnel in use stays open past tunnel_timeout_ms (1 s)")
    closed = c.closed(4.0)
    took = time.monotonic() - t0
    ok(closed and 0.8 <= took < 3.5, "idle for tunnel_timeout_ms: closed (%.2f s)" % took)
is_(ws.wait_open(0, 3), 0, "idle timeout: the origin connection is closed too")
is_(wait_fds(w, BASE), BASE, "idle timeout: no descriptor left")

# --- Upgrade answered with 200 ------------------------------------------------------------------------------------
with p.connect() as c:
    r = upgrade(c, WS_REQ.replace(b"/ws/chat", b"/normal/x"))
    is_(r.status, 200, "the origin answers an Upgrade request with 200: a normal response")
    req = normal.received[-1]
    is_((req.header("Upgrade"), req.header("Connection")), ("websocket", "upgrade"), "(the origin was asked to upgrade)")
    is_(r.body, req.head, "...with its body")
    r = c.request("GET", "/normal/next")
    is_((r.status, origin_head(normal.received[-1])), (200, "GET /normal/next HTTP/1.1"),
        "...and the client connection carries the next request")

# --- Upgrade: h2c is not forwarded -----------------------------------------------------------------------------------
with p.connect() as c:
    c.send(b"GET /normal/h2c HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    r = c.read_response()
    is_(r.status, 200, "Upgrade: h2c: answered as plain HTTP/1.1")
    is_(headers_of(normal.received[-1]), request_fields(),
        "Upgrade: h2c: no Upgrade, Connection or HTTP2-Settings reaches the origin")
with p.connect() as c:
    c.send(b"GET /normal/h2c2 HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket, h2c\r\n\r\n")
    r = c.read_response()
    is_((r.status, "upgrade" in dict(headers_of(normal.received[-1]))), (200, False),
        "Upgrade listing h2c among others: not forwarded either")

is_(ws.errors + bye.errors + half.errors + normal.errors, [], "the origins saw only well-formed requests")

# --- stopping with a tunnel and a request open -------------------------------------------------------------------------
c = p.connect()
r = upgrade(c, WS_REQ.replace(b"/ws/chat", b"/long/chat"))
c.send(b"still here")
is_((r.status, read_n(c, 10)), (101, b"still here"), "a tunnel (default idle timeout: 1 h) is open")
c2 = p.connect()
c2.send(build_request("GET", "/silent/x"))
ok(silent.wait_requests(1, 3) == 1, "...and a request waits for a silent origin")
p.signal(signal.SIGQUIT)
is_(p.wait_exit(10), 0, "SIGQUIT: portico exits once drain_timeout_ms (3 s) has passed")
ok(c.closed(2.0) and c2.closed(2.0), "...closing both client connections")
is_((ws.wait_open(0, 3), silent.wait_open(0, 3)), (0, 0),
    "...and both origin connections (the harness also checks for sanitizer reports)")
c.close()
c2.close()
done_testing()
