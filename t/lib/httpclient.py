"""Raw HTTP/1.x client for tests: bytes out exactly as given, responses parsed strictly.

    c = Client(port)                  # 127.0.0.1:port, TCP_NODELAY, every wait bounded
    c.send(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n")
    r = c.read_response()             # Response: status, reason, headers, body, raw
    r2 = c.read_response("HEAD")      # pipelined answers come back in order
    c.closed()                        # True when the server closed (EOF or RST)

The reader is deliberately strict (CRLF only, one framing, well-formed status line and
fields): a malformed response from portico raises ProtocolError, which fails the test.
"""

import re
import select
import socket
import ssl
import time

DEFAULT_TIMEOUT = 5.0

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_status_re = re.compile(rb"^HTTP/(\d)\.(\d) ([0-9]{3}) ([\t \x21-\x7e\x80-\xff]*)$")
_field_re = re.compile(rb"^(" + TOKEN + rb"):[ \t]*(.*?)[ \t]*$", re.S)
_bad_value = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HTTPError(Exception):
    """Base class; .data holds the bytes received for the response so far."""

    def __init__(self, msg, data=b""):
        super().__init__(msg + (" (received %r)" % (bytes(data[:300]),) if data else ""))
        self.data = bytes(data)


class ProtocolError(HTTPError):
    """The server sent something that is not a valid HTTP/1.1 response."""


class ResponseTimeout(HTTPError):
    """No complete response within the timeout."""


class ConnectionClosed(HTTPError):
    """The server closed (FIN or RST) before the response was complete.
    .data is empty when it closed before sending a single byte."""


class Headers:
    """The fields of a message in order, with case-insensitive lookup."""

    def __init__(self, items=()):
        self.items = [(n, v) for n, v in items]

    def get(self, name, default=None):
        name = name.lower()
        for n, v in self.items:
            if n.lower() == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for n, v in self.items if n.lower() == name]

    def count(self, name):
        return len(self.get_all(name))

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)

    def names(self):
        return [n for n, _ in self.items]

    def __repr__(self):
        return "Headers(%r)" % self.items


class Response:
    def __init__(self):
        self.version = None      # "HTTP/1.1"
        self.status = None       # int
        self.reason = None       # str
        self.headers = Headers()
        self.trailers = Headers()
        self.body = b""
        self.raw = b""           # every byte of this response as received
        self.chunked = False
        self.elapsed = None      # seconds from the read call to the last byte
        self._client = None
        self._closed_after = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def text(self):
        return self.body.decode("latin-1")

    @property
    def closed_after(self):
        """Did the server close the connection after this response? (Asked once, lazily:
        returns as soon as EOF/RST arrives, else after the client's close_wait seconds.)"""
        if self._closed_after is None and self._client is not None:
            self._closed_after = self._client.closed(self._client.close_wait)
        return self._closed_after

    def __repr__(self):
        return "<Response %s %s %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers.items, self.body[:200])


def _decode(b):
    return b.decode("latin-1")


