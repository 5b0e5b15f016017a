#!/usr/bin/env python3
# HTTP/2 limits and floods, each configurable, each refused with its error code and an
# info line, while another connection keeps being served: max concurrent streams
# (REFUSED_STREAM), the header list size (431), CONTINUATION frames per header block, the
# rapid reset (cancelled streams cost the origin nothing, the connection gets GOAWAY
# ENHANCE_YOUR_CALM), SETTINGS, PING and empty DATA floods, the idle timeout (GOAWAY
# NO_ERROR, then close); a body slower than client_body_timeout_ms (408 on the stream);
# the keys' checks with -t.
import os, struct, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from h2test import *

if not openssl_available():
    skip_all("no openssl command")
if not h2_built():
    skip_all("built --without-nghttp2")
if not have_clients():
    skip_all("curl, nghttp and h2load are needed (apt-get install curl nghttp2-client)")

ca = CA()
cert = ca.issue("site", sans=["a.example"], serial=0x6002)
slow = Origin.slow(delay=1.0, body=b"slow\n")
counted = Origin.fixed(body=b"ok\n")

routes = ['{ path_prefix = "/slow"; upstream = "slow"; }',
          '{ path_prefix = "/counted"; upstream = "counted"; }',
          '{ path_prefix = "/"; return = { status = 200; body = "h2\\n"; }; }']
ups = [upstream("slow", [slow.address], keepalive=16),
       upstream("counted", [counted.address], keepalive=16)]
H2LIM = {"max_concurrent_streams": 4, "max_header_list_size": 4096,
         "max_continuation_frames": 3, "max_resets": 20, "max_control_frames": 50,
         "max_empty_frames": 20, "flood_window_ms": 60000, "idle_timeout_ms": 1500,
         "initial_window_size": 16384}
LIMITS = ("limits = { client_header_timeout_ms = 2000; client_body_timeout_ms = 1000; "
          "keepalive_timeout_ms = 10000; max_body_size = 0; send_timeout_ms = 10000; "
          "drain_timeout_ms = 3000; };")
p = Portico(h2_config(cert, routes=routes, upstreams=ups, h2=H2LIM, limits=LIMITS))
h2c = p.port("port2")


def served_meanwhile(label):
    """Another connection is served (while the abusive one is still open)."""
    with H2(h2c) as o:
        o.handshake()
        r = o.response(o.request("/other"))
        is_((r.status, r.body), (200, b"h2\n"), "%s: another connection is served" % label)


# --- max concurrent streams -----------------------------------------------------------------
# Streams sent before the client acknowledged the SETTINGS: the ones past the limit are
# refused one by one (REFUSED_STREAM), the others served.
with H2(h2c) as c:
    mark = p.log_mark()
    ids = [c.request("/slow/%d" % i) for i in range(6)]
    s = c.handshake()
    is_(s.get(3), 4, "SETTINGS_MAX_CONCURRENT_STREAMS says h2_max_concurrent_streams")
    is_(s.get(6), 4096, "SETTINGS_MAX_HEADER_LIST_SIZE says h2_max_header_list_size")
    for i in ids[4:]:
        is_(c.response(i, timeout=5).reset, REFUSED_STREAM,
            "stream %d past the limit: RST_STREAM REFUSED_STREAM" % i)
    ok(p.wait_log(r"refused HTTP/2 stream 9 from 127\.0\.0\.1: more than "
                  r"h2_max_concurrent_streams \(4\) streams open", start=mark),
       "the refusal is logged at info, naming the key")
    served_meanwhile("max concurrent streams")
    for i in ids[:4]:
        is_(c.response(i).body, b"slow\n", "stream %d within the limit is answered" % i)
    r = c.response(c.request("/after"))
    is_(r.status, 200, "once they finished, a new stream is served")

