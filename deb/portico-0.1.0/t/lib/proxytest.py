"""Helpers for the reverse-proxy tests (t/http/proxy_*.t): configs with upstreams, the
worker's /proc numbers, response checks.

    from proxytest import *
    o = Origin.echo()
    p = Portico(proxy_config(upstream("app", [o.address], read_timeout_ms=500),
                             proxy_route("app")))
    r = p.get("/")
"""

import hashlib
import os
import re
import socket
import threading
import time

from portico_test import *
from portico_test import __all__ as _pt_all
from origin import Origin, OriginRequest, response_bytes, pattern_sha256, wants_close

__all__ = list(_pt_all) + ["read_raw_body", "timed_get",
    "Origin", "OriginRequest", "response_bytes", "pattern_sha256", "wants_close",
    "PROXY_LIMITS", "upstream", "proxy_route", "proxy_config", "the_worker", "worker_fds",
    "wait_fds", "conn_tokens", "headers_of", "request_fields", "blackhole", "origin_head",
    "HOP_FREE", "sha256", "MAIN_LOG_RE", "refusing_port", "sanitized_build", "stable_fds",
    "access_line", "GENERATED_ID",
]

# Generous client timeouts (a loaded machine), unlimited bodies (streaming tests).
PROXY_LIMITS = ("limits = { client_header_timeout_ms = 5000; client_body_timeout_ms = 5000; "
                "keepalive_timeout_ms = 10000; max_header_size = 8192; max_body_size = 0; "
                "send_timeout_ms = 10000; drain_timeout_ms = 3000; };")

# What the access log "main" format adds after the combined fields:
# request time, upstream address, upstream time, cache status.
MAIN_LOG_RE = r"(\d+\.\d{3}) (\S+) (\d+\.\d{3}|-) (\S+)$"


def upstream(name, servers, **opts):
    """One upstream group. servers: ["127.0.0.1:1234", ("127.0.0.1:99", 3),
    {"address": "127.0.0.1:98", "backup": True}, ...]. Option strings are quoted unless
    they start with '(', '[' or '{'."""
    sv = []
    for s in servers:
        if isinstance(s, tuple):
            sv.append('{ address = "%s"; weight = %d; }' % s)
        elif isinstance(s, dict):
            sv.append("{ " + " ".join("%s = %s;" % (k, _val(v)) for k, v in s.items()) + " }")
        else:
            sv.append('{ address = "%s"; }' % s)
    extra = "".join(" %s = %s;" % (k, v if isinstance(v, str) and v[:1] in "([{" else _val(v))
                    for k, v in opts.items())
    return '{ name = "%s"; servers = ( %s );%s }' % (name, ", ".join(sv), extra)


def _val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and v[:1] in "([{":
        return v                        # a group, list or array, as written
    if isinstance(v, str):
        return '"%s"' % v
    return str(v)


def proxy_route(up, path_prefix="/", **opts):
    """A route proxying to upstream `up`. Options go in as written (strings are quoted
    unless they start with '(' or '[')."""
    parts = ['path_prefix = "%s";' % path_prefix, 'upstream = "%s";' % up]
    for k, v in opts.items():
        if isinstance(v, str) and v[:1] in "([{":
            parts.append("%s = %s;" % (k, v))
        else:
            parts.append("%s = %s;" % (k, _val(v)))
    return "{ " + " ".join(parts) + " }"


def proxy_config(upstreams, routes, workers=1, limits=PROXY_LIMITS, extra="",
                 access_log='access_log = { path = "{tmp}/access.log"; format = "main"; '
                            'enabled = true; flush_ms = 100; };'):
    """A config with one listener {port} (named "main"), the given upstream groups and
    routes (strings or lists of strings)."""
    if isinstance(upstreams, str):
        upstreams = [upstreams]
    if isinstance(routes, str):
        routes = [routes]
    return """workers = %d;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
%s
%s
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
upstreams = (
  %s
);
routes = (
  %s
);
%s
""" % (workers, access_log, limits, ",\n  ".join(upstreams), ",\n  ".join(routes), extra)


def the_worker(p):
    """The pid of the single worker (workers = 1)."""
    w = p.wait_workers(1)
    if len(w) != 1:
        raise PorticoError("expected one worker, have %r" % (w,))
    return w[0]


def worker_fds(pid):
    """The worker's open descriptors as {fd: target}."""
    out = {}
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except OSError:
            pass
    return out


