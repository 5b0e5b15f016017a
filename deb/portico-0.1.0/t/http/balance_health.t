#!/usr/bin/env python3
# Active health checks: http and tcp probes, fall/rise, once per interval for the whole
# instance (not per worker), state kept across a reload and a prober's death, every server
# down -> 503 with Retry-After.
import collections, os, re, signal, statistics, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

watchdog(300)

INTERVAL, FALL, RISE = 200, 3, 2
SLACK = 2.0                     # seconds on top of fall/rise x interval (a loaded machine)
o = named_origins(2)
t_origin = named_origin("t0")
dead = closed_port()
HEALTH = ('{ type = "http"; path = "/health"; host = "app.internal"; interval_ms = %d; '
          'timeout_ms = 200; fall = %d; rise = %d; expect_status = "200-299"; '
          'expect_body_regex = "^healthy"; }' % (INTERVAL, FALL, RISE))
TCP = '{ type = "tcp"; interval_ms = 200; timeout_ms = 200; fall = 2; rise = 1; }'
HTTP_DEAD = '{ type = "http"; path = "/health"; interval_ms = 200; timeout_ms = 200; fall = 2; rise = 1; }'
CONF = proxy_config(
    [upstream("app", [x.address for x in o], health=HEALTH),
     upstream("tc", ["127.0.0.1:%d" % dead, t_origin.address], health=TCP),
     upstream("hd", ["127.0.0.1:%d" % dead, named_origin("h0").address], health=HTTP_DEAD)],
    [proxy_route("app", "/app/"), proxy_route("tc", "/tc/"), proxy_route("hd", "/hd/")], workers=2)
p = Portico(CONF)
p.wait_workers(2)
S0, S1 = o[0].address, o[1].address

ok(wait_for(lambda: len(o[0].probe_times) >= 3 and len(o[1].probe_times) >= 3, 5),
   "both servers are probed")
probe = [r for r in o[0].received if r.target.startswith("/health")][0]
is_((probe.method, probe.target, probe.header("Host")), ("GET", "/health", "app.internal"),
    "the probe: GET path with the configured Host")
is_(probe.header("Connection"), "close", "...on a connection of its own (Connection: close)")

# once per interval for the whole instance: two workers, yet the gaps are the interval
time.sleep(3)                   # a measuring window, not a synchronisation
for x in o:
    ts = list(x.probe_times)
    gaps = [b - a for a, b in zip(ts, ts[1:])][-12:]
    med = statistics.median(gaps)
    ok(0.75 * INTERVAL / 1000 <= med <= 1.5 * INTERVAL / 1000,
       "%s: one probe per interval for the instance, not per worker (median gap %.0f ms, "
       "interval %d ms)" % (x.name, med * 1000, INTERVAL))
    span = ts[-1] - ts[0]
    cmp_ok(len(ts) - 1, "<=", span * 1000 / INTERVAL * 1.25 + 1,
           "%s: %d probes in %.1f s (2 workers probing each would make twice %d)"
           % (x.name, len(ts), span, span * 1000 / INTERVAL))

got = load(p, 60, conns=4, target="/app/x")
ok(not got.errors and 25 <= got["s0"] <= 35 and got["s0"] + got["s1"] == 60,
   "both up: requests spread (%r)" % dict(got))

# fall: /health starts returning 500
mark = p.log_mark()
t0 = time.monotonic()
o[1].health = 500
ok(p.wait_log(state_line("app", S1, "up", "down") + r"health check failed 3 times in a row, the last: status 500\)",
              FALL * INTERVAL / 1000 + SLACK, mark),
   "a server whose /health returns 500 is out within fall x interval (+ %.1f s)" % SLACK)
diag("out after %.2f s (fall x interval = %.1f s)" % (time.monotonic() - t0, FALL * INTERVAL / 1000))
is_(p.log_count(r"upstream \"app\" server %s: health check failed \(\d in a row\): status 500" % re.escape(S1), mark),
    FALL, "each failed probe is logged once (%d)" % FALL)
