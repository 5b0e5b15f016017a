"""Helpers for the filtering tests (t/http/filter_*.t): PROXY protocol headers to act as
any client address, the shared named counters (through the test binary's test_counters
route), and which worker holds a client connection.

    from filtertest import *
    p = Portico(conf, bin=TEST_BIN)
    r = as_client(p, "10.1.2.3", build_request("GET", "/", "a.example"))
    counters(p)["acl:office"]
"""

import os
import socket

from proxytest import *
from proxytest import __all__ as _px_all

__all__ = list(_px_all) + ["TEST_BIN", "proxy_v1", "as_client", "counters", "conn_worker",
                           "conn_workers", "wait_counter"]

TEST_BIN = os.environ.get("PORTICO_TEST_BIN") or os.path.join(srcdir(), "t", "portico-test")


def proxy_v1(src, dst=None):
    """A PROXY protocol v1 line for client address src (IPv4 or IPv6)."""
    if ":" in src:
        return ("PROXY TCP6 %s %s 40000 80\r\n" % (src, dst or "2001:db8::1")).encode()
    return ("PROXY TCP4 %s %s 40000 80\r\n" % (src, dst or "198.51.100.1")).encode()


def as_client(p, src, raw, port="port", timeout=5):
    """One request from client address src, through a listener with proxy_protocol =
    true: the response, or None when the connection was closed without one."""
    with p.connect(port) as c:
        c.send(proxy_v1(src) + raw)
        return c.try_read_response() if timeout is None else _read(c, timeout)


def _read(c, timeout):
    try:
        return c.read_response(timeout=timeout)
    except ConnectionClosed:
        return None


def counters(p, target="/_counters", port="port", host="a.example", src=None):
    """The shared named counters, {name: value}, read through a route with
    test_counters = true (test binary only)."""
    raw = build_request("GET", target, host)
    r = as_client(p, src, raw, port) if src else p.request(raw, port)
    out = {}
    for line in r.body.decode().splitlines():
        name, value = line.rsplit(" ", 1)
        out[name] = int(value)
    return out


def wait_counter(p, name, want, **kw):
    """Waits until counter name reaches want; its last value."""
    last = [None]

    def check():
        last[0] = counters(p, **kw).get(name)
        return last[0] == want
    wait_for(check, 5)
    return last[0]


def _tcp_inodes():
    """{(local port, remote port): inode} of the TCP sockets on 127.0.0.1."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    v = line.split()
                    lport = int(v[1].rsplit(":", 1)[1], 16)
                    rport = int(v[2].rsplit(":", 1)[1], 16)
                    out[(lport, rport)] = int(v[9])
        except OSError:
            pass
    return out


def _worker_sockets(p):
    """{socket inode: worker pid} for every socket a worker holds."""
    out = {}
    for w in p.worker_pids():
        d = "/proc/%d/fd" % w
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            try:
                t = os.readlink(os.path.join(d, name))
            except OSError:
                continue
            if t.startswith("socket:["):
                out[int(t[8:-1])] = w
    return out


def conn_workers(p, clients):
    """The worker process holding the server side of each Client's connection (None
    where it cannot be told), reading /proc once for the lot."""
    inodes, socks = _tcp_inodes(), _worker_sockets(p)
    out = []
    for c in clients:
        try:
            key = (c.sock.getpeername()[1], c.sock.getsockname()[1])
        except OSError:
            out.append(None)
            continue
        out.append(socks.get(inodes.get(key)))
    return out


def conn_worker(p, client):
    """The worker process that holds the server side of a Client's connection, or None."""
    return conn_workers(p, [client])[0]
