#!/usr/bin/env python3
# HTTP/2 for clients: ALPN picks h2 on a TLS listener (http/1.1 still there for clients
# that offer only it), prior knowledge on a cleartext listener with http2 = true (an
# HTTP/1.1 request on it is still served; after a PROXY protocol header too), requests through the proxy with curl and
# nghttp (header translation both ways: :authority to Host, cookies joined, hop-by-hop
# response fields dropped, names in lower case), uploads and downloads of several MiB
# streamed with flow control (every byte checked), many concurrent streams on one
# connection to a slow and a fast origin (the fast answers are not held behind the slow
# one), a client whose window is tiny (the origin is held back, the worker does not buffer
# the response), frame-level rules nghttp2 enforces for us (connection-specific fields,
# te other than trailers: RST_STREAM PROTOCOL_ERROR, logged), the access log line.
import hashlib, os, re, socket, struct, sys, threading, time
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
cert = ca.issue("site", sans=["a.example"], serial=0x6001)
echo = Origin.echo()
slow = Origin.slow(delay=1.5, body=b"slow\n")
fast = Origin.fixed(body=b"fast\n", headers=[("Connection", "keep-alive"),
                                             ("Keep-Alive", "timeout=5"),
                                             ("X-Mixed-Case", "Yes")])
SIZE = 24 * 1024 * 1024
large = Origin.large(SIZE)

routes = ['{ path_prefix = "/echo"; upstream = "echo"; request_buffering = false; }',
          '{ path_prefix = "/slow"; upstream = "slow"; }',
          '{ path_prefix = "/fast"; upstream = "fast"; }',
          '{ path_prefix = "/large"; upstream = "large"; }',
          '{ path_prefix = "/"; return = { status = 200; body = "h2\\n"; }; }']
ups = [upstream("echo", [echo.address]), upstream("slow", [slow.address], keepalive=64),
       upstream("fast", [fast.address]), upstream("large", [large.address])]
p = Portico(h2_config(cert, routes=routes, upstreams=ups, listeners=[
    '{ name = "pp"; address = "127.0.0.1:{port3}"; http2 = true; proxy_protocol = true; }']))
tls_port, h2c_port = p.port(), p.port("port2")
CA_ARGS = ["--cacert", ca.cert, "--resolve", "a.example:%d:127.0.0.1" % tls_port]
TLS_URL = "https://a.example:%d" % tls_port
H2C_URL = "http://127.0.0.1:%d" % h2c_port


def curl(*args):
    return run_client(["curl", "-sS"] + list(args))


# --- ALPN and prior knowledge -----------------------------------------------------------------
with H2(tls_port, tls=ca) as c:
    is_(c.alpn, "h2", "ALPN: a client offering h2 gets h2")
    c.handshake()
    is_(c.server_settings.get(3), 128, "SETTINGS_MAX_CONCURRENT_STREAMS is the default 128")
    is_(c.server_settings.get(2), 0, "server push is off")
    r = c.response(c.request("/", scheme="https"))
    is_((r.status, r.body), (200, b"h2\n"), "a GET over TLS with h2 is answered")

r, info = tls_get(tls_port, ca, sni="a.example", ctx=client_ctx(ca, alpn=["http/1.1"]))
is_((r.status, info.alpn), (200, "http/1.1"),
    "a client offering only http/1.1 on the same listener gets HTTP/1.1")

rc, out, err = curl("--http2", "-v", *CA_ARGS, TLS_URL + "/")
ok(rc == 0 and out == b"h2\n" and "ALPN: server accepted h2" in err,
   "curl --http2 negotiates h2 and gets the answer")

with H2(h2c_port) as c:
    c.handshake()
    r = c.response(c.request("/"))
    is_((r.status, r.body), (200, b"h2\n"), "cleartext prior knowledge: a GET is answered")
rc, out, err = curl("--http2-prior-knowledge", H2C_URL + "/")
is_((rc, out), (0, b"h2\n"), "curl --http2-prior-knowledge gets the answer")
r = p.get("/", port="port2")
is_((r.status, r.body), (200, b"h2\n"), "an HTTP/1.1 request on the http2 listener is served")
with H2(p.port("port3"), preface=False) as c:
    c.send(b"PROXY TCP4 10.1.2.3 10.0.0.1 1234 80\r\n" + PREFACE + frame(SETTINGS, 0, 0))
    c.handshake()
    r = c.response(c.request("/echo/pp"))
    head = r.body.split(b"\r\n\r\n")[0].decode("latin-1")
    ok(r.status == 200 and re.search(r"(?im)^x-forwarded-for: 10\.1\.2\.3\r?$", head),
       "a PROXY protocol header, then the h2 preface: h2, with the header's client address")

