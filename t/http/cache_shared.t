#!/usr/bin/env python3
# One cache for every worker: 100 concurrent misses for one key across 2 workers give
# exactly 1 origin request (collapsed); a worker SIGKILLed during many concurrent stores
# leaves the cache consistent (every later response's body checksum is the origin's);
# eviction keeps a stream of unique keys within the zone; the cache survives a restart
# with `path`, and a file of another size is discarded with a log line.
import hashlib, os, re, signal, sys, tempfile, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *
from cachetest import *
from origin import Origin, response_bytes, wants_close


def body_for(n, size):
    seed = hashlib.sha256(b"%d" % n).digest()
    return (seed * (size // len(seed) + 1))[:size]


# --- an origin that sends big bodies slowly, in pieces, chunked --------------------------
slow_counts = {}
slow_lock = threading.Lock()


def slow_handler(o, c, req):
    path = req.target.split("?")[0]
    with slow_lock:
        slow_counts[path] = slow_counts.get(path, 0) + 1
    n = int(path.rsplit("/", 1)[1])
    body = body_for(n, 200000)
    head = ("HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nTransfer-Encoding: chunked\r\n"
            "\r\n").encode()
    c.sendall(head)
    for i in range(0, len(body), 20000):
        piece = body[i:i + 20000]
        c.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        time.sleep(0.03)
    c.sendall(b"0\r\n\r\n")
    return not wants_close(req)


o = CountingOrigin()
o.set("/c/collapse", headers=[("Cache-Control", "max-age=300")], body=b"C" * 10000)
o.delay("/c/collapse", 0.5)
so = Origin(slow_handler)
tmpdir = tempfile.mkdtemp(prefix="portico-cache-")
os.chmod(tmpdir, 0o755)
CACHE_FILE = os.path.join(tmpdir, "cache.bin")
add_cleanup(lambda: [os.unlink(os.path.join(tmpdir, f)) for f in os.listdir(tmpdir)]
            and os.rmdir(tmpdir))


def conf(size_mb=16, path=None):
    main = "size_mb = %d;" % size_mb + (' path = "%s";' % path if path else "")
    return proxy_config(
        [upstream("app", [o.address]), upstream("slow", [so.address])],
        [proxy_route("slow", "/k/", cache="{ default_ttl_s = 0; }"),
         proxy_route("app", "/c/", cache="{ default_ttl_s = 0; }")],
        workers=2, extra="cache = { %s };" % main)


def parallel(n, fn):
    out = [None] * n
    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:          # a connection cut by the kill, for instance
            out[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


p = Portico(conf(path=CACHE_FILE))
p.wait_workers(2)

# --- collapsed misses ------------------------------------------------------------------
rs = parallel(100, lambda i: p.get("/c/collapse"))
ok(all(not isinstance(r, Exception) for r in rs), "100 concurrent requests answered")
good = [r for r in rs if not isinstance(r, Exception)]
is_(sum(1 for r in good if r.status == 200 and r.body == b"C" * 10000), 100,
    "every one got the origin's body")
is_(o.hits("/c/collapse"), 1, "the origin saw exactly 1 request for the 100 misses")
sts = [r.header("X-Cache-Status") for r in good]
is_(sts.count("MISS"), 1, "one MISS, the others served from it (%s)" %
    ",".join(sorted(set(sts))))

# --- a worker killed during concurrent stores ------------------------------------------
N = 40
def fetch_k(i):
    with p.connect() as c:
        c.send(build_request("GET", "/k/%d" % i, "a.example"))
        r = c.read_response(timeout=30)
        return r
results = {}
t = threading.Thread(target=lambda: results.update(enumerate(parallel(N, fetch_k))))
t.start()
ok(wait_for(lambda: sum(slow_counts.values()) >= N // 2, timeout=20),
   "stores under way (%d origin requests)" % sum(slow_counts.values()))
victim = p.worker_pids()[0]
os.kill(victim, signal.SIGKILL)
t.join(60)
cut = sum(1 for r in results.values() if isinstance(r, Exception) or r.status != 200)
diag("%d of %d responses cut by the kill" % (cut, N))
ok(p.wait_workers(2, exclude=(victim,)), "the master replaced the killed worker")
bad = []
hits = 0
for rnd in range(2):
    for i in range(N):
        r = p.get("/k/%d" % i)
        if r.status != 200 or sha(r.body) != sha(body_for(i, 200000)):
            bad.append((i, r.status, len(r.body), r.header("X-Cache-Status")))
        hits += r.header("X-Cache-Status") == "HIT"
is_(bad, [], "after the kill: every response's body checksum is the origin's")
cmp_ok(hits, ">=", N, "and the second round is served from the cache")
log = "\n".join(l for l in p.error_log().splitlines()
                if "killed by signal 9 (SIGKILL), respawning" not in l)
unlike(log, r"\[(alert|crit|emerg)\]", "no alert in the error log but the kill's")
like(p.error_log(), r"cache: freed an object worker %d was storing when it died" % victim,
     "the dead worker's unfinished objects were freed")

# --- eviction --------------------------------------------------------------------------
p.stop()
p = Portico(conf(size_mb=2))
p.wait_workers(2)
o.set("/c/e", headers=[("Cache-Control", "max-age=300")],
      body=lambda o, req: body_for(int(req.target.split("=")[1]), 16000))
mark = p.log_mark()
wrong = []
for i in range(400):                    # 6.4 MB through a 2 MiB zone
    r = p.get("/c/e?n=%d" % i)
    if r.status != 200 or r.body != body_for(i, 16000):
        wrong.append(i)
is_(wrong, [], "400 unique keys of 16000 bytes: every answer right")
ok(p.log_count(r"not stored: no room", start=mark) == 0, "every object found room (eviction)")
is_(p.get("/c/e?n=0").header("X-Cache-Status"), "MISS", "the oldest keys were evicted")
recent = [p.get("/c/e?n=%d" % i).header("X-Cache-Status") for i in range(395, 400)]
is_(recent, ["HIT"] * 5, "the most recent keys are kept")
p.stop()

# --- persistence ------------------------------------------------------------------------
is_(os.path.getsize(CACHE_FILE), 16 << 20, "the cache file is the zone's size")
before = o.hits("/c/collapse")
p = Portico(conf(path=CACHE_FILE))
p.wait_workers(2)
ok(p.wait_log(r'cache: loaded ".*cache\.bin": \d+ objects kept'), "the file was loaded")
r = p.get("/c/collapse")
is_((sha(r.body), r.header("X-Cache-Status")), (sha(b"C" * 10000), "HIT"),
    "after a restart: a hit from the file")
r = p.get("/k/3")
is_((sha(r.body), r.header("X-Cache-Status")), (sha(body_for(3, 200000)), "HIT"),
    "a big object too, with its checksum")
is_(o.hits("/c/collapse"), before, "the origin not asked")
unlike(p.logs_text(), r"died holding",
       "loading the file of a clean stop logs no repair (no process died holding a lock)")
p.stop()

# a file of another size: discarded
with open(CACHE_FILE, "r+b") as f:
    f.truncate(3 << 20)
p = Portico(conf(path=CACHE_FILE))
ok(p.wait_log(r'its file ".*cache\.bin" has 3145728 bytes, not 16777216: discarded'),
   "a file of another size is discarded, logged")
is_(p.get("/c/collapse").header("X-Cache-Status"), "MISS", "and the cache starts empty")
p.stop()

# a damaged file: its header overwritten
with open(CACHE_FILE, "r+b") as f:
    f.write(b"garbage!" * 8)
p = Portico(conf(path=CACHE_FILE))
ok(p.wait_log(r'cache: file ".*cache\.bin" discarded: .*; the cache starts empty'),
   "a file with a bad header is discarded, logged")
is_(p.get("/c/collapse").header("X-Cache-Status"), "MISS", "and never trusted")

done_testing()