# Once the client has acknowledged the limit, going past it is still a stream error
# (RFC 9113 5.1.2): RST_STREAM REFUSED_STREAM, the client may retry it, the connection and
# its other streams go on.
with H2(h2c) as c:
    c.handshake()
    c.send(frame(PING, 0, 0, b"12345678"))
    while c.read_frame(5)[0] != PING:
        pass                        # the server has our ACK of its SETTINGS
    mark = p.log_mark()
    ids = [c.request("/slow/x%d" % i) for i in range(6)]
    for i in ids[4:]:
        is_(c.response(i, timeout=5).reset, REFUSED_STREAM,
            "stream %d past the acknowledged limit: RST_STREAM REFUSED_STREAM" % i)
    ok(p.wait_log(r"refused HTTP/2 stream 9 from 127\.0\.0\.1: more than "
                  r"h2_max_concurrent_streams \(4\) streams open", start=mark),
       "logged at info")
    for i in ids[:4]:
        is_(c.response(i).body, b"slow\n", "stream %d within the limit is answered" % i)
    r = c.response(c.request("/again"))
    is_((r.status, c.goaway), (200, None), "the connection goes on: no GOAWAY, a new stream is served")

# A client that keeps opening streams past the limit: each refusal counts as a reset, and
# past h2_max_resets the connection is cut (GOAWAY ENHANCE_YOUR_CALM).
with H2(h2c) as c:
    c.handshake()
    mark = p.log_mark()
    for i in range(4 + 40):
        c.request("/slow/y%d" % i)
    g = c.wait_goaway()
    is_(g and g[1], ENHANCE_YOUR_CALM, "44 streams at once: GOAWAY ENHANCE_YOUR_CALM")
    ok(p.wait_log(r"more streams refused or reset than h2_max_resets", start=mark),
       "logged at info")

# --- the stream window: a body bigger than it flows as the origin takes it -------------------
with H2(h2c) as c:
    s = c.handshake()
    is_(s.get(4), 16384, "SETTINGS_INITIAL_WINDOW_SIZE says h2_initial_window_size")
    c.send(frame(PING, 0, 0, b"abcdefgh"))
    while c.read_frame(5)[0] != PING:
        pass                        # our ACK of its SETTINGS is in: the window is 16 KiB
    counted.reset_counters()
    sid = c.request("/counted/up", method="POST", end_stream=False,
                    headers=[("content-length", "200000")])
    sent, window = 0, 16384
    while sent < 200000:
        n = min(16384, 200000 - sent, window)
        if n == 0:
            f = c.read_frame(5)     # WINDOW_UPDATEs come as the origin takes the bytes
            if f and f[0] == WINDOW_UPDATE and f[2] == sid:
                window += int.from_bytes(f[3], "big")
            continue
        c.data(sid, b"u" * n, end_stream=sent + n == 200000)
        sent += n
        window -= n
    r = c.response(sid)
    is_((r.status, r.body), (200, b"ok\n"), "a 200 kB body through a 16 KiB window is served")
    ok(counted.received and len(counted.received[-1].body) == 200000,
       "the origin got all of it")

# --- header list size: 431 ------------------------------------------------------------------
mark = p.log_mark()
rc, out, err = run_client(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                           "-w", "%{http_code}", "-H", "X-Big: " + "b" * 5000,
                           "http://127.0.0.1:%d/big" % h2c])
is_(out, b"431", "request fields over h2_max_header_list_size: 431")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 431 Request Header Fields Too Large "
              r"\(request header fields larger than h2_max_header_list_size\)", start=mark),
   "logged at info with the key")

# --- CONTINUATION flood ---------------------------------------------------------------------
with H2(h2c) as c:
    c.handshake()
    mark = p.log_mark()
    block = hpack_block([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                         (":path", "/")])
    c.send(frame(HEADERS, 0, 1, block[:4]))
    rest = block[4:]
    for i in range(10):
        c.send(frame(CONTINUATION, 0, 1, hpack_block([("x-c%d" % i, "v")])))
    g = c.wait_goaway()
    is_(g and g[1], ENHANCE_YOUR_CALM,
        "more CONTINUATION frames than h2_max_continuation_frames: GOAWAY "
        "ENHANCE_YOUR_CALM")
    ok(p.wait_log(r"closed HTTP/2 connection from 127\.0\.0\.1 with GOAWAY "
                  r"ENHANCE_YOUR_CALM: more CONTINUATION frames in a header block than "
                  r"h2_max_continuation_frames", start=mark), "logged at info")
    served_meanwhile("CONTINUATION flood")
    ok(c.wait_closed(), "then the connection is closed")

