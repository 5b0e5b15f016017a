#!/usr/bin/env python3
# Reverse proxying, message framing: request bodies (Content-Length, chunked re-framed),
# response bodies from origins with Content-Length, chunked and close-delimited framing
# (re-framed as chunked for HTTP/1.1 clients, closed for HTTP/1.0), no body for HEAD, 1xx,
# 204 and 304, interim responses, Expect: 100-continue relayed (and the 1 s fallback).
import hashlib, os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

CLOSE_BODY = b"until close " * 2000


def by_path(o, c, req):
    t = req.target[2:]                  # the route is /p/: the origin sees /p/204 etc.
    if t == "/204":
        c.sendall(b"HTTP/1.1 204 No Content\r\nX-S: 204\r\n\r\n")
    elif t == "/304":
        c.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: "e1"\r\nContent-Length: 50\r\n\r\n')
    elif t == "/hints":
        c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                  b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                  + response_bytes(200, [("X-After", "hints")], b"after hints\n"))
    elif t == "/head":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-H: 1\r\n\r\n")
    elif t == "/head-chunked":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-H: 2\r\n\r\n")
    elif t == "/cl0":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-H: 3\r\n\r\n")
    elif t == "/chunked-split":
        # chunk framing cut at awkward places, several writes
        for piece in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4", b"\r\nab",
                      b"cd\r", b"\n3;ext=1\r\nefg\r\n0\r\nX-Trailer: t\r\n", b"\r\n"):
            c.sendall(piece)
            time.sleep(0.02)
    else:
        c.sendall(response_bytes(200, [("X-Conn", str(c.index))], b"conn %d\n" % c.index))
    return True


def expect_origin(o, c):
    """Expect: 100-continue as an origin does it: /continue answers 100 and reads the
    body, /silent reads the body without a 100, /reject answers 417 without reading."""
    while True:
        req = c.read_head()
        if req is None:
            return
        o.record(c, req)
        if req.target == "/e/continue":
            time.sleep(0.1)
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if req.target in ("/e/continue", "/e/silent", "/eb/silent"):
            c.read_body(req)
            c.sendall(response_bytes(200, [], b"got %d %s\n" % (req.body_len, req.body[:20])))
        else:
            c.sendall(response_bytes(417, [], b"no thanks\n"))
            return


echo = Origin.echo(store_body=False)
fixed = Origin.fixed(body=b"fixed body\n", headers=[("X-F", "1")])
chunky = Origin.chunked(chunks=[b"hello ", b"chunked ", b"world\n"], trailers=["X-T: 1"])
closer = Origin.close_delimited(body=CLOSE_BODY)
closer10 = Origin.close_delimited(body=b"one-oh body\n", version="HTTP/1.0")
paths = Origin(by_path)
expect = Origin(expect_origin, raw=True)
big = Origin.large(5 * 1000 * 1000 + 3, chunked=True)

ups = [upstream("echo", [echo.address]), upstream("fixed", [fixed.address]),
       upstream("chunky", [chunky.address]), upstream("closer", [closer.address]),
       upstream("closer10", [closer10.address]), upstream("paths", [paths.address]),
       upstream("expect", [expect.address]), upstream("big", [big.address], buffer_size=4096)]
routes = [proxy_route("fixed", "/fixed"), proxy_route("chunky", "/chunky"),
          proxy_route("closer10", "/closer10"), proxy_route("closer", "/closer"),
          proxy_route("paths", "/p/"), proxy_route("expect", "/e/", request_buffering=False),
          proxy_route("expect", "/eb/"), proxy_route("big", "/big"),
          proxy_route("echo", "/s/", request_buffering=False), proxy_route("echo", "/")]
p = Portico(proxy_config(ups, routes))

# --- request bodies ---------------------------------------------------------------------------
body = bytes(range(256)) * 400          # 102400 bytes
r = p.get("/up/cl", method="POST", body=body)
req = echo.received[-1]
is_((r.status, req.header("Content-Length"), req.body_len, req.body_sha256),
    (200, "102400", 102400, sha256(body)), "Content-Length body: forwarded with its length, intact")
