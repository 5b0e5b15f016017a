"""Cache tests: an origin whose answers are set per path and that counts its hits, and a
portico config with the shared cache.

    o = CountingOrigin()
    o.set("/a", headers=[("Cache-Control", "max-age=60")], body=b"A")
    p = Portico(cache_config(o, route_cache="default_ttl_s = 0;"))
    r = p.get("/a")           # r.header("X-Cache-Status") == "MISS"
    o.hits("/a")              # requests the origin got for /a (any query)

An answer may be a callable (origin, req) -> (status, headers, body). Answers with an
ETag or Last-Modified honour If-None-Match / If-Modified-Since with a 304 (counted in
o.revalidations(path)). o.down(path) makes a path answer 503; o.delay(path, s) delays it.
"""

import hashlib
import threading
import time

from origin import Origin, response_bytes, wants_close
from proxytest import proxy_config, proxy_route, upstream


class CountingOrigin:
    def __init__(self, **kw):
        self.lock = threading.Lock()
        self.answers = {}
        self.counts = {}
        self.reval = {}
        self.delays = {}
        self.chunked = {}
        self.origin = Origin(self._handle, **kw)
        self.address = self.origin.address
        self.port = self.origin.port

    def set(self, path, status=200, headers=(), body=b"ok\n", chunked=False):
        with self.lock:
            self.answers[path] = (status, list(headers), body)
            self.chunked[path] = chunked

    def delay(self, path, seconds):
        with self.lock:
            self.delays[path] = seconds

    def hits(self, path):
        with self.lock:
            return self.counts.get(path, 0)

    def revalidations(self, path):
        with self.lock:
            return self.reval.get(path, 0)

    def requests_for(self, path):
        return [q for q in self.origin.received if q.target.split("?")[0] == path]

    def wait_hits(self, path, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.hits(path) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.hits(path)

    def _answer(self, path, req):
        with self.lock:
            a = self.answers.get(path)
        if a is None:
            return 404, [("Content-Type", "text/plain")], b"no such path\n"
        if callable(a[2]):
            return a[0], a[1], a[2](self, req)
        return a

    def _handle(self, o, c, req):
        path = req.target.split("?")[0]
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            d = self.delays.get(path, 0)
        if d:
            time.sleep(d)
        status, headers, body = self._answer(path, req)
        names = {h[0].lower(): h[1] for h in headers}
        inm, ims = req.header("If-None-Match"), req.header("If-Modified-Since")
        if status == 200 and ((inm and "etag" in names and names["etag"] in
                               [t.strip() for t in inm.split(",")])
                              or (not inm and ims and "last-modified" in names
                                  and ims == names["last-modified"])):
            with self.lock:
                self.reval[path] = self.reval.get(path, 0) + 1
            keep = [h for h in headers if not h[0].lower().startswith("content-")]
            c.sendall(response_bytes(304, keep, b"", close=wants_close(req)))
            return True
        with self.lock:
            chunked = self.chunked.get(path, False)
        resp = response_bytes(status, headers, body, close=wants_close(req), chunked=chunked)
        if req.method == "HEAD":
            resp = resp[:resp.index(b"\r\n\r\n") + 4]
        c.sendall(resp)
        return True

    def stop(self):
        self.origin.stop()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def cache_config(o, route_cache="default_ttl_s = 60;", main_cache="size_mb = 8;",
                 workers=1, extra_routes=(), extra=""):
    """One upstream "app" (the origin), a cached route on /c/ and an uncached one on /."""
    return proxy_config(
        [upstream("app", [o.address])],
        list(extra_routes) + [proxy_route("app", "/c/", cache="{ %s }" % route_cache),
                              proxy_route("app", "/")],
        workers=workers, extra="cache = { %s };\n%s" % (main_cache, extra))
