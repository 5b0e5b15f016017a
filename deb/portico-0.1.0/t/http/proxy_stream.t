#!/usr/bin/env python3
# Reverse proxying, streaming with back-pressure: a 1 GiB download and a 1 GiB upload pass
# through one worker whose RSS grows by less than a few MiB; a side that stops reading
# stops the other side (the origin stalls while the client pauses, the client stalls while
# the origin does not read). The data is generated on the fly and checked at the far end.
import hashlib, os, socket, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 900)

GIB = 1 << 30
RSS_LIMIT_KB = 4096          # "less than a few MiB"
PAUSE_LIMIT = 48 << 20       # what socket buffers on both sides may hold while one side waits


def lazy_reader(o, c):
    """Reads the request head, waits 1 s (the client keeps sending), then the body."""
    req = c.read_head()
    if req is None:
        return
    o.pause_started = time.monotonic()
    time.sleep(1.0)
    c.read_body(req, store_body=False)
    o.record(c, req)
    c.sendall(response_bytes(200, [], b"%d %s\n" % (req.body_len, req.body_sha256.encode())))


down = Origin.large(GIB)
up = Origin(lazy_reader, raw=True)
up.pause_started = None
warm = Origin.echo(store_body=False)
p = Portico(proxy_config([upstream("down", [down.address]), upstream("up", [up.address]),
                          upstream("warm", [warm.address])],
                         [proxy_route("down", "/down"), proxy_route("up", "/up"),
                          proxy_route("warm", "/")]))
w = the_worker(p)


class RssSampler:
    def __init__(self, pid):
        self.pid, self.max, self.stop_flag = pid, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_flag:
            v = rss_kb(self.pid) or 0
            self.max = max(self.max, v)
            time.sleep(0.01)

    def stop(self):
        self.stop_flag = True
        self.t.join(2)
        return self.max


# Warm up: every buffer and pool the streaming path uses is allocated once.
warm_st = []
for i in range(3):
    warm_st.append(p.get("/warm/%d" % i, method="POST", body=b"w" * (4 << 20), timeout=20).status)
    with p.connect() as c:
        c.send(build_request("GET", "/down/warm"))
        c.sock.settimeout(10)
        n = 0
        while n < 8 << 20:
            d = c.sock.recv(1 << 20)
            if not d:
                break
            n += len(d)
down.wait_open(0, 5)
down.errors[:] = []                     # the partial downloads' resets
is_(warm_st, [200] * 3, "warm-up: three 4 MiB uploads, three partial downloads")


# --- 1 GiB download ------------------------------------------------------------------------------------
def download():
    c = p.connect(timeout=20)
    s = c.sock
    s.sendall(build_request("GET", "/down/1g"))
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    head, _, rest = head.partition(b"\r\n\r\n")
    h = hashlib.sha256(rest)
    n = len(rest)
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    paused = None
    while n < GIB:
        if paused is None and n >= 100 << 20:
            # stop reading for 1 s: the origin must stall too
            b0 = down.bytes_sent
            time.sleep(1.0)
            paused = down.bytes_sent - b0
        k = s.recv_into(mv)
        if k == 0:
            break
        h.update(mv[:k])
        n += k
    c.close()
    return head, n, h.hexdigest(), paused


rss0 = rss_kb(w)
sampler = RssSampler(w)
t0 = time.monotonic()
head, n, digest, paused = download()
took = time.monotonic() - t0
rss_max = sampler.stop()
like(head.decode("latin-1"), r"^HTTP/1\.1 200 OK\r\n(.*\r\n)*Content-Length: %d(\r\n|$)" % GIB,
     "1 GiB download: 200 with its Content-Length")
is_((n, digest), (GIB, pattern_sha256(GIB)), "1 GiB download: every byte, in order")
cmp_ok(paused, "<", PAUSE_LIMIT, "client pauses 1 s: the origin could send only what buffers hold (%.1f MiB)"
       % ((paused or 0) / 1048576.0))
cmp_ok(rss_max - rss0, "<", RSS_LIMIT_KB, "1 GiB download: worker RSS grew by %d KiB (from %d KiB)"
       % (rss_max - rss0, rss0))
diag("1 GiB download: %.1f s, worker RSS %d KiB -> max %d KiB (+%d KiB)" % (took, rss0, rss_max, rss_max - rss0))


# --- 1 GiB upload ------------------------------------------------------------------------------------------
def upload():
    block = hashlib.sha256(b"block").digest() * (1 << 15)      # 1 MiB
    h = hashlib.sha256()
    c = p.connect(timeout=30)
    s = c.sock
    s.sendall(build_request("POST", "/up/1g", headers=["Content-Length: %d" % GIB]))
    sent = 0
    stalled = None
    start = time.monotonic()
    while sent < GIB:
        s.sendall(block)
        h.update(block)
        sent += len(block)
        if stalled is None and up.pause_started and time.monotonic() - up.pause_started > 0.9:
            stalled = sent                  # what got through while the origin read nothing
    resp = c.read_response()
    c.close()
    return resp, h.hexdigest(), stalled


rss0 = rss_kb(w)
sampler = RssSampler(w)
t0 = time.monotonic()
resp, digest, stalled = upload()
took = time.monotonic() - t0
rss_max = sampler.stop()
is_((resp.status, resp.body), (200, b"%d %s\n" % (GIB, digest.encode())),
    "1 GiB upload: the origin got every byte, in order")
ok(stalled is not None and stalled < PAUSE_LIMIT,
   "the origin reads nothing for 1 s: the client could send only what buffers hold (%s)"
   % ("%.1f MiB" % (stalled / 1048576.0) if stalled is not None else "no sample"))
cmp_ok(rss_max - rss0, "<", RSS_LIMIT_KB, "1 GiB upload: worker RSS grew by %d KiB (from %d KiB)"
       % (rss_max - rss0, rss0))
diag("1 GiB upload: %.1f s, worker RSS %d KiB -> max %d KiB (+%d KiB)" % (took, rss0, rss_max, rss_max - rss0))

is_(down.errors + up.errors, [], "the origins saw only well-formed requests")
done_testing()
