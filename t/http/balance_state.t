#!/usr/bin/env python3
# Server state in the shared zone: kept across a reload (no flap to up), survives a prober
# killed, every server down -> 503 with Retry-After, down = true, a removed server drains.
import os, re, signal, statistics, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

watchdog(300)

INTERVAL = 200
o = named_origins(2)
S0, S1 = o[0].address, o[1].address
HEALTH = ('{ type = "http"; path = "/health"; interval_ms = %d; timeout_ms = 200; fall = 2; '
          'rise = 2; }' % INTERVAL)


def conf(servers=None, extra_route=""):
    servers = servers or [S0, S1]
    return proxy_config([upstream("app", servers, health=HEALTH)],
                        [proxy_route("app", "/app/")] + ([extra_route] if extra_route else []),
                        workers=2)


p = Portico(conf())
p.wait_workers(2)
ok(wait_for(lambda: len(o[1].probe_times) >= 2, 5), "probes run")

mark = p.log_mark()
o[1].health = 500
ok(p.wait_log(state_line("app", S1, "up", "down"), 5, mark), "s1 fails its checks: down")

# a reload keeps the state of servers in both configurations
old = p.worker_pids()
mark = p.log_mark()
p.reload(conf(extra_route='{ path_prefix = "/other/"; return = { status = 204; }; }'))
ok(p.wait_log(r"reload finished", 10, mark), "reload")
new = p.wait_workers(2, exclude=old)
got = load(p, 40, conns=4, target="/app/x")
is_((got.errors, got["s1"], got["s0"]), ([], 0, 40),
    "right after the reload the new workers send nothing to the server that is down")
n = len(o[1].probe_times)
ok(wait_for(lambda: len(o[1].probe_times) >= n + 5, 5), "the new workers go on probing")
unlike(p.error_log()[mark:], r"server %s: [a-z ]+ -> " % re.escape(S1),
       "no flap to up on reload: no transition logged for s1")
ts = [t for t in o[1].probe_times if t >= o[1].probe_times[n]]
ok(statistics.median([b - a for a, b in zip(ts, ts[1:])]) >= 0.75 * INTERVAL / 1000,
   "after the reload still one probe per interval (the old workers stopped probing)")

# a prober killed: the others take over, the state survives
victim = p.worker_pids()[0]
mark = p.log_mark()
os.kill(victim, signal.SIGKILL)
ok(p.wait_log(r"\(pid %d, generation \d+\) .*killed by signal 9" % victim, 5, mark),
   "a worker (a prober) is killed")
p.wait_workers(2, exclude=[victim])
n = len(o[1].probe_times)
ok(wait_for(lambda: len(o[1].probe_times) >= n + 5, 5), "probes go on after the prober died")
unlike(p.error_log()[mark:], r"server %s: [a-z ]+ -> " % re.escape(S1), "...and s1 is still down (no transition)")
got = load(p, 20, conns=4, target="/app/x")
is_((got.errors, got["s1"]), ([], 0), "...for every worker")

# every server down: 503 with Retry-After, logged
mark = p.log_mark()
o[0].health = 500
ok(p.wait_log(state_line("app", S0, "up", "down"), 5, mark), "s0 down too")
r = p.get("/app/alldown")
is_((r.status, r.body), (503, b"503 Service Unavailable\n"), "every server down: 503")
is_(r.header("Retry-After"), "1", "...with Retry-After (rise x interval, rounded up to a second)")
ok(p.wait_log(r'\[error\] .*upstream "app": no live server: every server is down, client 127\.0\.0\.1, '
              r'request "GET /app/alldown"', 2, mark), "...logged")
like(access_line(p, r"GET /app/alldown HTTP/1\.1"), r'" 503 ', "...in the access log")
o[0].health = 200
o[1].health = 200
ok(p.wait_log(state_line("app", S0, "down", "up"), 5, mark), "s0 back")
ok(p.wait_log(state_line("app", S1, "down", "up"), 5, mark), "s1 back")
is_(p.get("/app/x").status, 200, "answered again")

# down = true: administratively out, announced by the master, not probed
mark = p.log_mark()
p.reload(proxy_config([upstream("app", [S0, {"address": S1, "down": True}], health=HEALTH)],
                      [proxy_route("app", "/app/")], workers=2))
ok(p.wait_log(r"\[warn\] \d+#master: " + state_line("app", S1, "up", "down") +
              r"down = true in the configuration\)", 10, mark), "down = true: the master says so")
ok(p.wait_log(r"reload finished", 10, mark), "reload")
got = load(p, 20, conns=4, target="/app/x")
is_((got.errors, got["s1"]), ([], 0), "...and nothing goes to it")
n = len(o[1].probe_times)
n0 = len(o[0].probe_times)
ok(wait_for(lambda: len(o[0].probe_times) >= n0 + 5, 5), "s0 is still probed")
cmp_ok(len(o[1].probe_times) - n, "<=", 1, "s1 is not (at most one probe in flight at the reload)")

# removed while a request to it runs: draining, then down
mark = p.log_mark()
p.reload(conf())
ok(p.wait_log(state_line("app", S1, "down", "up") + r"no longer down = true", 10, mark), "down = false: up")
ok(p.wait_log(r"reload finished", 10, mark), "reload")
# four slow requests at once: each worker has its own round robin, and whichever worker
# gets two of them sends one to each server, so s1 has at least one
res = []
o[0].delay = o[1].delay = 1.5
paths = ["/app/a", "/app/b", "/app/c", "/app/d"]
threads = [threading.Thread(target=lambda t=t: res.append(p.connect(timeout=10).request("GET", t)))
           for t in paths]
for t in threads:
    t.start()
ok(wait_for(lambda: o[1].open_conns >= 1 and any(q.target in paths for q in o[1].received), 5),
   "a request is in flight on s1")
mark = p.log_mark()
p.reload(conf([S0]))
ok(p.wait_log(state_line("app", S1, "up", "draining") + r"removed from the configuration\)", 10, mark),
   "removed with a request in flight: draining")
for t in threads:
    t.join(10)
is_(sorted(r.status for r in res), [200] * 4, "the requests in flight complete")
ok(p.wait_log(state_line("app", S1, "draining", "down") + r"its last request in flight ended\)", 5, mark),
   "then down")
p.stop()
done_testing()
