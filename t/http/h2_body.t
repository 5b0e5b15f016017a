#!/usr/bin/env python3
# HTTP/2 request and response bodies at the edges: Expect: 100-continue (an interim 100
# HEADERS frame, then the body), request buffering of a body without content-length
# (sent to the origin with its length), max_body_size (413 for a content-length over it,
# and for a body of unknown length that grows past it), a stream the client resets in
# the middle of a response (the origin's exchange is dropped at once, the connection goes
# on), a stream whose window stays closed (reset after send_timeout_ms while the
# connection and its other streams go on), a HEAD (no DATA frame).
import os, struct, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from h2test import *

if not openssl_available():
    skip_all("no openssl command")
if not h2_built():
    skip_all("built --without-nghttp2")

ca = CA()
cert = ca.issue("site", sans=["a.example"], serial=0x6004)
echo = Origin.echo()
SIZE = 8 * 1024 * 1024
large = Origin.large(SIZE)
routes = ['{ path_prefix = "/echo"; upstream = "echo"; }',
          '{ path_prefix = "/large"; upstream = "large"; }',
          '{ path_prefix = "/empty"; return = { status = 200; body = ""; }; }',
          '{ path_prefix = "/"; return = { status = 200; body = "h2\\n"; }; }']
LIMITS = ("limits = { client_header_timeout_ms = 5000; client_body_timeout_ms = 5000; "
          "keepalive_timeout_ms = 10000; max_body_size = 100000; send_timeout_ms = 1000; "
          "drain_timeout_ms = 3000; };")
p = Portico(h2_config(cert, routes=routes, limits=LIMITS,
                      upstreams=[upstream("echo", [echo.address]),
                                 upstream("large", [large.address])]))
h2c = p.port("port2")

# --- 100-continue ---------------------------------------------------------------------------
with H2(h2c) as c:
    c.handshake()
    sid = c.request("/echo/cont", method="POST", end_stream=False,
                    headers=[("content-length", "5"), ("expect", "100-continue")])
    deadline = time.monotonic() + 5
    while not (sid in c.responses and c.responses[sid].interim) and time.monotonic() < deadline:
        c.read_frame(5)
    is_(c.responses[sid].interim if sid in c.responses else None, [100],
        "Expect: 100-continue: an interim 100 before the body")
    c.data(sid, b"hello", end_stream=True)
    r = c.response(sid)
    head, _, body = r.body.partition(b"\r\n\r\n")
    is_((r.status, body), (200, b"hello"), "then the body goes through")
    unlike(head.decode("latin-1"), r"(?im)^expect:", "Expect is not sent on (the body is read)")

# --- request buffering: a body without content-length gets one ------------------------------
with H2(h2c) as c:
    c.handshake()
    sid = c.request("/echo/buf", method="POST", end_stream=False)
    c.data(sid, b"a" * 3000)
    c.data(sid, b"b" * 3000, end_stream=True)
    r = c.response(sid)
    head, _, body = r.body.partition(b"\r\n\r\n")
    is_((r.status, body), (200, b"a" * 3000 + b"b" * 3000), "a buffered body arrives whole")
    like(head.decode("latin-1"), r"(?im)^content-length: 6000\r?$",
         "with its length (read whole by request buffering)")

# --- max_body_size ---------------------------------------------------------------------------
with H2(h2c) as c:
    c.handshake()
    mark = p.log_mark()
    sid = c.request("/echo/big", method="POST", end_stream=False,
                    headers=[("content-length", "200000")])
    r = c.response(sid)
    is_(r.status, 413, "content-length over max_body_size: 413")
    ok(p.wait_log(r"refused request from 127\.0\.0\.1: 413 Content Too Large \(Content-Length "
                  r"exceeds max_body_size\)|refused request from 127\.0\.0\.1: 413 .*Content-Length "
                  r"exceeds max_body_size", start=mark), "logged at info")
    mark = p.log_mark()
    sid = c.request("/echo/grow", method="POST", end_stream=False)
    sent = 0
    while sent < 150000 and not (sid in c.responses and c.responses[sid].ended):
        c.data(sid, b"x" * 16000)
        sent += 16000
        try:
            c.read_frame(0.05)
        except TimeoutError:
            pass
    r = c.response(sid)
    is_(r.status, 413, "a body of unknown length growing past max_body_size: 413")
    ok(p.wait_log(r"refused request from 127\.0\.0\.1: 413 .*max_body_size", start=mark),
       "logged at info")
    r = c.response(c.request("/"))
    is_((r.status, r.body), (200, b"h2\n"), "the connection goes on")

# --- the client resets a stream in the middle of a response ----------------------------------
with H2(h2c) as c:
    c.handshake()
    closed0 = large.closed
    large.bytes_sent = 0
    mark = p.log_mark()
    sid = c.request("/large/r")
    while True:
        f = c.read_frame(5)
        if f and f[0] == DATA:
            break
    c.send(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
    ok(p.wait_log(r"request from 127\.0\.0\.1 aborted: client reset the HTTP/2 stream",
                  start=mark), "a reset stream: logged as aborted")
    ok(wait_for(lambda: large.closed > closed0, 5), "the origin's connection is dropped "
       "(its exchange cannot finish)")
    cmp_ok(large.bytes_sent, "<", SIZE, "the origin did not send the whole body")
    r = c.response(c.request("/"))
    is_((r.status, r.body), (200, b"h2\n"), "the connection goes on")

# --- a window that stays closed: the stream is reset after send_timeout_ms --------------------
with H2(h2c, settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}, auto_window=False) as c:
    c.handshake()
    mark = p.log_mark()
    sid = c.request("/large/w")
    r = c.response(sid, timeout=5)
    is_((r.status, r.reset), (200, INTERNAL_ERROR), "no window for send_timeout_ms: the head, "
        "then RST_STREAM INTERNAL_ERROR")
    ok(p.wait_log(r"request from 127\.0\.0\.1 aborted: client took no response bytes within "
                  r"send_timeout_ms", start=mark), "logged at info")
    r = c.response(c.request("/empty"))
    is_((r.status, r.body, r.ended), (200, b"", True),
        "the connection goes on (an empty answer needs no window)")
    r = c.response(c.request("/", method="HEAD"))
    is_((r.status, r.body, [f[0] for f in r.frames]), (200, b"", [HEADERS]),
        "a HEAD: HEADERS with END_STREAM, no DATA frame")

p.stop()
ok(p.sanitizer_report() is None, "no sanitizer report")
done_testing()
