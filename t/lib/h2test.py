"""Helpers for the HTTP/2 tests (t/http/h2_*.t): a config with a TLS listener offering h2
by ALPN and a cleartext one with http2 = true, a raw frame client (frames written by
hand, header blocks as HPACK literals), and the Debian clients (curl, nghttp, h2load).

    from h2test import *
    ca = CA(); cert = ca.issue("site", sans=["a.example"])
    p = Portico(h2_config(cert, routes=[...], upstreams=[...], h2={"max_resets": 10}))
    c = H2(p.port("port2"))                 # cleartext, prior knowledge
    c = H2(p.port(), tls=ca)                # TLS, ALPN h2
    c.handshake()                           # server SETTINGS read, ACK sent
    sid = c.request("/x")                   # HEADERS (END_STREAM unless body=False)
    st = c.response(sid)                    # .status .body .reset (RST code) .frames
    last, code = c.wait_goaway()
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import time

from tlstest import *
from tlstest import __all__ as _tls_all

__all__ = list(_tls_all) + [
    "H2", "H2Response", "frame", "h2_built", "hpack_block", "h2_config", "run_client", "have_clients",
    "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PING", "GOAWAY",
    "WINDOW_UPDATE", "CONTINUATION", "END_STREAM", "ACK", "END_HEADERS",
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "REFUSED_STREAM", "CANCEL",
    "ENHANCE_YOUR_CALM", "PREFACE", "SETTINGS_INITIAL_WINDOW_SIZE",
]

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0, 1, 2
REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 7, 8, 11
SETTINGS_INITIAL_WINDOW_SIZE = 4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def have_clients():
    return all(shutil.which(x) for x in ("curl", "nghttp", "h2load"))


def h2_built():
    """portico -V names nghttp2 unless it was built --without-nghttp2."""
    cp = run_bin(["-V"])
    return "nghttp2 " in cp.stdout


def run_client(args, timeout=60):
    """Runs curl / nghttp / h2load; returns (exit code, stdout bytes, stderr text)."""
    cp = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=timeout)
    return cp.returncode, cp.stdout, cp.stderr.decode("latin-1")


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) \
        + struct.pack(">I", stream) + payload


def _hpack_int(v, bits, first=0):
    limit = (1 << bits) - 1
    if v < limit:
        return bytes([first | v])
    out = [first | limit]
    v -= limit
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def _hpack_str(s):
    if isinstance(s, str):
        s = s.encode("latin-1")
    return _hpack_int(len(s), 7) + s


def hpack_block(fields):
    """Fields as literals without indexing, new names, no Huffman (RFC 7541 6.2.2)."""
    return b"".join(b"\x00" + _hpack_str(n) + _hpack_str(v) for n, v in fields)


# RFC 7541 Appendix B: the Huffman codes of the digits, which is all a :status needs
_HUFF_DIGITS = {"00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
                "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9"}
_STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def _status_of(block):
    """The :status of a response header block (nghttp2 puts it first). The client sets
    SETTINGS_HEADER_TABLE_SIZE to 0, so no field refers to the dynamic table; a block may
    start with the table size update that says so."""
    while block and block[0] & 0xe0 == 0x20:
        block = block[1:]
    b = block[0]
    if b & 0x80:
        return _STATIC_STATUS.get(b & 0x7f)
    # a literal with the name of static entry 8 (:status)
    if b & 0x40:
        idx = b & 0x3f
    else:
        idx = b & 0x0f
    if idx not in range(8, 15):
        return None
    ln = block[1] & 0x7f
    raw = block[2:2 + ln]
    if not block[1] & 0x80:
        return int(raw.decode())
    bits = "".join("{:08b}".format(x) for x in raw)
    out, cur = "", ""
    for bit in bits:
        cur += bit
        if cur in _HUFF_DIGITS:
            out += _HUFF_DIGITS[cur]
            cur = ""
        if len(out) == 3:
            break
    return int(out)


class H2Response:
    def __init__(self):
        self.status = None
        self.interim = []
        self.body = b""
        self.reset = None          # RST_STREAM error code
        self.ended = False
        self.frames = []


class H2:
    """A raw HTTP/2 client: the preface and a SETTINGS frame at once, then whatever the
    test writes. Reading answers PINGs and SETTINGS as a client must, and (auto_window)
    gives every DATA byte back with WINDOW_UPDATEs."""

    def __init__(self, port, tls=None, settings=None, preface=True, timeout=5,
                 auto_window=True):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            ctx = client_ctx(tls, alpn=["h2"])
            s = ctx.wrap_socket(s, server_hostname="a.example")
            self.alpn = s.selected_alpn_protocol()
        self.sock = s
        self.buf = b""
        self.next_id = 1
        self.auto_window = auto_window
        self.goaway = None
        self.eof = False
        self.responses = {}
        self.server_settings = None
        if preface:
            # no dynamic table: the status of each response is readable on its own
            st = {1: 0}
            st.update(settings or {})
            self.send(PREFACE + frame(SETTINGS, 0, 0, self.settings_payload(st)))

    @staticmethod
    def settings_payload(d):
        return b"".join(struct.pack(">HI", k, v) for k, v in d.items())

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self, deadline):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no HTTP/2 frame in time")
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no HTTP/2 frame in time")
            except (ConnectionResetError, ssl.SSLError, OSError):
                d = b""
            if not d:
                self.eof = True
                return False
            self.buf += d
            return True

    def read_frame(self, timeout=5.0):
        """(type, flags, stream, payload), or None at the end of the connection."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            if self.eof or not self._fill(deadline):
                return None
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
        payload = self.buf[9:9 + n]
        self.buf = self.buf[9 + n:]
        self._react(ftype, flags, sid, payload)
        return ftype, flags, sid, payload

    def _react(self, ftype, flags, sid, payload):
        if ftype == SETTINGS and not flags & ACK:
            self.server_settings = {struct.unpack(">H", payload[i:i + 2])[0]:
                                    struct.unpack(">I", payload[i + 2:i + 6])[0]
                                    for i in range(0, len(payload), 6)}
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            self.goaway = (int.from_bytes(payload[:4], "big") & 0x7fffffff,
                           int.from_bytes(payload[4:8], "big"))
        elif ftype in (HEADERS, DATA, RST_STREAM) and sid:
            r = self.responses.setdefault(sid, H2Response())
            r.frames.append((ftype, flags))
            if ftype == HEADERS:
                st = _status_of(payload)
                if st is not None and st < 200:
                    r.interim.append(st)
                elif st is not None:
                    r.status = st
            elif ftype == DATA:
                r.body += payload
                if self.auto_window and payload:
                    self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload)))
                              + frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(payload))))
            else:
                r.reset = int.from_bytes(payload[:4], "big")
                r.ended = True
            if flags & END_STREAM and ftype != RST_STREAM:
                r.ended = True

    def handshake(self, timeout=5.0):
        """Reads up to the server's SETTINGS (and ACKs it)."""
        deadline = time.monotonic() + timeout
        while self.server_settings is None:
            if self.read_frame(max(0.01, deadline - time.monotonic())) is None:
                raise ConnectionError("closed before the server's SETTINGS")
        return self.server_settings

    def request(self, path, method="GET", authority="a.example", scheme="http",
                headers=(), end_stream=True, sid=None):
        if sid is None:
            sid = self.next_id
            self.next_id += 2
        fields = [(":method", method), (":scheme", scheme), (":authority", authority),
                  (":path", path)] + list(headers)
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        self.send(frame(HEADERS, flags, sid, hpack_block(fields)))
        return sid

    def data(self, sid, data, end_stream=False):
        return self.send(frame(DATA, END_STREAM if end_stream else 0, sid, data))

    def response(self, sid, timeout=10.0):
        """Reads until stream sid ends (END_STREAM or RST_STREAM) or the connection does."""
        deadline = time.monotonic() + timeout
        while not (sid in self.responses and self.responses[sid].ended):
            if self.read_frame(max(0.01, deadline - time.monotonic())) is None:
                break
        return self.responses.get(sid, H2Response())

    def wait_goaway(self, timeout=10.0):
        """Reads until GOAWAY (then returns (last stream id, error code)) or the end."""
        deadline = time.monotonic() + timeout
        while self.goaway is None:
            if self.read_frame(max(0.01, deadline - time.monotonic())) is None:
                break
        return self.goaway

    def wait_closed(self, timeout=5.0):
        """True once the server closed the connection (frames before it are read)."""
        deadline = time.monotonic() + timeout
        try:
            while self.read_frame(max(0.01, deadline - time.monotonic())) is not None:
                pass
        except TimeoutError:
            return False
        return True


