#!/usr/bin/env python3
# Passive health: a server killed under continuous load costs no client an error (the
# requests it dropped are retried elsewhere) and is out for every worker after max_fails;
# after fail_timeout_ms it is tried again; fail_on_status counts 5xx answers; a lone server
# is never taken out.
import os, re, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

watchdog(240)

o = named_origins(3)
k = named_origins(3, prefix="k")
q = named_origins(2, prefix="q")
f = named_origins(2, prefix="f")
lone = closed_port()
qdead = "127.0.0.1:%d" % closed_port()
conf = proxy_config(
    [upstream("app", [x.address for x in o], max_fails=3, fail_timeout_ms=30000),
     upstream("nk", [x.address for x in k], max_fails=3, fail_timeout_ms=30000, keepalive=0),
     upstream("quick", [qdead, q[0].address], max_fails=2,
              fail_timeout_ms=1000),
     upstream("st", [x.address for x in f], max_fails=2, fail_timeout_ms=30000,
              fail_on_status="[ 500, 503 ]"),
     upstream("lone", ["127.0.0.1:%d" % lone], max_fails=1)],
    [proxy_route("app", "/app/"), proxy_route("nk", "/nk/"), proxy_route("quick", "/quick/"), proxy_route("st", "/st/"),
     proxy_route("lone", "/lone/")], workers=2)
p = Portico(conf)
p.wait_workers(2)



def kill_under_load(group, origins, what):
    victim = origins[1]
    addr = victim.address
    ld = Load(p, conns=8, target="/%s/x" % group)
    ok(wait_for(lambda: ld.snapshot()[victim.name] >= 50, 10), "%s: load running on all three servers" % what)
    victim.delay = 0.05         # so that requests are in flight on it when it dies
    ok(wait_for(lambda: victim.open_conns >= 2, 5), "%s: requests in flight on the victim" % what)
    mark = p.log_mark()
    victim.stop()               # killed: its connections close, its port refuses
    ok(p.wait_log(state_line(group, addr, "up", "down") + r"max_fails 3 reached within fail_timeout_ms 30000",
                  10, mark), "%s: the killed server is out after max_fails failures" % what)
    down_at = len(p.error_log())
    n = ld.total()
    ok(wait_for(lambda: ld.total() >= n + 400, 20), "%s: load goes on" % what)
    res = ld.stop()
    is_(res.errors, [], "%s: zero client errors under load (%d requests; dropped ones retried)"
        % (what, sum(res.statuses.values())))
    is_(p.log_count(state_line(group, addr, "up", "down"), mark), 1, "%s: one transition for the instance" % what)
    # a request that picked it just before the transition may still fail right after
    raced = re.findall(r"upstream \"%s\" server %s: connect\(\) failed" % (group, re.escape(addr)),
                       p.error_log()[down_at:])
    cmp_ok(len(raced), "<=", 2, "%s: after the transition no worker tries it (%d raced it)" % (what, len(raced)))
    diag("%s: %d lines about it before the transition" % (what, len(re.findall(r"server %s: " % re.escape(addr),
                                                                              p.error_log()[mark:down_at]))))
    got = load(p, 200, conns=8, target="/%s/y" % group)
    is_((got.errors, got[victim.name]), ([], 0), "%s: both workers keep it out" % what)


kill_under_load("app", o, "pooled connections")
kill_under_load("nk", k, "keepalive = 0")

# fail_timeout_ms passes: tried again (on time, with no request needed); one more
# failure takes it out again
mark = p.log_mark()
sts = [p.get("/quick/%d" % i).status for i in range(4)]
is_(sts, [200] * 4, "quick: a refusing server, no client error (retries)")
ok(p.wait_log(state_line("quick", qdead, "up", "down"), 3, mark), "quick: out after 2 refusals")
ok(p.wait_log(state_line("quick", qdead, "down", "up") + r"fail_timeout_ms 1000 passed: trying it again\)",
              5, mark), "after fail_timeout_ms it is tried again (announced without a request)")
mark2 = p.log_mark()
sts = [p.get("/quick/%d" % i).status for i in range(4)]
is_(sts, [200] * 4, "no client error meanwhile (retries)")
ok(p.wait_log(state_line("quick", qdead, "up", "down"), 3, mark2), "one more failure takes it out again")
is_(len(re.findall(r'upstream "quick" server %s: connect\(\) failed' % re.escape(qdead), p.error_log()[mark2:])),
    1, "...after a single failure (on probation)")

# fail_on_status: 5xx answers count as failures; they still reach the client
f[0].status = 503
mark = p.log_mark()
got = load(p, 20, conns=1, target="/st/x")
ok(p.wait_log(state_line("st", f[0].address, "up", "down") + r"max_fails 2 reached within fail_timeout_ms 30000, "
              r"the last failure: status 503", 3, mark), "fail_on_status: two 503 answers take a server out")
is_(got.statuses[503], 2, "...the two 503 answers were passed on (not retried)")
is_(got["f1"], 18, "...then everything goes to the other")

# a lone server is never out: there would be nothing else to try
mark = p.log_mark()
sts = [p.get("/lone/%d" % i).status for i in range(3)]
is_(sts, [502] * 3, "lone refusing server: 502 every time, never 503")
unlike(p.error_log()[mark:], r'upstream "lone" server .* -> down', "...and no transition")
p.stop()
done_testing()