ok(req.header("Transfer-Encoding") is None, "Content-Length body: no Transfer-Encoding")

pieces, i = [], 0
while i < len(body):                    # uneven chunk sizes
    n = 1000 + len(pieces) % 7 * 300
    pieces.append(body[i:i + n])
    i += n
for pre, what in (("/s/", "streamed"), ("/", "buffered")):
    r = p.get(pre + "up/chunked", method="PUT", headers=["Transfer-Encoding: chunked"],
              body=chunked(*pieces, trailers=["X-Client-Trailer: 1"]))
    req = echo.received[-1]
    is_((r.status, req.header("Transfer-Encoding"), req.header("Content-Length"), req.chunked),
        (200, "chunked", None, True), "chunked body over request_buffer_size (%s route): Transfer-Encoding: "
        "chunked to the origin" % what)
    is_((req.body_len, req.body_sha256), (len(body), sha256(body)), "chunked body: decoded by the origin, intact")

small = body[:30000]
r = p.get("/s/up/chunked-small", method="PUT", headers=["Transfer-Encoding: chunked"],
          body=chunked(small[:10000], small[10000:], trailers=["X-Client-Trailer: 1"]))
req = echo.received[-1]
is_((r.status, req.header("Transfer-Encoding"), req.header("Content-Length"), req.body_sha256),
    (200, "chunked", None, sha256(small)), "small chunked body, request_buffering = false: re-chunked")
r = p.get("/up/chunked-small", method="PUT", headers=["Transfer-Encoding: chunked"],
          body=chunked(small[:10000], small[10000:]))
req = echo.received[-1]
is_((r.status, req.header("Transfer-Encoding"), req.header("Content-Length"), req.body_sha256),
    (200, None, "30000", sha256(small)),
    "small chunked body, buffered: sent with its Content-Length (read whole first)")
r = p.get("/up/chunked-small", method="PUT", headers=["Transfer-Encoding: chunked"],
          body=chunked(small[:10000], small[10000:], trailers=["X-Client-Trailer: 1"]))
req = echo.received[-1]
is_((r.status, req.header("Transfer-Encoding"), req.body_sha256, req.trailers),
    (200, "chunked", sha256(small), [("X-Client-Trailer", "1")]),
    "the same with a trailer field: buffered, but sent chunked so that the field goes on")

