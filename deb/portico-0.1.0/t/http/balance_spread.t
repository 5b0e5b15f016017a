#!/usr/bin/env python3
# Balancing policies through 2 workers and many connections: round robin spreads evenly,
# weights hold and interleave smoothly, least_conn / least_time / random_two steer away
# from a slow server.
import collections, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

watchdog(240)

o = named_origins(3)
w = named_origins(3, prefix="w")
ADDR = [x.address for x in o]
conf = proxy_config(
    [upstream("rr", ADDR),
     upstream("wt", [(w[0].address, 1), (w[1].address, 2), (w[2].address, 3)])],
    [proxy_route("rr", "/rr/"), proxy_route("wt", "/wt/")], workers=2)
p = Portico(conf)
p.wait_workers(2)

N = 3000
got = load(p, N, conns=30, target="/rr/x")
is_(got.errors, [], "round robin: %d requests, no error" % N)
ok(spread_ok(got, {"s0": 1 / 3, "s1": 1 / 3, "s2": 1 / 3}, N),
   "round robin over 3 servers through 2 workers: each within 3 %% of a third (%r)" % dict(got))

got = load(p, N, conns=30, target="/wt/x")
is_(got.errors, [], "weights 1:2:3: no error")
ok(spread_ok(got, {"w0": 1 / 6, "w1": 2 / 6, "w2": 3 / 6}, N),
   "weights 1:2:3: within 3 %% of 1/6, 2/6, 3/6 (%r)" % dict(got))

# one connection: one worker's sequence of picks, in order
seq = load(p, 120, conns=1, target="/wt/x").seq[0]
is_(len(seq), 120, "120 sequential requests on one connection")
r = runs(seq)
ok(r.get("w0", 0) <= 1 and r.get("w1", 0) <= 1 and r.get("w2", 0) <= 2,
   "smooth: no run longer than the weights allow (w0 1, w1 1, w2 2; got %r)" % r)
windows = [collections.Counter(seq[i:i + 6]) for i in range(len(seq) - 5)]
ok(all(abs(c["w0"] - 1) <= 1 and abs(c["w1"] - 2) <= 1 and abs(c["w2"] - 3) <= 1 for c in windows),
   "every 6 consecutive picks hold each server its weight, +-1 (a burst would not)")
diag("one worker's picks: %s" % " ".join(seq[:12]))
p.stop()

# a slow server: least_conn, least_time and random_two steer away from it; round robin
# (the control) does not
slow = named_origin("slow", delay=0.15)
fast = named_origins(3, prefix="f")
SERVERS = [slow.address] + [x.address for x in fast]
conf = proxy_config(
    [upstream("rr", SERVERS), upstream("lc", SERVERS, balance="least_conn"),
     upstream("lt", SERVERS, balance="least_time"),
     upstream("r2", SERVERS, balance="random_two")],
    [proxy_route(n, "/%s/" % n) for n in ("rr", "lc", "lt", "r2")], workers=2)
p = Portico(conf)
p.wait_workers(2)
share = {}
for name in ("rr", "lc", "lt", "r2"):
    got = load(p, 400, conns=16, target="/%s/x" % name)
    is_(got.errors, [], "%s with a slow server: no error" % name)
    share[name] = got["slow"] / 400.0
    diag("%s: %r" % (name, dict(got)))
cmp_ok(share["rr"], ">=", 0.20, "round robin sends the slow server its quarter (%.2f)" % share["rr"])
cmp_ok(share["lc"], "<", 0.10, "least_conn steers away from the slow server (%.2f)" % share["lc"])
cmp_ok(share["lt"], "<", 0.05, "least_time steers away from the slow server (%.2f)" % share["lt"])
cmp_ok(share["r2"], "<", 0.15, "random_two steers away from the slow server (%.2f)" % share["r2"])
p.stop()

# least_conn with equal servers and no load: ties go round robin, not to the first
even = named_origins(3, prefix="e")
p = Portico(proxy_config(upstream("lc", [x.address for x in even], balance="least_conn"),
                         proxy_route("lc"), workers=1))
seq = load(p, 30, conns=1).seq[0]
is_(collections.Counter(seq), collections.Counter({"e0": 10, "e1": 10, "e2": 10}),
    "least_conn, one request at a time: ties broken round robin (%s)" % " ".join(seq[:9]))
p.stop()
done_testing()
