#!/usr/bin/env python3
# Per-server limits and roles: backup servers only when every primary is down, max_conns
# across workers (elsewhere first, then a short wait, then 503), slow start ramps a server
# back in.
import os, re, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

watchdog(240)

FAST = '{ type = "http"; path = "/health"; interval_ms = 300; timeout_ms = 300; fall = 2; rise = 1; }'
prim = named_origins(2, prefix="p")
bk = named_origin("b0")
m = named_origins(2, prefix="m")
one = named_origin("one")
solo = named_origin("solo")
ss = named_origins(2, prefix="ss")
conf = proxy_config(
    [upstream("bk", [prim[0].address, prim[1].address, {"address": bk.address, "backup": True}],
              health=FAST),
     upstream("mc", [{"address": m[0].address, "max_conns": 2}, m[1].address]),
     upstream("q", [{"address": one.address, "max_conns": 2}], queue_timeout_ms=5000),
     upstream("nq", [{"address": solo.address, "max_conns": 1}], queue_timeout_ms=0),
     upstream("qt", [{"address": solo.address, "max_conns": 1}], queue_timeout_ms=300),
     upstream("ss", [ss[0].address, {"address": ss[1].address, "slow_start_ms": 3000}], health=FAST)],
    [proxy_route(n, "/%s/" % n) for n in ("bk", "mc", "q", "nq", "qt", "ss")], workers=2)
p = Portico(conf)
p.wait_workers(2)

# backup
got = load(p, 100, conns=8, target="/bk/x")
is_((got.errors, got["b0"]), ([], 0), "primaries up: the backup gets nothing")
mark = p.log_mark()
prim[0].health = 500
ok(p.wait_log(state_line("bk", prim[0].address, "up", "down"), 5, mark), "one primary down")
got = load(p, 100, conns=8, target="/bk/x")
is_((got.errors, got["b0"], got["p1"]), ([], 0, 100), "one primary left: still no backup")
prim[1].health = 500
ok(p.wait_log(state_line("bk", prim[1].address, "up", "down"), 5, mark), "every primary down")
got = load(p, 100, conns=8, target="/bk/x")
is_((got.errors, got["b0"]), ([], 100), "every primary down: the backup takes everything")
prim[1].health = 200
ok(p.wait_log(state_line("bk", prim[1].address, "down", "up"), 5, mark), "a primary is back")
got = load(p, 100, conns=8, target="/bk/x")
is_((got.errors, got["b0"], got["p1"]), ([], 0, 100), "...and the backup is left again")
prim[0].health = 200

# max_conns: the limit holds across both workers; the rest goes elsewhere
m[0].delay = m[1].delay = 0.3
got = load(p, 48, conns=16, target="/mc/x")
is_(got.errors, [], "16 at once on max_conns = 2 + an unlimited server: no error")
cmp_ok(m[0].max_inflight, "<=", 2, "max_conns = 2: never more than 2 at once on it (saw %d)" % m[0].max_inflight)
cmp_ok(m[0].max_inflight, "==", 2, "...and it was used up to its limit")
cmp_ok(m[1].max_inflight, ">", 2, "...the rest went to the other server (%d at once)" % m[1].max_inflight)

# every server full: requests wait (queue_timeout_ms), then are served
one.delay = 0.2
got = load(p, 8, conns=8, target="/q/x")
is_((got.errors, got["one"]), ([], 8), "every server full: the others wait their turn and are served")
cmp_ok(one.max_inflight, "<=", 2, "...never more than max_conns at once (%d)" % one.max_inflight)

# full with queue_timeout_ms = 0: 503 at once, with Retry-After
solo.delay = 1.0
mark = p.log_mark()
res = []
ts = [threading.Thread(target=lambda: res.append(p.connect(timeout=10).request("GET", "/nq/x")))
      for _ in range(3)]
for t in ts:
    t.start()
for t in ts:
    t.join(10)
is_(sorted(r.status for r in res), [200, 503, 503], "max_conns = 1, queue_timeout_ms = 0: one served, two 503")
is_([r.header("Retry-After") for r in res if r.status == 503], ["1", "1"], "...with Retry-After: 1")
is_(p.log_count(r'upstream "nq": every server is at max_conns, client', mark), 2, "...logged")

# full for longer than queue_timeout_ms: 503 after the wait
mark = p.log_mark()
res = []
ts = [threading.Thread(target=lambda: res.append(p.connect(timeout=10).request("GET", "/qt/x")))
      for _ in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join(10)
is_(sorted(r.status for r in res), [200, 503], "max_conns = 1, queue_timeout_ms = 300, a 1 s answer: "
    "the second request gets 503 after waiting")
ok([r for r in res if r.status == 503][0].elapsed >= 0.25, "...after the wait (%.2f s)"
   % [r for r in res if r.status == 503][0].elapsed)
is_(p.log_count(r'upstream "qt": every server is at max_conns \(waited queue_timeout_ms\), client', mark), 1,
    "...logged")

# slow start: a server back from down ramps its share up
ld = Load(p, conns=6, target="/ss/x")
ok(wait_for(lambda: ld.snapshot()["ss1"] > 20, 5), "slow start group under load")
mark = p.log_mark()
ss[1].health = 500
ok(p.wait_log(state_line("ss", ss[1].address, "up", "down"), 5, mark), "ss1 down")
ss[1].health = 200
ok(p.wait_log(state_line("ss", ss[1].address, "down", "slow start"), 5, mark), "ss1 back: slow start")


def share(a, b):
    n0, n1 = b["ss0"] - a["ss0"], b["ss1"] - a["ss1"]
    return n1 / max(n0 + n1, 1), n0 + n1


c0 = ld.snapshot()
time.sleep(0.6)                 # measuring windows, not synchronisation
c1 = ld.snapshot()
time.sleep(1.4)
c2 = ld.snapshot()
time.sleep(0.6)
c3 = ld.snapshot()
early, n_early = share(c0, c1)
late, n_late = share(c2, c3)
diag("ss1 share: %.2f of %d in its first 0.6 s, %.2f of %d 2 s later" % (early, n_early, late, n_late))
cmp_ok(early, "<", 0.2, "slow start: little traffic right after it is back (%.2f)" % early)
cmp_ok(late, ">", early, "slow start: its share ramps up (%.2f -> %.2f)" % (early, late))
ok(p.wait_log(state_line("ss", ss[1].address, "slow start", "up") + r"slow start over\)", 5, mark),
   "slow start over after slow_start_ms")
c4 = ld.snapshot()
time.sleep(0.6)
full, n_full = share(c4, ld.snapshot())
res = ld.stop()
is_(res.errors, [], "no client error throughout")
ok(0.4 <= full <= 0.6, "then its full share (%.2f)" % full)
p.stop()
done_testing()
