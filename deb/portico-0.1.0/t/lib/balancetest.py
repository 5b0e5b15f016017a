"""Helpers for the balancing and health tests (t/http/balance_*.t): origins that say who
they are, load spread over many keep-alive connections (so both workers serve it), and
counts of who answered.

    from balancetest import *
    o = named_origins(3)                     # bodies b"s0", b"s1", b"s2"
    p = Portico(proxy_config(upstream("app", [x.address for x in o]), proxy_route("app"),
                             workers=2))
    got = load(p, 3000, conns=30)            # Counter({"s0": 1000, ...}), errors in got.errors
"""

import collections
import re
import threading
import time

from proxytest import *
from proxytest import __all__ as _px_all

__all__ = list(_px_all) + ["named_origins", "named_origin", "load", "Load", "LoadResult",
                           "runs", "proxy_v1", "state_line", "spread_ok"]


def named_origin(name, delay=0.0, status=200, **kw):
    """An origin answering every request with its name as the body (X-Server too), after
    `delay` seconds, with .status. Requests for /health* are health probes: answered with
    .health (status), .health_body after .health_delay seconds, their arrival times kept
    in .probe_times. All of these can be changed while it runs."""
    def h(o, c, req):
        if req.target.startswith("/health"):
            with o.lock:
                o.probe_times.append(time.monotonic())
            if o.health_delay:
                time.sleep(o.health_delay)
            c.sendall(response_bytes(o.health, [], o.health_body, close=wants_close(req)))
            return True
        with o.lock:
            o.inflight += 1
            o.max_inflight = max(o.max_inflight, o.inflight)
        try:
            if o.delay:
                time.sleep(o.delay)
            st = o.status
            body = name.encode()
            c.sendall(response_bytes(st, [("X-Server", name)], body, close=wants_close(req)))
        finally:
            with o.lock:
                o.inflight -= 1
        return True
    o = Origin(h, name=name, **kw)
    o.delay = delay
    o.status = status
    o.health, o.health_body, o.health_delay = 200, b"healthy\n", 0.0
    o.probe_times = []
    o.inflight = o.max_inflight = 0     # requests being answered, and the most at once
    return o


def named_origins(n, prefix="s", **kw):
    return [named_origin("%s%d" % (prefix, i), **kw) for i in range(n)]


class LoadResult(collections.Counter):
    """Answers by body (server name), plus .errors (status or exception text per failed
    request) and .seq (per connection: the bodies in order)."""
    def __init__(self):
        super().__init__()
        self.errors = []
        self.seq = []
        self.by_key = {}        # target (or (target, headers)) -> set of servers
        self.statuses = collections.Counter()


def load(p, n, conns=20, target="/", targets=None, headers=(), host="a.example",
         timeout=10, prefix=None, port="port"):
    """n GET requests over `conns` keep-alive connections in parallel threads. targets:
    a function i -> target (else `target`); prefix: a function connection index -> raw
    bytes sent first on each connection (a PROXY protocol header)."""
    res = LoadResult()
    lock = threading.Lock()
    counter = iter(range(n))

    def worker(ci):
        seq = []
        c = None
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            try:
                if c is None:
                    c = p.connect(port, timeout=timeout)
                    if prefix:
                        c.send(prefix(ci))
                t = targets(i) if targets else target
                hd = headers(i) if callable(headers) else headers
                r = c.request("GET", t, host=host, headers=hd)
                with lock:
                    res.statuses[r.status] += 1
                    if r.status == 200:
                        res[r.body.decode()] += 1
                        seq.append(r.body.decode())
                        res.by_key.setdefault(t if not callable(headers) else (t, tuple(hd)),
                                              set()).add(r.body.decode())
                    else:
                        res.errors.append("%s: %d %r" % (t, r.status, r.body[:80]))
                if (r.header("Connection") or "").lower() == "close":
                    c.sock.close()
                    c = None
            except Exception as e:                  # noqa: BLE001 - reported as an error
                with lock:
                    res.errors.append("%s: %s" % (type(e).__name__, e))
                try:
                    if c:
                        c.sock.close()
                except OSError:
                    pass
                c = None
        if c:
            c.sock.close()
        with lock:
            res.seq.append(seq)

    threads = [threading.Thread(target=worker, args=(ci,), daemon=True) for ci in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 10)
    return res


class Load:
    """Continuous GET load in the background until stop(): .result as load() gives."""
    def __init__(self, p, conns=8, target="/", pause=0.0):
        self.p, self.stopping, self.result = p, False, LoadResult()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(target, pause), daemon=True)
                        for _ in range(conns)]
        for t in self.threads:
            t.start()

    def _run(self, target, pause):
        c = None
        while not self.stopping:
            try:
                if c is None:
                    c = self.p.connect(timeout=10)
                r = c.request("GET", target)
                with self.lock:
                    self.result.statuses[r.status] += 1
                    if r.status == 200:
                        self.result[r.body.decode()] += 1
                    else:
                        self.result.errors.append("%d %r" % (r.status, r.body[:80]))
                if (r.header("Connection") or "").lower() == "close":
                    c.sock.close()
                    c = None
            except Exception as e:                  # noqa: BLE001
                with self.lock:
                    self.result.errors.append("%s: %s" % (type(e).__name__, e))
                c = None
            if pause:
                time.sleep(pause)
        if c:
            c.sock.close()

    def total(self):
        with self.lock:
            return sum(self.result.statuses.values())

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.result)

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(15)
        return self.result


def runs(seq):
    """The longest run of each name in a sequence: {"s0": 2, ...}."""
    best = {}
    prev, n = None, 0
    for x in seq:
        n = n + 1 if x == prev else 1
        prev = x
        best[x] = max(best.get(x, 0), n)
    return best


def spread_ok(counts, shares, total, tol=0.03):
    """Is every name's share of total within tol (absolute) of what shares says?"""
    return all(abs(counts.get(k, 0) / total - v) <= tol for k, v in shares.items())


def proxy_v1(src, dst="127.0.0.1", sport=40000, dport=80):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst if fam == "TCP4" else "::1",
                                          sport, dport)).encode()


def state_line(group, address, old, new):
    """The error-log line of a server's state transition (a regex)."""
    return (r'upstream "%s" server %s: %s -> %s \(' % (group, re.escape(address), old, new))