# --- header translation -----------------------------------------------------------------------
rc, out, err = curl("--http2-prior-knowledge", "-H", "cookie: a=1", "-H", "cookie: b=2",
                    "-H", "X-Test: t", H2C_URL + "/echo/h?q=1")
head = out.split(b"\r\n\r\n")[0].decode("latin-1")
like(head, r"^GET /echo/h\?q=1 HTTP/1\.1\r\n", "the origin gets an HTTP/1.1 request line "
     "with the :path")
like(head, r"(?im)^host: 127\.0\.0\.1:%d\r?$" % h2c_port, ":authority becomes Host")
like(head, r"(?im)^cookie: a=1; b=2\r?$", "cookie fields are joined with '; '")
is_(len([l for l in head.split("\r\n") if l.lower().startswith("cookie:")]), 1,
    "one Cookie field goes to the origin")
like(head, r"(?im)^x-test: t\r?$", "other fields pass")
like(head, r"(?im)^x-forwarded-proto: http\r?$", "X-Forwarded-Proto from the transport")

rc, out, err = curl("--http2", "-v", *CA_ARGS, TLS_URL + "/fast")
ok(rc == 0 and out == b"fast\n", "a proxied GET over h2 with TLS")
like(err, r"(?m)^< x-mixed-case: Yes", "response field names go in lower case")
unlike(err, r"(?im)^< (connection|keep-alive):", "hop-by-hop response fields are dropped")
like(err, r"(?m)^< content-length: 5", "Content-Length from the origin's length")
like(err, r"(?m)^< server: portico", "Server is portico's")

with H2(h2c_port) as c:
    c.handshake()
    r = c.response(c.request("/echo/te", headers=[("te", "trailers")]))
    is_(r.status, 200, "te: trailers is allowed")
    mark = p.log_mark()
    r = c.response(c.request("/echo/conn", headers=[("connection", "keep-alive")]))
    is_(r.reset, PROTOCOL_ERROR, "a connection-specific field: RST_STREAM PROTOCOL_ERROR")
    ok(p.wait_log(r"refused HTTP/2 stream 3 from 127\.0\.0\.1: .*HEADERS", start=mark),
       "the refusal is logged at info")
    r = c.response(c.request("/echo/te2", headers=[("te", "gzip")]))
    is_(r.reset, PROTOCOL_ERROR, "te other than trailers: RST_STREAM PROTOCOL_ERROR")
    r = c.response(c.request("/echo/Upper", headers=[("X-Upper", "1")]))
    is_(r.reset, PROTOCOL_ERROR, "an upper-case field name: RST_STREAM PROTOCOL_ERROR")
    r = c.response(c.request("/after"))
    is_((r.status, r.body), (200, b"h2\n"), "the connection goes on after stream errors")

# --- bodies both ways ------------------------------------------------------------------------
pid = the_worker(p)
rss0 = rss_kb(pid)
up = os.urandom(5 * 1024 * 1024 + 7)
path = os.path.join(p.tmp, "up.bin")
with open(path, "wb") as f:
    f.write(up)
for name, args in (("TLS", ["--http2"] + CA_ARGS + [TLS_URL + "/echo/up"]),
                   ("cleartext", ["--http2-prior-knowledge", H2C_URL + "/echo/up"])):
    rc, out, err = curl("--data-binary", "@" + path, "-H", "Content-Type: application/x",
                        *args)
    i = out.find(b"\r\n\r\n")
    ok(rc == 0 and out[i + 4:] == up, "a 5 MiB upload over %s reaches the origin whole "
       "(streamed: request_buffering off)" % name)
    like(out[:i].decode("latin-1"), r"(?im)^content-length: %d\r?$" % len(up),
         "its Content-Length goes along (%s)" % name)
if not sanitized_build():
    cmp_ok(rss_kb(pid) - rss0, "<", 4 * 1024, "the uploads did not grow the worker's memory "
           "(a stream holds at most its window)")