with H2(h2c) as c:
    c.handshake()
    block = hpack_block([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                         (":path", "/cont")])
    c.send(frame(HEADERS, 0, 1, block[:5]) + frame(CONTINUATION, 0, 1, block[5:10])
           + frame(CONTINUATION, END_HEADERS | 0, 1, block[10:]))
    c.data(1, b"", end_stream=True)
    r = c.response(1)
    is_((r.status, r.body), (200, b"h2\n"), "a header block in 3 frames (within the limit) "
        "is served")

# --- rapid reset ----------------------------------------------------------------------------
counted.reset_counters()
with H2(h2c) as c:
    c.handshake()
    mark = p.log_mark()
    burst = b""
    for i in range(60):
        sid = 1 + 2 * i
        burst += frame(HEADERS, END_HEADERS | END_STREAM, sid,
                       hpack_block([(":method", "GET"), (":scheme", "http"),
                                    (":authority", "a.example"), (":path", "/counted/%d" % i)]))
        burst += frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
    c.send(burst)
    g = c.wait_goaway()
    is_(g and g[1], ENHANCE_YOUR_CALM, "more resets than h2_max_resets: GOAWAY "
        "ENHANCE_YOUR_CALM")
    ok(p.wait_log(r"closed HTTP/2 connection from 127\.0\.0\.1 with GOAWAY "
                  r"ENHANCE_YOUR_CALM: more stream resets than h2_max_resets within "
                  r"h2_flood_window_ms", start=mark), "logged at info")
    served_meanwhile("rapid reset")
    c.wait_closed()
cmp_ok(counted.requests, "<=", 21, "cancelled streams cost the origin nothing (%d of 60 "
       "reached it)" % counted.requests)

# --- SETTINGS, PING and empty DATA floods ----------------------------------------------------
for label, unit, key in (("SETTINGS", frame(SETTINGS, 0, 0), "h2_max_control_frames"),
                         ("PING", frame(PING, 0, 0, b"abcdefgh"), "h2_max_control_frames"),
                         ("empty DATA", None, "h2_max_empty_frames")):
    with H2(h2c) as c:
        c.handshake()
        mark = p.log_mark()
        if unit is None:
            sid = c.request("/slow/e", method="POST", end_stream=False)
            unit = frame(DATA, 0, sid, b"")
        c.send(unit * 200)
        g = c.wait_goaway()
        is_(g and g[1], ENHANCE_YOUR_CALM, "a %s flood: GOAWAY ENHANCE_YOUR_CALM" % label)
        ok(p.wait_log(r"closed HTTP/2 connection from 127\.0\.0\.1 with GOAWAY "
                      r"ENHANCE_YOUR_CALM: .*%s" % key, start=mark),
           "%s flood: logged at info, naming %s" % (label, key))
        served_meanwhile("%s flood" % label)
        ok(c.wait_closed(), "%s flood: the connection is closed" % label)

# --- idle timeout ---------------------------------------------------------------------------
with H2(h2c) as c:
    c.handshake()
    r = c.response(c.request("/"))
    is_(r.status, 200, "a request, then nothing")
    is_(c.wait_goaway(timeout=5), (1, NO_ERROR), "h2_idle_timeout_ms without a stream: "
        "GOAWAY NO_ERROR naming the last stream")
    ok(c.wait_closed(), "then the connection is closed")