def h2_config(cert, routes=None, upstreams=None, workers=1, limits=PROXY_LIMITS, h2=None,
              extra="", alpn='[ "h2", "http/1.1" ]', listeners=()):
    """A TLS listener "main" on {port} (alpn h2 first) and a cleartext one "h2c" on
    {port2} with http2 = true; h2: {"max_resets": 10, ...} sets h2_* keys on both;
    listeners: more listener groups, as written."""
    keys = "".join(" h2_%s = %d;" % kv for kv in (h2 or {}).items())
    if routes is None:
        routes = ['{ path_prefix = "/"; return = { status = 200; body = "h2\\n"; }; }']
    ups = ""
    if upstreams:
        ups = "upstreams = (\n  %s\n);" % ",\n  ".join(upstreams)
    return """workers = %d;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
access_log = { path = "{tmp}/access.log"; format = "main"; enabled = true; flush_ms = 100; };
%s
listeners = (
  { name = "main"; address = "127.0.0.1:{port}"; %s%s },
  { name = "h2c"; address = "127.0.0.1:{port2}"; http2 = true;%s }%s
);
%s
routes = (
  %s
);
%s
""" % (workers, limits, tls_block([cert], alpn=alpn), keys, keys,
       "".join(",\n  " + l for l in listeners), ups,
       ",\n  ".join(routes), extra)