# a body of unknown length (no content-length) goes chunked to the origin
with H2(h2c_port) as c:
    c.handshake()
    sid = c.request("/echo/nolen", method="POST", end_stream=False)
    for i in range(5):
        c.data(sid, b"piece%d;" % i)
    c.data(sid, b"", end_stream=True)
    r = c.response(sid)
    head, _, body = r.body.partition(b"\r\n\r\n")
    ok(r.status == 200 and body == b"piece0;piece1;piece2;piece3;piece4;",
       "a body without content-length arrives whole")
    like(head.decode("latin-1"), r"(?im)^transfer-encoding: chunked\r?$",
         "and goes to the origin chunked")

rc, out, err = run_client(["curl", "-sS", "--http2"] + CA_ARGS + [TLS_URL + "/large",
                           "-o", "-"], timeout=120)
is_((rc, len(out), hashlib.sha256(out).hexdigest()), (0, SIZE, pattern_sha256(SIZE)),
    "a 24 MiB download over h2 with TLS, every byte right")
rc, out, err = run_client(["nghttp", H2C_URL + "/large"], timeout=120)
is_((rc, len(out), hashlib.sha256(out).hexdigest()), (0, SIZE, pattern_sha256(SIZE)),
    "a 24 MiB download over cleartext h2 (nghttp), every byte right")
if not sanitized_build():
    cmp_ok(rss_kb(pid) - rss0, "<", 8 * 1024, "the worker's memory did not grow with them")

# --- many streams on one connection: the fast ones are not held behind the slow ones -----------
with H2(h2c_port) as c:
    c.handshake()
    slow_ids = [c.request("/slow/%d" % i) for i in range(3)]
    fast_ids = [c.request("/fast/%d" % i) for i in range(20)]
    order = []
    deadline = time.monotonic() + 15
    while len(order) < 23 and time.monotonic() < deadline:
        f = c.read_frame(15)
        if f is None:
            break
        if f[1] & END_STREAM and f[0] in (DATA, HEADERS):
            order.append(f[2])
    ok(sorted(order) == sorted(slow_ids + fast_ids), "all 23 streams are answered")
    ok(set(order[:20]) == set(fast_ids), "the 20 fast answers come before the 3 slow ones")
    ok(all(c.responses[i].body == b"fast\n" for i in fast_ids)
       and all(c.responses[i].body == b"slow\n" for i in slow_ids),
       "each stream gets its own body")

# h2load: many streams on several connections
rc, out, err = run_client(["h2load", "-n", "400", "-c", "4", "-m", "10", H2C_URL + "/fast"])
like(out.decode(), r"400 succeeded, 0 failed", "h2load: 400 proxied requests on 4 "
     "connections, 10 streams each, all succeed")

# --- a client with a tiny window: the origin is held back -------------------------------------
large.bytes_sent = 0
with H2(h2c_port, settings={SETTINGS_INITIAL_WINDOW_SIZE: 1024}, auto_window=False) as c:
    c.handshake()
    sid = c.request("/large/w")
    got = 0
    deadline = time.monotonic() + 5
    while got < 1024 and time.monotonic() < deadline:
        f = c.read_frame(5)
        if f and f[0] == DATA:
            got += len(f[3])
    is_(got, 1024, "the client gets its window's worth (1 KiB)")
    ok(wait_for(lambda: large.bytes_sent > 0, 5), "the origin started sending")
    sent = large.bytes_sent
    ok(not wait_for(lambda: large.bytes_sent > sent + 8 * 1024 * 1024, 1.0),
       "the origin is held back (no more than the sockets' buffers leave it)")
    cmp_ok(large.bytes_sent, "<", SIZE // 2, "far from the whole response went out")
    if not sanitized_build():
        cmp_ok(rss_kb(pid) - rss0, "<", 8 * 1024, "the worker does not buffer the response")
    # open the windows: the rest streams
    c.auto_window = True
    c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 30))
           + frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", 1 << 30)))
    r = c.response(sid, timeout=60)
    is_((len(r.body), hashlib.sha256(r.body).hexdigest()), (SIZE, pattern_sha256(SIZE)),
        "once the window opens the whole response arrives, every byte right")

# --- the access log -------------------------------------------------------------------------
like(access_line(p, r'GET /fast HTTP/2\.0'), r'" 200 5 ',
   "the access log says HTTP/2.0 and the body bytes")

p.stop()
ok(p.sanitizer_report() is None, "no sanitizer report")
done_testing()