def wait_fds(pid, n, timeout=5.0):
    """Wait until the worker has exactly n descriptors open; returns the last count."""
    return wait_for(lambda: fd_count(pid) == n and n, timeout, 0.02) or fd_count(pid)


def stable_fds(pid, quiet=0.5, timeout=6.0):
    """The worker's descriptor count once it has not changed for `quiet` seconds
    (connections of earlier tests lingering or closing have gone)."""
    deadline = time.monotonic() + timeout
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def access_line(p, request_re, timeout=3.0):
    """The last access-log line whose request matches request_re ("GET /x HTTP/1.1" part,
    a regex), waiting for it to be flushed; "" if none comes."""
    rx = re.compile(r'"%s"' % request_re)

    def find():
        for line in reversed(p.access_log_lines()):
            if rx.search(line):
                return line
        return None
    return wait_for(find, timeout, 0.05) or ""


def conn_tokens(r):
    return [t.strip().lower() for t in (r.header("Connection") or "").split(",") if t.strip()]


GENERATED_ID = "<generated>"


def headers_of(req):
    """An OriginRequest's fields as a sorted list of (lower-case name, value): comparing
    it with an expected list checks every field and nothing else, in any order. An
    X-Request-Id that portico generated (32 hex digits) reads as GENERATED_ID."""
    return sorted((n.lower(), GENERATED_ID if n.lower() == "x-request-id"
                   and re.match(r"^[0-9a-f]{32}$", v) else v) for n, v in req.headers)


def request_fields(extra=(), host="a.example", ip="127.0.0.1", xff=None, fwd_host=None,
                   connection=None, request_id=GENERATED_ID):
    """What an origin should receive for a plain request: Host, X-Forwarded-*, X-Real-IP,
    the X-Request-Id portico generated (request_id=None: none), plus extra
    [(name, value)]; sorted like headers_of."""
    f = [("host", host), ("x-forwarded-for", xff or ip), ("x-real-ip", ip),
         ("x-forwarded-proto", "http")]
    if request_id:
        f.append(("x-request-id", request_id))
    fh = host if fwd_host is None else fwd_host
    if fh:
        f.append(("x-forwarded-host", fh))
    if connection:
        f.append(("connection", connection))
    f += [(n.lower(), v) for n, v in extra]
    return sorted(f)


HOP_FREE = None


def origin_head(req):
    """The request line the origin received."""
    return "%s %s %s" % (req.method, req.target, req.version)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sanitized_build():
    """Is the portico binary built with AddressSanitizer? (Its quarantine keeps freed
    memory, so RSS says nothing about leaks there; LeakSanitizer does at exit.)"""
    try:
        with open(portico_bin(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


_held = []


def refusing_port():
    """A loopback port that refuses connections for the rest of the script: bound (so no
    one else gets it, unlike closed_port()) but not listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


class blackhole:
    """A listening socket whose accept queue is full: connecting to it neither succeeds
    nor fails (the SYN is dropped), so a connect times out. .address, .works (False if this
    kernel completes or refuses such connects anyway), close()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.fillers = []
        # Fill the queue (backlog 0 admits one or two): connects until one hangs.
        self.works = False
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
            import select
            _, w, _ = select.select([], [s], [], 0.3)
            if not w:
                self.works = True       # this one hangs: the queue is full
                break
        add_cleanup(self.close)

    def close(self):
        for s in self.fillers:
            s.close()
        self.fillers = []
        try:
            self.sock.close()
        except OSError:
            pass


def read_raw_body(sock, size, data=b"", piece=1 << 20, pause=0.0, timeout=20.0):
    """Reads one response off a raw socket (data: what was read of it already) until its
    body has `size` bytes, EOF or timeout; returns the body bytes (the head dropped).
    piece and pause: how much a recv takes and how long to wait between (a slow reader)."""
    data = bytearray(data)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0 and len(data) - head_end - 4 >= size:
            break
        try:
            d = sock.recv(piece)
        except OSError:
            break
        if not d:
            break
        data += d
        if pause:
            time.sleep(pause)
    head_end = data.find(b"\r\n\r\n")
    return bytes(data[head_end + 4:]) if head_end >= 0 else b""


def timed_get(p, target):
    """p.get(target) and the seconds it took: (response, seconds)."""
    t0 = time.monotonic()
    r = p.get(target)
    return r, time.monotonic() - t0