class Client:
    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, rcvbuf=None,
                 close_wait=1.0, family=None, tls=None, sni=None, session=None):
        """tls: an ssl.SSLContext: the connection does a TLS handshake (sending sni, and
        resuming session if given) before anything else; ssl.SSLError if it fails."""
        self.host, self.port, self.timeout = host, port, timeout
        self.close_wait = close_wait
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.send_failed = False
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf:
            # Before connect, so the window is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
            if tls is not None:
                self.sock = tls.wrap_socket(self.sock, server_hostname=sni, session=session)
        except BaseException:
            self.sock.close()
            raise

    # -- context manager -----------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- sending -------------------------------------------------------------------------
    def send(self, data):
        """Send all of data. Returns False (and sets send_failed) if the server has
        closed/reset the connection, so tests can still read what it answered."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.send_failed = True
            return False

    def send_slowly(self, data, delay=0.002, step=1, stop_on_response=False):
        """Send data `step` bytes at a time with `delay` seconds between writes.
        With stop_on_response, stops early once the server has sent something."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        for i in range(0, len(data), step):
            if not self.send(data[i:i + step]):
                return False
            if stop_on_response and self.readable(0):
                return True
            if delay:
                time.sleep(delay)
        return True

    def send_pieces(self, pieces, delay=0.05):
        """Send each piece as its own write, sleeping `delay` between them."""
        for i, p in enumerate(pieces):
            if i and delay:
                time.sleep(delay)
            if not self.send(p):
                return False
        return True

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- receiving -----------------------------------------------------------------------
    def readable(self, timeout):
        if self.buf or self.eof:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def _fill(self, deadline, want_more_than=None):
        """Read once more into buf. Returns False at EOF/RST; raises ResponseTimeout."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ResponseTimeout("timed out waiting for data", self.buf)
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ResponseTimeout("timed out after %.1fs waiting for data" % self.timeout,
                                  self.buf)
        except (ConnectionResetError, ssl.SSLError):
            # a TLS alert or a broken record is the end of this connection too
            self.eof = True
            self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take(self, n):
        d = bytes(self.buf[:n])
        del self.buf[:n]
        self._taken += d
        return d

    def _read_line(self, deadline, what):
        """One CRLF-terminated line without the CRLF; bare LF/CR is a ProtocolError."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = self._take(i + 1)
                if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                    raise ProtocolError("%s not terminated by CRLF: %r" % (what, line),
                                        self._taken)
                return line[:-2]
            if not self._fill(deadline):
                raise ConnectionClosed("connection %s while reading %s"
                                       % ("reset" if self.reset else "closed", what),
                                       self._taken + self.buf)

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed("connection %s in the body (%d of %d bytes)"
                                       % ("reset" if self.reset else "closed", len(self.buf), n),
                                       self._taken + self.buf)
        return self._take(n)

    def _read_fields(self, deadline, into, what):
        while True:
            line = self._read_line(deadline, what)
            if line == b"":
                return
            m = _field_re.match(line)
            if not m:
                raise ProtocolError("malformed %s line %r" % (what, line), self._taken)
            if _bad_value.search(m.group(2)):
                raise ProtocolError("control character in %s %r" % (what, line), self._taken)
            into.items.append((_decode(m.group(1)), _decode(m.group(2))))

    def read_response(self, method="GET", timeout=None, allow_interim=False):
        """Read one response. 1xx interim responses are returned too when allow_interim;
        otherwise a 1xx is a ProtocolError (use read_final_response to skip them)."""
        start = time.monotonic()
        deadline = start + (self.timeout if timeout is None else timeout)
        self._taken = bytearray()
        r = Response()
        r._client = self
        # Status line. A server that closes before the first byte raises ConnectionClosed
        # with empty .data: tests tell "closed silently" from "closed mid-response" by it.
        line = self._read_line(deadline, "status line")
        m = _status_re.match(line)
        if not m:
            raise ProtocolError("malformed status line %r" % line, self._taken)
        r.version = "HTTP/%s.%s" % (_decode(m.group(1)), _decode(m.group(2)))
        r.status = int(m.group(3))
        r.reason = _decode(m.group(4))
        self._read_fields(deadline, r.headers, "header field")
        if 100 <= r.status < 200:
            r.raw = bytes(self._taken)
            r.elapsed = time.monotonic() - start
            if not allow_interim:
                raise ProtocolError("unexpected interim response %d" % r.status, r.raw)
            return r

        te = r.headers.get_all("Transfer-Encoding")
        cl = r.headers.get_all("Content-Length")
        if method.upper() == "HEAD" or r.status in (204, 304):
            pass
        elif te:
            if cl:
                raise ProtocolError("both Transfer-Encoding and Content-Length", self._taken)
            if len(te) != 1 or te[0].lower() != "chunked":
                raise ProtocolError("unsupported Transfer-Encoding %r" % te, self._taken)
            r.chunked = True
            body = bytearray()
            while True:
                size_line = self._read_line(deadline, "chunk size")
                m = re.match(rb"^([0-9A-Fa-f]{1,16})(;.*)?$", size_line)
                if not m:
                    raise ProtocolError("bad chunk size line %r" % size_line, self._taken)
                n = int(m.group(1), 16)
                if n == 0:
                    break
                body += self._read_exact(n, deadline)
                if self._read_exact(2, deadline) != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF", self._taken)
            self._read_fields(deadline, r.trailers, "trailer field")
            r.body = bytes(body)
        elif cl:
            if len(cl) != 1 or not re.match(r"^[0-9]{1,18}$", cl[0]):
                raise ProtocolError("bad Content-Length %r" % cl, self._taken)
            r.body = self._read_exact(int(cl[0]), deadline)
        else:
            # Close-delimited.
            while self._fill(deadline):
                pass
            r.body = self._take(len(self.buf))
            r._closed_after = True
        r.raw = bytes(self._taken)
        r.elapsed = time.monotonic() - start
        return r

    def read_final_response(self, method="GET", timeout=None):
        """Skip 1xx responses (kept in .interim of the final one)."""
        interim = []
        while True:
            r = self.read_response(method, timeout, allow_interim=True)
            if r.status >= 200:
                r.interim = interim
                return r
            interim.append(r)

    def read_responses(self, methods, timeout=None):
        """Pipelined responses, in order; methods is a list ("GET", "HEAD", ...) or a count."""
        if isinstance(methods, int):
            methods = ["GET"] * methods
        return [self.read_response(m, timeout) for m in methods]

    def try_read_response(self, method="GET", timeout=None):
        """A response, or None if the server closed without sending a single byte."""
        try:
            return self.read_response(method, timeout)
        except ConnectionClosed as e:
            if e.data:
                raise
            return None

    def closed(self, timeout=1.0):
        """True when the server has closed (FIN or RST), waiting at most timeout seconds.
        Unread bytes in the buffer mean it is not (yet) closed: they stay readable."""
        if self.buf:
            return False
        if self.eof:
            return True
        deadline = time.monotonic() + timeout
        self._taken = bytearray()
        try:
            self._fill(deadline)
        except ResponseTimeout:
            return False
        return self.eof and not self.buf

    def read_until_close(self, timeout=None):
        """Every byte until EOF/RST (raises ResponseTimeout if the server keeps it open)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._taken = bytearray()
        while self._fill(deadline):
            pass
        return self._take(len(self.buf))

    def read_available(self, wait=0.2):
        """Whatever arrives within `wait` seconds (b'' if nothing); never raises on EOF."""
        deadline = time.monotonic() + wait
        self._taken = bytearray()
        try:
            while self._fill(deadline):
                pass
        except ResponseTimeout:
            pass
        return self._take(len(self.buf))

    def request(self, method="GET", target="/", host="a.example", headers=(), body=None,
                version="HTTP/1.1", timeout=None):
        """Send a well-formed request and read its response."""
        self.send(build_request(method, target, host, headers, body, version))
        return self.read_response(method, timeout)


def build_request(method="GET", target="/", host="a.example", headers=(), body=None,
                  version="HTTP/1.1"):
    """Bytes of a well-formed request. host=None leaves Host out; a body gets a
    Content-Length unless headers already frame it."""
    lines = ["%s %s %s" % (method, target, version)]
    if host is not None:
        lines.append("Host: " + host)
    names = set()
    for h in headers:
        if isinstance(h, tuple):
            h = "%s: %s" % h
        lines.append(h)
        names.add(h.split(":", 1)[0].strip().lower())
    if isinstance(body, str):
        body = body.encode("latin-1")
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body or b"")


def chunked(*chunks, trailers=()):
    """A chunked body: chunked(b"hello", b" world")."""
    out = bytearray()
    for c in chunks:
        if isinstance(c, str):
            c = c.encode("latin-1")
        if c:
            out += b"%x\r\n" % len(c) + c + b"\r\n"
    out += b"0\r\n"
    for t in trailers:
        out += t.encode("latin-1") + b"\r\n"
    return bytes(out + b"\r\n")


IMF_FIXDATE = (r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
               r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
               r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT$")

REASONS = {
    100: "Continue", 101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
    413: "Content Too Large", 414: "URI Too Long", 417: "Expectation Failed",
    406: "Not Acceptable", 409: "Conflict", 410: "Gone", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def error_body(code):
    """The body portico's core gives its own error responses: b"400 Bad Request\\n"."""
    return ("%d %s\n" % (code, REASONS[code])).encode()