# --- a header block that does not end: the connection is closed -----------------------------
with H2(h2c) as c:
    c.handshake()
    mark = p.log_mark()
    c.send(frame(HEADERS, 0, 1, hpack_block([(":method", "GET"), (":scheme", "http")])))
    g = c.wait_goaway(timeout=6)
    is_(g and g[1], NO_ERROR, "a header block left unfinished past client_header_timeout_ms: "
        "GOAWAY")
    ok(p.wait_log(r"closed HTTP/2 connection from 127\.0\.0\.1: no complete header block "
                  r"within client_header_timeout_ms", start=mark), "logged at info")
    ok(c.wait_closed(), "the connection is closed")

# --- a body that does not come: 408 on the stream, the connection goes on --------------------
with H2(h2c) as c:
    c.handshake()
    mark = p.log_mark()
    sid = c.request("/counted/body", method="POST", end_stream=False,
                    headers=[("content-length", "10")])
    c.data(sid, b"12345")
    r = c.response(sid, timeout=5)
    is_(r.status, 408, "a body stalled past client_body_timeout_ms: 408")
    ok(p.wait_log(r"refused request from 127\.0\.0\.1: 408 Request Timeout \(client sent "
                  r"the request body (too slowly|below client_body_min_rate)\)", start=mark),
       "logged at info")
    r = c.response(c.request("/"))
    is_(r.status, 200, "the connection goes on")

# --- frame-level errors: GOAWAY with nghttp2's code, logged with its reason ------------------
for label, payload, code in (
        ("DATA on stream 0", frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
        ("HEADERS on an even stream", frame(HEADERS, END_HEADERS | END_STREAM, 2, hpack_block(
            [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")])),
         PROTOCOL_ERROR),
        ("SETTINGS_ENABLE_PUSH = 2", frame(SETTINGS, 0, 0, struct.pack(">HI", 2, 2)),
         PROTOCOL_ERROR),
        ("a connection window past 2^31-1",
         frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)), 3)):
    with H2(h2c) as c:
        c.handshake()
        mark = p.log_mark()
        c.send(payload)
        g = c.wait_goaway()
        is_(g and g[1], code, "%s: GOAWAY with error %d" % (label, code))
        ok(p.wait_log(r"closed HTTP/2 connection from 127\.0\.0\.1 with GOAWAY "
                      r"(PROTOCOL_ERROR|FLOW_CONTROL_ERROR)", start=mark),
           "%s: logged at info" % label)
        ok(c.wait_closed(), "%s: the connection is closed" % label)
with H2(h2c, preface=False) as c:
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    r = c.sock.recv(100)
    like(r.decode("latin-1"), r"^HTTP/1\.1 505 ", "a broken preface is HTTP/1 (a 505 for its "
         "version)")

# --- configuration --------------------------------------------------------------------------
def check(label, conf, want):
    q = Portico(conf, start=False)
    cp = run_bin(["-t", "-c", q.conf_path])
    is_(cp.returncode, 1, "-t: %s fails" % label)
    like(cp.stderr, r"portico\.conf:\d+: " + want, "-t: %s: names the key and the file" % label)


base = h2_config(cert)
check("http2 on a TLS listener", base.replace('name = "main";', 'name = "main"; http2 = true;'),
      r"key 'listeners\[0\]\.http2': http2 = true is for cleartext listeners")
check("h2_max_concurrent_streams 0", h2_config(cert, h2={"max_concurrent_streams": 0}),
      r"key 'listeners\[0\]\.h2_max_concurrent_streams'")
check("h2_initial_window_size too big", h2_config(cert, h2={"initial_window_size": 1 << 30}),
      r"key 'listeners\[0\]\.h2_initial_window_size'")
check("alpn h3", h2_config(cert, alpn='[ "h3" ]'),
      r"key 'listeners\[0\]\.tls\.alpn\[0\]': \"h3\": not a protocol portico speaks \(h2, http/1\.1\)")

p.stop()
ok(p.sanitizer_report() is None, "no sanitizer report")
done_testing()
