"""Origin servers for proxy tests: threaded TCP servers on a free loopback port with a
pluggable behaviour, counting accepted connections and requests.

    o = Origin.echo()                     # started; o.port, o.address ("127.0.0.1:PORT")
    ... portico proxies to o ...
    o.accepted, o.requests, o.received    # counters and OriginRequest records
    o.stop()                              # also done at exit

Behaviours (class methods): echo, fixed, chunked, close_delimited, slow, close_mid_body,
malformed, large, websocket_echo, silent; or Origin(handler) with your own
handler(origin, conn, req) -> bool (True keeps the connection for another request).
A handler writes with conn.sendall() and reads what follows the request with
conn.recv_some() / read_exact() / read_until().
Origin(handler, raw=True) calls handler(origin, conn) once per connection with nothing
read yet: it parses with conn.read_head() / conn.read_body(req) itself (Expect, pacing).
"""

import hashlib
import re
import socket
import threading
import time

import tap


class OriginRequest:
    def __init__(self):
        self.method = self.target = self.version = None
        self.headers = []          # [(name, value)] as received
        self.head = b""            # request line + fields + CRLF CRLF, raw
        self.body = b""            # decoded body (empty when store_body=False)
        self.body_len = 0
        self.body_sha256 = None
        self.chunked = False
        self.trailers = []
        self.conn_index = 0        # which accepted connection (1-based)
        self.seq_on_conn = 0       # request number on that connection (1-based)

    def header(self, name, default=None):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def __repr__(self):
        return "<OriginRequest %s %s headers=%r body_len=%d>" % (
            self.method, self.target, self.headers, self.body_len)


class BadRequest(Exception):
    pass