with p.connect() as c:
    c.send(b"POST /s/up/slow HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send_pieces([b"5\r\nhel", b"lo\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"], delay=0.1)
    r = c.read_response()
    req = echo.received[-1]
    is_((r.status, req.body_len, req.body_sha256), (200, 11, sha256(b"hello world")),
        "chunked body arriving in pieces: re-chunked, intact")
    r = c.request("POST", "/s/up/empty", headers=["Transfer-Encoding: chunked"], body=chunked())
    req = echo.received[-1]
    is_((r.status, req.header("Transfer-Encoding"), req.body_len), (200, "chunked", 0),
        "empty chunked body: an empty chunked body")
    r = c.request("POST", "/up/empty", headers=["Transfer-Encoding: chunked"], body=chunked())
    req = echo.received[-1]
    is_((r.status, req.header("Transfer-Encoding"), req.header("Content-Length"), req.body_len),
        (200, None, "0", 0), "empty chunked body, buffered: Content-Length: 0")
    r = c.request("POST", "/up/zero", body=b"")
    req = echo.received[-1]
    is_((r.status, req.header("Content-Length"), req.body_len), (200, "0", 0), "Content-Length: 0 forwarded")
    r = c.request("GET", "/up/get")
    req = echo.received[-1]
    is_((req.header("Content-Length"), req.header("Transfer-Encoding")), (None, None),
        "GET without a body: no framing fields")
    c.send(build_request("POST", "/up/p1", body=b"hello")
           + build_request("POST", "/up/p2", headers=["Transfer-Encoding: chunked"],
                           body=chunked(b"wor", b"ld", trailers=["X-T: 1"]))
           + build_request("GET", "/up/p3"))
    rs = c.read_responses(3)
    is_([(r.status, q.target, q.body_len, q.body_sha256) for r, q in zip(rs, echo.received[-3:])],
        [(200, "/up/p1", 5, sha256(b"hello")), (200, "/up/p2", 5, sha256(b"world")), (200, "/up/p3", 0, sha256(b""))],
        "pipelined POST, chunked POST with a trailer, GET: each body exactly where it belongs")
    is_(echo.accepted, 1, "the origin connection carried all of these")

# --- response framing: Content-Length ----------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/fixed")
    is_((r.status, r.body, r.header("Content-Length"), r.chunked), (200, b"fixed body\n", "11", False),
        "Content-Length response: relayed with its length")
    r = c.request("GET", "/fixed", version="HTTP/1.0", headers=["Connection: keep-alive"])
    is_((r.status, r.body, r.header("Content-Length"), conn_tokens(r)),
        (200, b"fixed body\n", "11", ["keep-alive"]), "Content-Length response to HTTP/1.0 keep-alive")

# --- chunked -------------------------------------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/chunky")
    is_((r.status, r.chunked, r.body, r.header("Content-Length")), (200, True, b"hello chunked world\n", None),
        "chunked response to HTTP/1.1: chunked, same body")
    is_(list(r.trailers), [], "the origin's trailer fields are not passed on (the client did not send TE: trailers)")
    r = c.request("GET", "/p/chunked-split")
    is_((r.status, r.chunked, r.body), (200, True, b"abcdefg"), "chunk framing split across writes: same body")
with p.connect() as c:
    r = c.request("GET", "/chunky", version="HTTP/1.0")
    is_((r.status, r.chunked, r.body, r.header("Content-Length")), (200, False, b"hello chunked world\n", None),
        "chunked response to HTTP/1.0: close-delimited")
    ok(r.closed_after and "close" in conn_tokens(r), "...with Connection: close, closed")

r = p.get("/big")
is_((r.status, len(r.body), sha256(r.body)), (200, 5000003, pattern_sha256(5000003)),
    "5 MB chunked response through a 4 KiB buffer: intact")

# --- close-delimited ------------------------------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/closer")
    is_((r.status, r.chunked, r.body == CLOSE_BODY, r.header("Content-Length")), (200, True, True, None),
        "close-delimited response to HTTP/1.1: re-framed as chunked, same body")
    r = c.request("GET", "/closer")
    is_((r.status, r.body == CLOSE_BODY), (200, True), "...and the client connection goes on")
    is_(closer.accepted, 2, "each close-delimited response needed its own origin connection")
with p.connect() as c:
    r = c.request("GET", "/closer", version="HTTP/1.0", headers=["Connection: keep-alive"])
    is_((r.status, r.chunked, r.body == CLOSE_BODY, r.header("Content-Length")), (200, False, True, None),
        "close-delimited response to HTTP/1.0 (even keep-alive): close-delimited")
    ok(r.closed_after and "close" in conn_tokens(r), "...Connection: close, closed")
with p.connect() as c:
    r = c.request("GET", "/closer10")
    is_((r.status, r.version, r.chunked, r.body), (200, "HTTP/1.1", True, b"one-oh body\n"),
        "HTTP/1.0 origin, close-delimited: HTTP/1.1 chunked to the client")

# --- no body: HEAD, 204, 304, 1xx -----------------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/p/204")
    is_((r.status, r.header("X-S"), r.header("Content-Length"), r.header("Transfer-Encoding"), r.body),
        (204, "204", None, None, b""), "204: no body, no framing fields")
    r = c.request("GET", "/p/304")
    is_((r.status, r.header("ETag"), r.body, r.header("Transfer-Encoding")), (304, '"e1"', b"", None),
        "304: no body (its Content-Length describes the resource)")
    r = c.request("GET", "/p/cl0")
    is_((r.status, r.header("Content-Length"), r.body), (200, "0", b""), "Content-Length: 0")
    r = c.request("GET", "/p/hints")     # a relayed 1xx would raise ProtocolError here
    is_((r.status, r.header("X-After"), r.body), (200, "hints", b"after hints\n"),
        "103, unsolicited 100 and 102 before the final response: not relayed")
    r = c.request("GET", "/p/last")
    is_((r.status, r.body), (200, b"conn 1\n"),
        "after all of these the client connection and the origin connection are still in use")
    is_(paths.accepted, 1, "one origin connection for every bodiless response")
    r = c.request("HEAD", "/p/head")
    is_((r.status, r.header("Content-Length"), r.header("X-H"), r.body), (200, "1234", "1", b""),
        "HEAD: the origin's Content-Length, no body")
    r = c.request("HEAD", "/p/head-chunked")
    is_((r.status, r.header("X-H"), r.body, r.header("Content-Length")), (200, "2", b"", None),
        "HEAD of a chunked resource: no body")

# --- Expect: 100-continue ---------------------------------------------------------------------------
with p.connect() as c:
    c.send(b"POST /e/continue HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n"
           b"Content-Length: 5\r\n\r\n")
    t0 = time.monotonic()
    r = c.read_response(allow_interim=True)
    took = time.monotonic() - t0
    is_(r.status, 100, "Expect: the origin's 100 Continue reaches the client")
    cmp_ok(took, "<", 0.9, "...when the origin sends it (not portico's 1 s fallback)")
    is_(expect.received[-1].header("Expect"), "100-continue", "Expect: 100-continue forwarded")
    c.send(b"hello")
    r = c.read_response()
    is_((r.status, r.body), (200, b"got 5 hello\n"), "then the body flows and the answer comes back")
    # again on the same connection, origin silent: portico sends the body after 1 s
    c.send(b"POST /e/silent HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n"
           b"Content-Length: 6\r\n\r\n")
    t0 = time.monotonic()
    r = c.read_response(allow_interim=True, timeout=5)
    took = time.monotonic() - t0
    is_(r.status, 100, "origin silent after Expect: the client gets 100 Continue")
    ok(0.8 <= took < 4, "...after portico waited about 1 s (%.2f s)" % took)
    c.send(b"world!")
    r = c.read_response()
    is_((r.status, r.body), (200, b"got 6 world!\n"), "...and the body reaches the origin")

with p.connect() as c:
    c.send(b"POST /e/reject HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n"
           b"Content-Length: 100\r\n\r\n")
    r = c.read_response()      # a 1xx first would raise ProtocolError
    is_((r.status, r.body), (417, b"no thanks\n"), "origin answers before the body: relayed, no 100")
    ok("close" in conn_tokens(r) and c.closed(2.0),
       "...Connection: close (the client's body was never asked for), closed")

with p.connect() as c:
    c.send(b"POST /e/silent HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n"
           b"Content-Length: 3\r\n\r\nabc")
    r = c.read_final_response()
    is_((r.status, r.body, r.interim), (200, b"got 3 abc\n", []),
        "Expect with the body sent at once: answered, no 100 (the client did not wait)")
    is_(expect.received[-1].header("Expect"), None,
        "...Expect not passed on: portico does not wait for the origin's 100 for a body it has")

# request buffering (the default): portico asks for the body itself and reads it whole
with p.connect() as c:
    n0 = expect.accepted
    c.send(b"POST /eb/silent HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n"
           b"Content-Length: 5\r\n\r\n")
    r = c.read_response(allow_interim=True)
    is_((r.status, expect.accepted), (100, n0), "buffered Expect: portico's own 100, the origin not yet contacted")
    c.send(b"howdy")
    r = c.read_response()
    is_((r.status, r.body, expect.received[-1].header("Expect")), (200, b"got 5 howdy\n", None),
        "...the body then goes to the origin whole, without Expect")

is_(echo.errors + expect.errors + paths.errors, [], "the origins saw only well-formed requests")
done_testing()
