#!/usr/bin/env python3
# Reverse proxying across reloads: three HUPs under continuous proxied requests fail none;
# a proxied request waiting on a slow origin and a 64 MiB download in progress when the
# reload comes both complete (every byte) from the old worker, which then exits; the new
# configuration (a response header naming its generation) answers within a second.
import hashlib, os, signal, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 120)

echo = Origin.echo()
slow = Origin.slow(1.5, body=b"slow\n")
BIG = 64 << 20
big = Origin.large(BIG)
LIMITS = PROXY_LIMITS.replace("drain_timeout_ms = 3000", "drain_timeout_ms = 20000")


def conf(gen):
    ups = [upstream("app", [echo.address]), upstream("slow", [slow.address]), upstream("big", [big.address])]
    hdr = '( { name = "X-Gen"; value = "%d"; } )' % gen
    routes = [proxy_route("slow", "/slow/", set_response_headers=hdr),
              proxy_route("big", "/big/", set_response_headers=hdr),
              proxy_route("app", "/", set_response_headers=hdr)]
    return proxy_config(ups, routes, workers=2, limits=LIMITS)


p = Portico(conf(1))
gen1 = p.wait_workers(2)
is_(p.get("/x").header("X-Gen"), "1", "generation 1 answers")

stop = False
lock = threading.Lock()
done, failures, gens_seen = [0], [], {}


def load():
    while not stop:
        try:
            with p.connect(timeout=10) as c:
                c.send(build_request("GET", "/load", headers=[("Connection", "close")]))
                r = c.read_response(timeout=10)
            with lock:
                if r.status != 200 or not r.body.startswith(b"GET /load HTTP/1.1\r\n"):
                    failures.append("status %s body %r" % (r.status, r.body[:40]))
                done[0] += 1
                gens_seen[r.header("X-Gen")] = gens_seen.get(r.header("X-Gen"), 0) + 1
        except Exception as e:      # noqa: BLE001
            with lock:
                failures.append("%s: %s" % (type(e).__name__, e))
        time.sleep(0.002)


threads = [threading.Thread(target=load, daemon=True) for _ in range(3)]
for t in threads:
    t.start()

# in flight when the reload comes: one waiting on a slow origin, one large download
slow_c = p.connect(timeout=10)
slow_c.send(build_request("GET", "/slow/1"))
ok(slow.wait_requests(1, 3) == 1, "a request is waiting on the slow origin")
big_c = p.connect(timeout=30, rcvbuf=65536)
big_c.send(build_request("GET", "/big/1"))
data = bytearray()
while len(data) < (1 << 20):
    data += big_c.sock.recv(65536)
diag("a 64 MiB download is under way (%d bytes read)" % len(data))

for gen in (2, 3, 4):
    p.write_config(conf(gen))
    t0 = time.monotonic()
    p.signal(signal.SIGHUP)
    seen = wait_for(lambda: p.get("/x").header("X-Gen") == str(gen), 10, 0.01)
    ok(seen, "HUP %d: the new configuration answers (after %.2f s)" % (gen - 1, time.monotonic() - t0))
    time.sleep(0.3)

r = slow_c.read_response(timeout=10)
is_((r.status, r.body, r.header("X-Gen")), (200, b"slow\n", "1"),
    "the request waiting on the slow origin completes, from generation 1")
slow_c.close()
body = read_raw_body(big_c.sock, BIG, data, timeout=60)
is_((len(body), hashlib.sha256(body).hexdigest()), (BIG, pattern_sha256(BIG)),
    "the 64 MiB download in progress completes across three reloads, every byte")
big_c.close()
ok(wait_for(lambda: not any(proc_alive(w) for w in gen1), 10), "generation 1's workers exit once they are done")

stop = True
for t in threads:
    t.join(15)
cmp_ok(done[0], ">", 0, "proxied requests during the reloads: %d (%r)" % (done[0], sorted(gens_seen.items(), key=str)))
is_(failures[:5], [], "none failed (%d failures)" % len(failures))
is_(len(p.worker_pids()), 2, "two workers at the end")
done_testing()
