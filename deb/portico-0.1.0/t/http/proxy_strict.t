#!/usr/bin/env python3
# Reverse proxying, strict response parsing: an invalid status line, invalid framing
# (two Content-Lengths, Content-Length with Transfer-Encoding, a bad chunk), obs-fold,
# control characters, an oversized head give the client 502 when nothing was sent yet,
# with an error-log line naming the upstream server and why; once the head is on its way,
# the client connection is closed mid-body. Bytes after a response are never forwarded.
import os, re, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

OK_TAIL = b"Content-Length: 2\r\n\r\nok"
BAD_HEADS = [
    # (path, raw response, words the error log's reason must contain, description)
    ("/status-4digits", b"HTTP/1.1 2000 OK\r\n" + OK_TAIL, "status", "a four-digit status code"),
    ("/status-2digits", b"HTTP/1.1 20 OK\r\n" + OK_TAIL, "status", "a two-digit status code"),
    ("/status-099", b"HTTP/1.1 099 Low\r\n" + OK_TAIL, "status", "status 099"),
    ("/status-letters", b"HTTP/1.1 2x0 OK\r\n" + OK_TAIL, "status", "letters in the status code"),
    ("/version-2", b"HTTP/2.0 200 OK\r\n" + OK_TAIL, "version", "HTTP/2.0 status line"),
    ("/version-lower", b"http/1.1 200 OK\r\n" + OK_TAIL, "", "lower-case http/1.1"),
    ("/garbage", b"garbage\r\n\r\n", "", "not a status line"),
    ("/icy", b"ICY 200 OK\r\n" + OK_TAIL, "", "ICY instead of HTTP/1.1"),
    ("/bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "LF", "bare LF line endings"),
    ("/bare-cr", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n" + OK_TAIL, "CR", "bare CR in a field"),
    ("/two-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok",
     "Content-Length", "two different Content-Lengths"),
    ("/cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", "Content-Length", "Content-Length: 2, 2"),
    ("/cl-letters", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok", "Content-Length", "Content-Length: abc"),
    ("/cl-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", "Content-Length", "Content-Length: -1"),
    ("/cl-huge", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok",
     "Content-Length", "an overflowing Content-Length"),
    ("/cl-te", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     "Transfer-Encoding", "Content-Length and Transfer-Encoding"),
    ("/te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     "Transfer-Encoding", "Transfer-Encoding: gzip, chunked"),
    ("/te-identity", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok", "Transfer-Encoding",
     "Transfer-Encoding: identity"),
    ("/te-two", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding", "two Transfer-Encoding fields"),
    ("/te-http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding",
     "Transfer-Encoding in an HTTP/1.0 response"),
    ("/obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\n" + OK_TAIL, "fold", "obs-fold"),
    ("/space-colon", b"HTTP/1.1 200 OK\r\nX-A : a\r\n" + OK_TAIL, "", "whitespace before the colon"),
    ("/no-colon", b"HTTP/1.1 200 OK\r\nX-A\r\n" + OK_TAIL, "", "a field line without a colon"),
    ("/nul", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n" + OK_TAIL, "", "NUL in a field value"),
    ("/ctl", b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n" + OK_TAIL, "", "a control character in a field value"),
    ("/empty-name", b"HTTP/1.1 200 OK\r\n: a\r\n" + OK_TAIL, "", "an empty field name"),
    ("/204-cl", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "204", "Content-Length in a 204"),
    ("/101-unasked", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
     "101", "101 to a request that asked for no upgrade"),
    ("/huge-head", b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 5000 + b"\r\n" + OK_TAIL, "response header section too large",
     "a head larger than buffer_size (4096)"),
    ("/many-fields", b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + OK_TAIL,
     "too many", "200 header fields"),
    ("/cut-head", b"HTTP/1.1 200 OK\r\nContent-Len", "closed", "the origin closes in the middle of the head"),
    ("/nothing", b"", "closed", "the origin closes without a byte"),
]
MID_BODY = [
    # (path, raw response, body bytes the client gets before the close, description)
    ("/bad-chunk-size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nxx\r\n0\r\n\r\n",
     b"abc", "an invalid chunk size"),
    ("/chunk-no-crlf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
     b"abc", "chunk data not followed by CRLF"),
    ("/chunk-overflow", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
     b"fffffffffffffffff\r\n", b"ab", "an overflowing chunk size"),
    ("/chunk-bare-lf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\nab\r\n0\r\n\r\n",
     b"ab", "a bare LF after a chunk size"),
    ("/cl-short", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd", b"abcd",
     "Content-Length 10 and a close after 4 bytes"),
    ("/chunked-short", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabcd", b"abcd",
     "a chunk of 16 bytes and a close after 4"),
    ("/chunked-no-last", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n", b"abcd",
     "a close instead of the last chunk"),
]
RAW = dict((x[0], x[1]) for x in BAD_HEADS + MID_BODY)
RAW["/extra"] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabEXTRA BYTES"
RAW["/extra-204"] = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
RAW["/cl-ok"] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def raw_origin(o, c, req):
    t = req.target
    if t.startswith("/ka/"):                       # keep the connection: no close after it
        c.sendall(RAW["/" + t[4:]])
        return True
    c.sendall(RAW.get(t, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    time.sleep(0.05)
    return False


o = Origin(raw_origin)
p = Portico(proxy_config(upstream("bad", [o.address], buffer_size=4096), proxy_route("bad")))
SERVER_RE = r'upstream "bad" server 127\.0\.0\.1:%d: ' % o.port

# --- 502 when nothing was sent ------------------------------------------------------------------
for path, raw, word, what in BAD_HEADS:
    mark = p.log_mark()
    with p.connect() as c:
        try:
            r = c.request("GET", path)
            res = (r.status, r.body, r.header("Content-Type"))
            leak = str(o.port).encode() in r.raw
            closed = "close" in conn_tokens(r) and c.closed(2.0)
        except HTTPError as e:
            res, leak, closed = ("no response", repr(e)), None, None
    is_(res, (502, b"502 Bad Gateway\n", "text/plain"), "%s: 502 with portico's error page" % what)
    ok(leak is False, "%s: the page does not show the upstream" % what)
    m = p.wait_log(SERVER_RE + r"(.*), client 127\.0\.0\.1, request \"GET %s\"" % re.escape(path), 3.0, mark)
    ok(m and word.lower() in m.group(1).lower(),
       "%s: error log names the server and why%s" % (what, " (%s)" % m.group(1) if m else ""))

# --- closed mid-body once the head was sent -----------------------------------------------------
for path, raw, got, what in MID_BODY:
    mark = p.log_mark()
    with p.connect() as c:
        c.send(build_request("GET", path))
        try:
            r = c.read_response()
            res = ("complete response", r.status, r.body)
        except ConnectionClosed as e:
            head, _, rest = e.data.partition(b"\r\n\r\n")
            body = rest
            if b"Transfer-Encoding: chunked" in head:
                # decode what arrived of the re-chunked body
                body, buf = b"", rest
                while True:
                    line, sep, buf = buf.partition(b"\r\n")
                    if not sep or not line:
                        break
                    n = int(line, 16)
                    body += buf[:n]
                    buf = buf[n + 2:]
            res = ("closed", head.split(b"\r\n")[0], body)
        except HTTPError as e:
            res = ("error", repr(e))
    is_(res, ("closed", b"HTTP/1.1 200 OK", got), "%s: 200 head, the body so far, then the client connection is closed" % what)
    ok(p.wait_log(SERVER_RE + r".*request \"GET %s\"" % re.escape(path), 3.0, mark),
       "%s: logged with the server" % what)

# --- bytes after a response are never forwarded, the connection never reused ----------------------
with p.connect() as c:
    o.reset_counters()
    r = c.request("GET", "/ka/extra")
    is_((r.status, r.body), (200, b"ab"), "response followed by extra bytes: the response as framed")
    r = c.request("GET", "/ka/cl-ok")
    is_((r.status, r.body), (200, b"ok"), "the next request is answered properly")
    is_([q.conn_index for q in o.received], [1, 2], "...on a new origin connection (the one with extra bytes is dropped)")
    r = c.request("GET", "/ka/extra-204")
    is_((r.status, r.body), (204, b""), "204 followed by bytes: the 204")
    r = c.request("GET", "/ka/cl-ok")
    is_((r.status, r.body, [q.conn_index for q in o.received][-2:]), (200, b"ok", [2, 3]),
        "...and the bytes are not taken as the next response")
    r = c.request("GET", "/ka/cl-ok")
    is_([q.conn_index for q in o.received][-1], 3, "a clean response leaves its connection reusable")

is_(o.errors, [], "the origin saw only well-formed requests")
done_testing()