class Conn:
    """One accepted connection with a read buffer."""

    def __init__(self, origin, sock, index):
        self.origin, self.sock, self.index = origin, sock, index
        self.buf = bytearray()
        self.eof = False
        self.requests = 0

    def recv_some(self, n=65536):
        if self.buf:
            d = bytes(self.buf[:n])
            del self.buf[:n]
            return d
        try:
            d = self.sock.recv(n)
        except (ConnectionResetError, socket.timeout, OSError):
            d = b""
        if not d:
            self.eof = True
        return d

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout, OSError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_until(self, marker, limit=1 << 20):
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                d = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return d
            if len(self.buf) > limit:
                raise BadRequest("no %r within %d bytes" % (marker, limit))
            if not self._fill():
                return None

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                return None
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d

    def sendall(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def read_request(self, store_body=True):
        """Parse one request (head, then a Content-Length or chunked body). None at a clean
        EOF before the first byte."""
        req = self.read_head()
        if req is not None:
            self.read_body(req, store_body)
        return req

    def read_head(self):
        """Parse one request head only (the body stays unread: read_body). None at a clean
        EOF before the first byte."""
        head = self.read_until(b"\r\n\r\n")
        if head is None:
            if self.buf:
                raise BadRequest("EOF inside the request head")
            return None
        req = OriginRequest()
        req.head = head
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise BadRequest("bad request line %r" % lines[0])
        req.method, req.target, req.version = (p.decode("latin-1") for p in parts)
        for line in lines[1:]:
            if b":" not in line:
                raise BadRequest("bad field %r" % line)
            n, v = line.split(b":", 1)
            req.headers.append((n.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return req

    def read_body(self, req, store_body=True):
        """Read the body of req (after read_head) into req.body / body_len / body_sha256."""
        h = hashlib.sha256()
        body = bytearray()

        def take(d):
            req.body_len += len(d)
            h.update(d)
            if store_body:
                body.extend(d)

        te = req.header("Transfer-Encoding")
        cl = req.header("Content-Length")
        if te is not None:
            if te.lower() != "chunked":
                raise BadRequest("Transfer-Encoding %r" % te)
            req.chunked = True
            while True:
                line = self.read_until(b"\r\n")
                if line is None:
                    raise BadRequest("EOF in chunk size")
                size = int(line[:-2].split(b";")[0], 16)
                if size == 0:
                    break
                remaining = size
                while remaining:
                    d = self.read_exact(min(remaining, 65536))
                    if d is None:
                        raise BadRequest("EOF in chunk data")
                    take(d)
                    remaining -= len(d)
                if self.read_exact(2) != b"\r\n":
                    raise BadRequest("chunk not followed by CRLF")
            while True:
                line = self.read_until(b"\r\n")
                if line is None:
                    raise BadRequest("EOF in trailers")
                if line == b"\r\n":
                    break
                n, v = line[:-2].split(b":", 1)
                req.trailers.append((n.decode("latin-1"), v.strip().decode("latin-1")))
        elif cl is not None:
            remaining = int(cl)
            while remaining:
                d = self.read_exact(min(remaining, 65536))
                if d is None:
                    raise BadRequest("EOF in body")
                take(d)
                remaining -= len(d)
        req.body = bytes(body)
        req.body_sha256 = h.hexdigest()
        return req


def wants_close(req):
    conn = (req.header("Connection") or "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" not in conn
    return "close" in [t.strip() for t in conn.split(",")]


def response_bytes(status=200, headers=(), body=b"", reason=None, chunked=False,
                   close=False):
    """A framed response. headers: [(name, value)] or ["Name: value"]."""
    if isinstance(body, str):
        body = body.encode("latin-1")
    reason = reason if reason is not None else {200: "OK", 101: "Switching Protocols",
                                                204: "No Content", 304: "Not Modified",
                                                404: "Not Found"}.get(status, "Status")
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    names = set()
    for h in headers:
        if isinstance(h, tuple):
            h = "%s: %s" % h
        lines.append(h)
        names.add(h.split(":", 1)[0].lower())
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif "content-length" not in names and status not in (204, 304) and status >= 200:
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if chunked:
        if body:
            out += b"%x\r\n" % len(body) + body + b"\r\n"
        out += b"0\r\n\r\n"
    else:
        out += body
    return out


class Origin:
    def __init__(self, handler, store_body=True, keepalive=True, host="127.0.0.1",
                 start=True, name="origin", raw=False, backlog=128, tls=None):
        """tls: an ssl.SSLContext (server side): each connection does a TLS handshake
        first; a failed one is counted in tls_failures (its reason in errors)."""
        self.handler = handler
        self.tls = tls
        self.tls_failures = 0
        self.tls_sni = []          # the server name each handshake asked for (or None)
        self.tls_versions = []
        self.tls_resumed = []
        if tls is not None:
            def record_sni(sock, name, ctx):
                with self.lock:
                    self.tls_sni.append(name)
            tls.sni_callback = record_sni
        self.raw = raw
        self.store_body = store_body
        self.keepalive = keepalive
        self.name = name
        self.lock = threading.Lock()
        self.accepted = 0          # connections accepted
        self.requests = 0          # requests parsed
        self.received = []         # OriginRequest, in arrival order
        self.errors = []           # parse errors and handler exceptions (as text)
        self.open_conns = 0
        self.closed = 0            # connections closed (either side) and finished
        self.bytes_sent = 0        # body bytes Origin.large has written so far
        self._conns = set()
        self._stopping = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.address = "%s:%d" % (host, self.port)
        self.sock.listen(backlog)
        self._thread = None
        tap.add_cleanup(self.stop)
        if start:
            self.start()

    def start(self):
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="%s-accept" % self.name)
        self._thread.start()
        return self

    def reset_counters(self):
        with self.lock:
            self.accepted = self.requests = 0
            self.received = []
            self.errors = []

    def _accept_loop(self):
        while not self._stopping:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            if self._stopping:
                s.close()
                return
            with self.lock:
                self.accepted += 1
                self.open_conns += 1
                idx = self.accepted
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(30)
            c = Conn(self, s, idx)
            with self.lock:
                self._conns.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True,
                             name="%s-conn%d" % (self.name, idx)).start()

    def _serve(self, c):
        try:
            if self.tls is not None:
                try:
                    c.sock = self.tls.wrap_socket(c.sock, server_side=True)
                except (OSError, ValueError) as e:
                    with self.lock:
                        self.tls_failures += 1
                        self.errors.append("conn %d: TLS handshake: %s" % (c.index, e))
                    return
                with self.lock:
                    self.tls_versions.append(c.sock.version())
                    self.tls_resumed.append(c.sock.session_reused)
            if self.raw:
                try:
                    self.handler(self, c)
                except BadRequest as e:
                    with self.lock:
                        self.errors.append("conn %d: %s" % (c.index, e))
                return
            while not self._stopping:
                try:
                    req = c.read_request(self.store_body)
                except BadRequest as e:
                    with self.lock:
                        self.errors.append("conn %d: %s" % (c.index, e))
                    break
                if req is None:
                    break
                c.requests += 1
                req.conn_index, req.seq_on_conn = c.index, c.requests
                with self.lock:
                    self.requests += 1
                    self.received.append(req)
                keep = self.handler(self, c, req)
                if not keep or not self.keepalive or wants_close(req):
                    break
        except (OSError, ValueError) as e:
            with self.lock:
                self.errors.append("conn %d: %s: %s" % (c.index, type(e).__name__, e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            with self.lock:
                self.open_conns -= 1
                self.closed += 1
                self._conns.discard(c)

    def stop(self):
        if self._stopping:
            return
        self._stopping = True
        try:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(2)

    def record(self, c, req):
        """For raw handlers: count and keep a request read with conn.read_head()."""
        c.requests += 1
        req.conn_index, req.seq_on_conn = c.index, c.requests
        with self.lock:
            self.requests += 1
            self.received.append(req)

    def wait_open(self, n, timeout=5.0):
        """Wait until exactly n connections are open; returns the count."""
        deadline = time.monotonic() + timeout
        while self.open_conns != n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_conns

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.requests < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    # -- behaviours ----------------------------------------------------------------------
    @classmethod
    def echo(cls, status=200, headers=(), **kw):
        """Answers with the received request head and body as its body (Content-Length),
        plus X-Origin-Conn (connection number) and X-Origin-Request (request count)."""
        def h(o, c, req):
            body = req.head + req.body
            hdrs = list(headers) + [("X-Origin-Conn", str(c.index)),
                                    ("X-Origin-Request", str(o.requests))]
            c.sendall(response_bytes(status, hdrs, body, close=wants_close(req)))
            return True
        return cls(h, **kw)

    @classmethod
    def fixed(cls, status=200, headers=(), body=b"ok\n", reason=None, **kw):
        def h(o, c, req):
            resp = response_bytes(status, headers, body, reason=reason, close=wants_close(req))
            c.sendall(_head_only(resp) if req.method == "HEAD" else resp)
            return True
        return cls(h, **kw)

    @classmethod
    def chunked(cls, chunks=(b"hello ", b"world\n"), headers=(), trailers=(), delay=0.0,
                **kw):
        """A chunked response, one write per chunk (with `delay` between chunks)."""
        def h(o, c, req):
            head = ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"]
            head += ["%s: %s" % x if isinstance(x, tuple) else x for x in headers]
            if wants_close(req):
                head.append("Connection: close")
            c.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if req.method == "HEAD":
                return True
            for ch in chunks:
                if isinstance(ch, str):
                    ch = ch.encode("latin-1")
                if delay:
                    time.sleep(delay)
                c.sendall(b"%x\r\n" % len(ch) + ch + b"\r\n")
            c.sendall(b"0\r\n" + b"".join(t.encode("latin-1") + b"\r\n" for t in trailers)
                      + b"\r\n")
            return True
        return cls(h, **kw)

    @classmethod
    def close_delimited(cls, body=b"until close\n", headers=(), version="HTTP/1.1", **kw):
        """No Content-Length, no chunking: the body ends when the origin closes."""
        def h(o, c, req):
            head = ["%s 200 OK" % version]
            head += ["%s: %s" % x if isinstance(x, tuple) else x for x in headers]
            c.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if req.method != "HEAD":
                c.sendall(body)
            return False
        return cls(h, **kw)

    @classmethod
    def slow(cls, delay=1.0, body_delay=0.0, status=200, body=b"slow\n", headers=(), **kw):
        """Waits `delay` before the response head, and `body_delay` between head and body."""
        def h(o, c, req):
            time.sleep(delay)
            if o._stopping:
                return False
            resp = response_bytes(status, headers, body, close=wants_close(req))
            if body_delay:
                i = resp.index(b"\r\n\r\n") + 4
                c.sendall(resp[:i])
                time.sleep(body_delay)
                c.sendall(resp[i:])
            else:
                c.sendall(resp)
            return True
        return cls(h, **kw)

    @classmethod
    def close_mid_body(cls, total=100000, sent=5000, chunked=False, **kw):
        """Announces `total` body bytes (Content-Length, or chunked) and closes after `sent`."""
        def h(o, c, req):
            if chunked:
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + b"%x\r\n" % total + b"x" * sent)
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total
                          + b"x" * sent)
            return False
        return cls(h, **kw)

    @classmethod
    def malformed(cls, raw, close=True, **kw):
        """Sends `raw` bytes verbatim as the response (e.g. two Content-Lengths)."""
        if isinstance(raw, str):
            raw = raw.encode("latin-1")

        def h(o, c, req):
            c.sendall(raw)
            return not close
        return cls(h, **kw)

    @classmethod
    def large(cls, size, chunked=False, piece=65536, **kw):
        """A `size`-byte body of a repeating pattern, streamed (never held in memory).
        Pattern byte i is (i % 251); use pattern_sha256(size) to check what arrived."""
        block = bytes(i % 251 for i in range(251 * 261))   # 65511 bytes, multiple of 251

        def h(o, c, req):
            if chunked:
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            if req.method == "HEAD":
                return True
            left = size
            while left:
                d = block[:min(left, len(block))]
                if chunked:
                    c.sendall(b"%x\r\n" % len(d) + d + b"\r\n")
                else:
                    c.sendall(d)
                left -= len(d)
                o.bytes_sent += len(d)
            if chunked:
                c.sendall(b"0\r\n\r\n")
            return True
        return cls(h, **kw)

    @classmethod
    def websocket_echo(cls, **kw):
        """Answers an Upgrade request with 101, then echoes every byte until EOF."""
        def h(o, c, req):
            if (req.header("Upgrade") or "") == "":
                c.sendall(response_bytes(400, (), b"upgrade required\n", close=True))
                return False
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\n"
                      b"Connection: Upgrade\r\n\r\n" % req.header("Upgrade").encode("latin-1"))
            while True:
                d = c.recv_some()
                if not d:
                    return False
                c.sendall(d)
        return cls(h, **kw)

    @classmethod
    def silent(cls, **kw):
        """Reads the request and never answers (until stopped)."""
        def h(o, c, req):
            while not o._stopping and c.recv_some():
                pass
            return False
        return cls(h, **kw)


def _head_only(resp):
    return resp[:resp.index(b"\r\n\r\n") + 4]


def pattern_sha256(size):
    """sha256 of the first `size` bytes of Origin.large's pattern."""
    block = bytes(i % 251 for i in range(251 * 261))
    h = hashlib.sha256()
    left = size
    while left:
        d = block[:min(left, len(block))]
        h.update(d)
        left -= len(d)
    return h.hexdigest()