is_(p.log_count(state_line("app", S1, "up", "down"), mark), 1,
    "the transition is logged once for the instance")
got = load(p, 40, conns=4, target="/app/x")
is_((got.errors, got["s1"], got["s0"]), ([], 0, 40), "no request goes to the server that is down")

# rise: it recovers
mark = p.log_mark()
t0 = time.monotonic()
o[1].health = 200
ok(p.wait_log(state_line("app", S1, "down", "up") + r"health check passed 2 times in a row\)",
              RISE * INTERVAL / 1000 + SLACK, mark),
   "back within rise x interval (+ %.1f s) after it recovers" % SLACK)
diag("back after %.2f s" % (time.monotonic() - t0))
got = load(p, 40, conns=4, target="/app/x")
ok(not got.errors and 15 <= got["s1"] <= 25, "...and takes requests again (%r)" % dict(got))

# the body must match expect_body_regex; a status outside expect_status fails too
mark = p.log_mark()
o[1].health_body = b"sick\n"
ok(p.wait_log(state_line("app", S1, "up", "down") + r"health check failed 3 times in a row, the last: "
              r"status 200, the body does not match \"\^healthy\"\)", FALL * INTERVAL / 1000 + SLACK, mark),
   "a body not matching expect_body_regex fails the check")
o[1].health_body = b"healthy\n"
ok(p.wait_log(state_line("app", S1, "down", "up"), RISE * INTERVAL / 1000 + SLACK, mark), "...back")


def wait_up(mark, timeout=5):
    """s1 is up again: no down transition since mark, or an up one after the last."""
    def up():
        text = p.error_log()[mark:]
        d = text.rfind("server %s: up -> down" % S1)
        return d < 0 or text.find("server %s: down -> up" % S1, d) >= 0
    return wait_for(up, timeout)


mark = p.log_mark()
o[1].health = 302
ok(p.wait_log(r"server %s: health check failed \(1 in a row\): status 302" % re.escape(S1), 2, mark),
   "expect_status = \"200-299\": 302 fails")
o[1].health = 200
ok(p.wait_log(r"server %s: health check passed" % re.escape(S1), 2, mark) and wait_up(mark),
   "...and 200 passes")
mark = p.log_mark()
o[1].health_delay = 0.5
ok(p.wait_log(r"server %s: health check failed \(\d in a row\): timed out after 200 ms" % re.escape(S1), 3, mark),
   "a probe that takes longer than timeout_ms fails")
o[1].health_delay = 0.0
ok(wait_up(mark, RISE * INTERVAL / 1000 + SLACK + 1), "...and passes again once it is quick")

# tcp: a closed port goes down, the live server stays up
ok(p.wait_log(state_line("tc", "127.0.0.1:%d" % dead, "up", "down") +
              r"health check failed 2 times in a row, the last: connect\(\) failed \(111: Connection refused\)\)",
              5, 0),
   "tcp check on a closed port: down after fall connects refused")
unlike(p.error_log(), state_line("tc", t_origin.address, "up", "down"), "tcp check: the listening server stays up")
ok(t_origin.accepted >= 2 and not [r for r in t_origin.received if r.target.startswith("/health")],
   "tcp check: connections, no request")
got = load(p, 20, conns=2, target="/tc/x")
is_((got.errors, got["t0"]), ([], 20), "requests go to the live server only")
ok(p.wait_log(state_line("hd", "127.0.0.1:%d" % dead, "up", "down") +
              r"health check failed 2 times in a row, the last: upstream connect failed\)", 5, 0),
   "http check on a closed port: down")
like(p.error_log(), r'(?m)\[info\] .*upstream "hd" server 127\.0\.0\.1:%d: connect\(\) failed \(111: Connection refused\)$'
     % dead, "...the probe's connect error is logged at info (the probe's, with no client)")
p.stop()
done_testing()
