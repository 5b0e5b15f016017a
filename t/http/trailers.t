#!/usr/bin/env python3
# Trailers relayed (RFC 9110 6.5). Responses: an origin's chunked response ends with
# trailer fields; a client that sent TE: trailers gets them after the body, over HTTP/1.1
# (in the last chunk) and over HTTP/2 (a HEADERS frame that ends the stream, as gRPC
# needs); a client that did not ask gets the body without them, and the origin is not
# told it may send them. Requests: a client's trailer fields (HTTP/1.1 chunked, HTTP/2
# HEADERS after the DATA) reach the origin in the last chunk, also when request buffering
# read the body whole (it then goes chunked, not with a Content-Length). Both ways,
# fields that must not be trailers (framing, routing, authentication, controls) are
# dropped.
import os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from h2test import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 90)

TRAILERS = ["grpc-status: 0", "X-Checksum:  abc123 ", "Content-Length: 5", "Set-Cookie: a=b",
            "Host: evil.example", "Content-Type: text/evil", "Transfer-Encoding: chunked",
            "grpc-message: all good"]
o = Origin.chunked(chunks=[b"hello ", b"trailers\n"], headers=[("Content-Type", "text/plain")],
                   trailers=TRAILERS)

ca = CA()
cert = ca.issue("site", sans=["a.example"])
echo = Origin.echo()
p = Portico(h2_config(cert, routes=[proxy_route("echo", "/echo"), proxy_route("app", "/")],
                      upstreams=[upstream("app", [o.address]), upstream("echo", [echo.address])]))
port2 = p.port("port2")


# -- HTTP/1.1, TE: trailers
with p.connect(port="port2") as c:
    c.send(build_request("GET", "/t", headers=[("TE", "trailers")]))
    r = c.read_response()
    is_((r.status, r.body), (200, b"hello trailers\n"), "h1 with TE: trailers: the body")
    is_(r.header("Transfer-Encoding"), "chunked", "sent chunked (the length is not known)")
    is_(r.trailers.items,
        [("grpc-status", "0"), ("X-Checksum", "abc123"), ("grpc-message", "all good")],
        "the trailer section: the allowed fields in order (OWS trimmed); Content-Length, "
        "Set-Cookie, Host, Content-Type and Transfer-Encoding dropped")
    req = o.received[-1]
    is_(req.header_all("TE"), ["trailers"], "the origin was told TE: trailers")
    like(req.header("Connection") or "", r"(?i)\bTE\b", "and Connection lists TE")
    # the connection goes on
    c.send(build_request("GET", "/t2"))
    r = c.read_response()
    is_((r.status, r.body), (200, b"hello trailers\n"), "keep-alive after a response with trailers")
    is_(r.trailers.items, [], "a request without TE: trailers gets none")
    req = o.received[-1]
    is_(req.header_all("TE"), [], "and the origin is not told it may send them")

# the exact bytes of the end of the body
with p.connect(port="port2") as c:
    c.send(build_request("GET", "/t", headers=[("TE", "trailers"), ("Connection", "close")]))
    data = c.read_until_close(10)
    ok(data.endswith(b"\r\n0\r\ngrpc-status: 0\r\nX-Checksum: abc123\r\ngrpc-message: all good\r\n\r\n"),
       "on the wire: the last chunk, the fields, the empty line (%r)" % data[-90:])

# -- request trailers from an HTTP/1.1 client (chunked, buffered whole by request buffering)
with p.connect(port="port2") as c:
    c.send(build_request("POST", "/echo/a", headers=[("Transfer-Encoding", "chunked")],
                         body=chunked(b"abc", b"def", trailers=["X-Req-Sum: 42", "Content-Length: 1",
                                                               "X-Other:  v "])))
    r = c.read_response()
    is_(r.status, 200, "a chunked POST with trailer fields")
    req = echo.received[-1]
    is_((req.chunked, req.body, req.trailers), (True, b"abcdef", [("X-Req-Sum", "42"), ("X-Other", "v")]),
        "the origin gets the body chunked (buffered, but trailers keep it chunked) and the "
        "allowed trailer fields")
    c.send(build_request("POST", "/echo/b", headers=[("Transfer-Encoding", "chunked")],
                         body=chunked(b"abc", b"def")))
    r = c.read_response()
    req = echo.received[-1]
    is_((r.status, req.chunked, req.header("Content-Length"), req.trailers), (200, False, "6", []),
        "without trailers, a buffered chunked body goes with its length (as before)")

# -- HTTP/2 (cleartext, prior knowledge), te: trailers
if have_clients():
    rc, out, err = run_client(["nghttp", "-nv", "-H", "te: trailers",
                               "http://127.0.0.1:%d/t" % port2], timeout=30)
    is_(rc, 0, "nghttp: h2 request with te: trailers")
    # nghttp prints a block's fields ("recv (stream_id=N) name: value") before its frame
    # line: the trailer fields are those between the last DATA frame and the second HEADERS
    text = out.decode("latin-1") + err
    blocks = re.split(r"recv HEADERS frame", text)
    trailer_fields = "\n".join(re.findall(r"recv \(stream_id=\d+\) ([^\n]*)",
                                         blocks[1].rsplit("recv DATA frame", 1)[-1]
                                         if len(blocks) > 2 else ""))
    like(blocks[2] if len(blocks) > 2 else "", r"^ <length=\d+, flags=0x05",
         "a second HEADERS frame ends the stream (END_STREAM | END_HEADERS)")
    is_(trailer_fields, "grpc-status: 0\nx-checksum: abc123\ngrpc-message: all good",
        "its fields: the allowed ones, names in lower case, none of those that must not be "
        "trailers")
    like(blocks[1] if len(blocks) > 1 else "", r"^ <length=\d+, flags=0x04", "the response HEADERS "
         "did not end the stream")
    rc, out, err = run_client(["nghttp", "-nv", "http://127.0.0.1:%d/t" % port2], timeout=30)
    blocks = re.split(r"recv HEADERS frame", out.decode("latin-1") + err)
    is_((rc, len(blocks)), (0, 2), "without te: trailers, one HEADERS frame only (no trailers)")
else:
    diag("nghttp is not installed: the HTTP/2 response trailers are not checked")

# -- request trailers from an HTTP/2 client: HEADERS, DATA, HEADERS (END_STREAM)
with H2(port2) as c:
    c.handshake()
    sid = c.request("/echo/h2", method="POST", end_stream=False)
    c.data(sid, b"hello h2")
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid,
                 hpack_block([("x-req-sum", "7"), ("content-type", "evil"), ("grpc-timeout", "1S")])))
    r = c.response(sid)
    is_(r.status, 200, "h2: a request whose body ends with trailer fields")
    req = echo.received[-1]
    is_((req.body, req.chunked, req.trailers), (b"hello h2", True, [("x-req-sum", "7"), ("grpc-timeout", "1S")]),
        "the origin gets the allowed trailer fields in the last chunk")

done_testing()
