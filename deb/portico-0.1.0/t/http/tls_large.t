#!/usr/bin/env python3
# TLS streaming with back-pressure: a 1 GiB download and a 1 GiB upload over a TLS client
# connection pass through one worker whose RSS grows by less than a few MiB (the TLS
# transport holds a record's worth; nothing piles up), and every byte arrives in order.
# A client that pauses stops the origin. The data is made on the fly and checked at the
# far end.
import hashlib, os, socket, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")
watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 600)

GIB = 1 << 30
RSS_LIMIT_KB = 4096
PAUSE_LIMIT = 48 << 20

ca = CA()
site = ca.issue("site", sans=["a.example"])


def count_body(o, c):
    req = c.read_head()
    if req is None:
        return
    c.read_body(req, store_body=False)
    o.record(c, req)
    # one request per connection: say so, or a pooled connection would be reused after
    # this handler has closed it
    c.sendall(response_bytes(200, [], b"%d %s\n" % (req.body_len, req.body_sha256.encode()),
                             close=True))


down = Origin.large(GIB)
up = Origin(count_body, raw=True)
routes = ['{ path_prefix = "/down"; upstream = "down"; }', '{ path_prefix = "/up"; upstream = "up"; }']
p = Portico(tls_config([site], routes=routes,
                       upstreams=[upstream("down", [down.address]), upstream("up", [up.address])]))
w = the_worker(p)


class RssSampler:
    def __init__(self, pid):
        self.pid, self.max, self.stop_flag = pid, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_flag:
            self.max = max(self.max, rss_kb(self.pid) or 0)
            time.sleep(0.01)

    def stop(self):
        self.stop_flag = True
        self.t.join(2)
        return self.max


def rss_check(what, rss0, rss_max):
    if sanitized_build():
        # OpenSSL frees its record buffers between records (SSL_MODE_RELEASE_BUFFERS):
        # ASan's quarantine keeps every one of them
        skip("ASan's quarantine keeps freed memory (RSS %d -> %d KiB)" % (rss0, rss_max))
        return
    cmp_ok(rss_max - rss0, "<", RSS_LIMIT_KB, "1 GiB %s over TLS: worker RSS grew by %d KiB "
           "(from %d KiB)" % (what, rss_max - rss0, rss0))


def conn(timeout=30):
    c = tls_client(p.port(), ca, sni="a.example", timeout=timeout)
    return c, c.sock


def download(limit, pause_at=None):
    c, s = conn()
    s.sendall(build_request("GET", "/down/1g"))
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(65536)
        if not d:
            break
        head += d
    head, _, rest = head.partition(b"\r\n\r\n")
    h = hashlib.sha256(rest)
    n = len(rest)
    paused = None
    while n < limit:
        if pause_at is not None and paused is None and n >= pause_at:
            b0 = down.bytes_sent
            time.sleep(1.0)
            paused = down.bytes_sent - b0
        d = s.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.close()
    return head, n, h.hexdigest(), paused


def upload(size):
    block = hashlib.sha256(b"block").digest() * (1 << 15)      # 1 MiB
    h = hashlib.sha256()
    c, s = conn()
    s.sendall(build_request("POST", "/up/1g", headers=["Content-Length: %d" % size]))
    sent = 0
    while sent < size:
        s.sendall(block)
        h.update(block)
        sent += len(block)
    resp = c.read_response(timeout=30)
    c.close()
    return resp, h.hexdigest()


# warm-up: buffers, pools, TLS state allocated once
for i in range(3):
    download(8 << 20)
    resp, digest = upload(8 << 20)
down.wait_open(0, 5)
down.errors[:] = []

rss0 = rss_kb(w)
sampler = RssSampler(w)
t0 = time.monotonic()
head, n, digest, paused = download(GIB, pause_at=100 << 20)
took = time.monotonic() - t0
rss_max = sampler.stop()
like(head.decode("latin-1"), r"^HTTP/1\.1 200 OK\r\n(.*\r\n)*Content-Length: %d(\r\n|$)" % GIB,
     "1 GiB download over TLS: 200 with its Content-Length")
is_((n, digest), (GIB, pattern_sha256(GIB)), "1 GiB download over TLS: every byte, in order")
cmp_ok(paused, "<", PAUSE_LIMIT, "the client pauses 1 s: the origin could send only what buffers "
       "hold (%.1f MiB)" % ((paused or 0) / 1048576.0))
rss_check("download", rss0, rss_max)
diag("1 GiB TLS download: %.1f s, worker RSS %d KiB -> max %d KiB" % (took, rss0, rss_max))

rss0 = rss_kb(w)
sampler = RssSampler(w)
t0 = time.monotonic()
resp, digest = upload(GIB)
took = time.monotonic() - t0
rss_max = sampler.stop()
is_((resp.status, resp.body), (200, b"%d %s\n" % (GIB, digest.encode())),
    "1 GiB upload over TLS: the origin got every byte, in order")
rss_check("upload", rss0, rss_max)
diag("1 GiB TLS upload: %.1f s, worker RSS %d KiB -> max %d KiB" % (took, rss0, rss_max))

is_(down.errors + up.errors, [], "the origins saw only well-formed requests")
p.stop()
done_testing()
