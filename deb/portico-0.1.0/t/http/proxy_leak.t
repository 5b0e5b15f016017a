#!/usr/bin/env python3
# Reverse proxying, no leak: 10,000 mixed requests from four clients at once (small GETs,
# HEADs, Content-Length and chunked uploads, chunked and close-delimited responses, 502s
# from a refusing server and a malformed origin, 504s, origins closing after each
# response, clients hanging up mid-response and before it) leave the worker with exactly
# the descriptors it had, and its memory where it was after the first 2,000.
import os, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 300)

TOTAL, THREADS, WARM = 10000, 4, 2000

echo = Origin.echo()
chunky = Origin.chunked(chunks=[b"c" * 100, b"d" * 1000])
closer = Origin.close_delimited(body=b"z" * 3000)
bad = Origin.malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", close=False)
silent = Origin.silent()
big = Origin.large(4 << 20)
once = Origin.fixed(body=b"once\n", keepalive=False)
refused = refusing_port()

def U(name, addrs, **kw):
    return upstream(name, addrs, idle_timeout_ms=500, **kw)


ups = [U("echo", [echo.address]), U("chunky", [chunky.address]), U("closer", [closer.address]),
       U("bad", [bad.address]), U("dead", ["127.0.0.1:%d" % refused]),
       U("silent", [silent.address], read_timeout_ms=50), U("big", [big.address]),
       U("once", [once.address])]
routes = [proxy_route(n, "/%s/" % n) for n in ("chunky", "closer", "bad", "dead", "silent", "big", "once")]
routes.append('{ path_prefix = "/ret/"; return = { status = 200; body = "ret\\n"; }; }')
routes.append(proxy_route("echo", "/"))
p = Portico(proxy_config(ups, routes))
w = the_worker(p)
BASE_FDS = fd_count(w)
BODY = bytes(range(256)) * 8


def expect(i):
    """What request i is, and the status it must get."""
    if i % 500 == 499:
        return "silent", 504
    return MIX[i % len(MIX)]


MIX = [("get", 200)] * 6 + [("head", 200), ("post", 200), ("post", 200), ("chunked", 200),
                            ("chunky", 200), ("closer", 200), ("bad", 502), ("dead", 502),
                            ("once", 200), ("ret", 200), ("hangup-mid", None),
                            ("hangup-wait", None), ("get10", 200), ("pipelined", 200)]


def run(i, c):
    """Does request i on c (or a new connection); returns (status or None, connection)."""
    kind, _ = expect(i)
    if c is None:
        c = p.connect(timeout=10)
    if kind == "get":
        r = c.request("GET", "/g/%d" % i)
        ok_ = r.body.startswith(b"GET /g/%d HTTP/1.1\r\n" % i)
    elif kind == "head":
        r = c.request("HEAD", "/h/%d" % i)
        ok_ = r.body == b""
    elif kind == "post":
        r = c.request("POST", "/p/%d" % i, body=BODY)
        ok_ = r.body.endswith(b"\r\n\r\n" + BODY)
    elif kind == "chunked":
        r = c.request("POST", "/c/%d" % i, headers=["Transfer-Encoding: chunked"],
                      body=chunked(BODY[:100], BODY[100:]))
        ok_ = r.body.endswith(b"\r\n\r\n" + BODY)
    elif kind == "chunky":
        r = c.request("GET", "/chunky/%d" % i)
        ok_ = r.body == b"c" * 100 + b"d" * 1000
    elif kind == "closer":
        r = c.request("GET", "/closer/%d" % i)
        ok_ = r.body == b"z" * 3000
    elif kind in ("bad", "dead", "silent"):
        r = c.request("GET", "/%s/%d" % (kind, i))
        ok_ = r.body == error_body(r.status) if r.status in (502, 504) else False
    elif kind == "once":
        r = c.request("GET", "/once/%d" % i)
        ok_ = r.body == b"once\n"
    elif kind == "ret":
        r = c.request("GET", "/ret/%d" % i)
        ok_ = r.body == b"ret\n"
    elif kind == "get10":
        r = c.request("GET", "/ten/%d" % i, version="HTTP/1.0")
        c.close()
        return (r.status if r.body.startswith(b"GET /ten/") else "bad body"), None
    elif kind == "pipelined":
        c.send(build_request("GET", "/pa/%d" % i) + build_request("GET", "/pb/%d" % i))
        r1, r = c.read_response(), c.read_response()
        ok_ = r1.status == 200 and r.body.startswith(b"GET /pb/%d " % i)
    elif kind == "hangup-mid":
        c.send(build_request("GET", "/big/%d" % i))
        c.read_available(0.002)
        c.close()
        return None, None
    elif kind == "hangup-wait":
        c.send(build_request("GET", "/silent/%d" % i))
        c.close()
        return None, None
    if "close" in conn_tokens(r) or r._closed_after:
        c.close()
        c = None
    return (r.status if ok_ else "bad body %r" % r.body[:60]), c


def client(start, step, upto, out):
    c = None
    for i in range(start, upto, step):
        try:
            st, c = run(i, c)
        except Exception as e:
            st = "%s: %s" % (type(e).__name__, str(e)[:100])
            if c is not None:
                c.close()
            c = None
        out.append((i, st))
    if c is not None:
        c.close()


def batch(lo, hi):
    outs = [[] for _ in range(THREADS)]
    ts = [threading.Thread(target=client, args=(lo + k, THREADS, hi, outs[k])) for k in range(THREADS)]
    [t.start() for t in ts]
    [t.join(240) for t in ts]
    return [x for o in outs for x in o]


t0 = time.monotonic()
res = batch(0, WARM)
time.sleep(0.7)                         # the pool's idle timeout: back to the bare worker
rss_warm = rss_kb(w)
res += batch(WARM, TOTAL)
took = time.monotonic() - t0
is_(len(res), TOTAL, "10,000 requests made")
wrong = [(i, st, expect(i)) for i, st in res if st != expect(i)[1]]
is_(wrong[:10], [], "every request got its expected status and body (%d wrong)" % len(wrong))
counts = {}
for i, st in res:
    counts[st] = counts.get(st, 0) + 1
diag("10,000 mixed requests in %.1f s: %r" % (took, sorted(counts.items(), key=str)))

# Every client connection is closed; origin connections are pooled at most 500 ms.
fds = wait_fds(w, BASE_FDS, 10)
is_(fds, BASE_FDS, "after 10,000 mixed requests the worker has the descriptors it started with (%d)" % BASE_FDS)
if fds != BASE_FDS:
    diag("open: %r" % worker_fds(w))
pipes = pipe_count(w)
ok(pipes <= 32 and pipes % 2 == 0,
   "spliced bodies: at most the 16 cached pipe pairs stay open (%d descriptors)" % pipes)
is_([o.wait_open(0, 5) for o in (echo, chunky, closer, bad, silent, big, once)], [0] * 7,
    "no origin connection is left open")
rss_end = rss_kb(w)
if sanitized_build():
    skip("ASan's quarantine keeps freed memory (RSS %d -> %d KiB); LeakSanitizer checks at exit"
         % (rss_warm, rss_end))
else:
    cmp_ok(rss_end - rss_warm, "<", 1024, "RSS after 10,000 is within 1 MiB of RSS after 2,000 (%d -> %d KiB)"
           % (rss_warm, rss_end))
is_(echo.errors, [], "the echo origin saw only well-formed requests")
r = p.get("/after")
is_(r.status, 200, "the worker still answers")
done_testing()
