#!/usr/bin/env python3
# Descriptor limits: the master raises its soft RLIMIT_NOFILE to the hard limit and the
# workers inherit it; worker_rlimit_nofile sets both limits of the workers (a failure is
# logged); a warning at start and on reload when max_connections cannot fit
# (2 per connection + 32 splice pipes + 16 + listeners).
import os, re, resource, subprocess, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

ROUTES = 'routes = ( { path_prefix = "/"; return = { status = 200; body = "ok\\n"; }; } );'
SOFT, HARD = 100, 1500
WARN = r"\[warn\] \d+#master: max_connections (\d+) does not fit in the descriptor limit (\d+) \((RLIMIT_NOFILE|worker_rlimit_nofile)\)"
RAISED = r"\[notice\] \d+#master: descriptor limit \(RLIMIT_NOFILE\) raised from %d to the hard limit, %d" % (SOFT, HARD)


def low_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


def conf(max_connections, extra=""):
    limits = BASE_LIMITS.replace("limits = {", "limits = { max_connections = %d;" % max_connections)
    return standard_config(workers=2, limits=limits, routes=ROUTES, extra=extra)


def worker_limits(p, want):
    """Wait until both workers have the limits want; the limits they have."""
    w = p.wait_workers(2)
    got = wait_for(lambda: [proc_limit(x) for x in w] if all(proc_limit(x) == want for x in w) else None, 5)
    return got or [proc_limit(x) for x in p.worker_pids()]


def can_raise_hard():
    """Root with CAP_SYS_RESOURCE (a container's root may lack it)."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d)); "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d))" % (SOFT, HARD, 2 * HARD, 2 * HARD))
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < HARD:
    skip_all("the hard descriptor limit is below %d" % HARD)

# --- default: soft raised to hard, max_connections too big for it: a warning ---------------
p = Portico(conf(1000), preexec_fn=low_limit)
ok(p.wait_log(RAISED), "started with %d/%d: the master raises its soft limit (notice)" % (SOFT, HARD))
is_(proc_limit(p.pid), (HARD, HARD), "...the master's limits: %d/%d" % (HARD, HARD))
is_(worker_limits(p, (HARD, HARD)), [(HARD, HARD)] * 2, "...and the workers inherit them")
m = p.wait_log(WARN)
is_(m and m.groups(), ("1000", str(HARD), "RLIMIT_NOFILE"), "max_connections 1000 > (1500 - 50) / 2: a warning at start")
like(p.error_log(), r"may need 2 x 1000 \+ 50 = 2050 descriptors", "...which says how many a worker may need")
is_(p.get("/").status, 200, "...and serves")

# a reload to a max_connections that fits: no warning; back to one that does not: warned again
mark = p.log_mark()
old = p.wait_workers(2)
p.reload(conf(700))
p.wait_log(r"reload finished: generation 2", start=mark)
p.wait_workers(2, exclude=old)
ok(p.wait_log(r"worker started", start=mark), "reload to max_connections = 700 (1400 + 50 <= 1500) done")
ok(not re.search(WARN, p.error_log()[mark:]), "...without a warning")
mark = p.log_mark()
p.reload(conf(2000))
m = p.wait_log(WARN, start=mark)
is_(m and m.groups(), ("2000", str(HARD), "RLIMIT_NOFILE"), "reload to max_connections = 2000: warned on reload")
p.stop()

# --- a configuration that fits: no warning ---------------------------------------------------
p = Portico(conf(500), preexec_fn=low_limit)
p.wait_workers(2)
ok(p.wait_log(r"worker 1: worker started") and p.wait_log(r"worker 0: worker started"), "max_connections = 500: started")
ok(not re.search(WARN, p.error_log()), "...no warning (1000 + 50 <= 1500)")
p.stop()

# --- worker_rlimit_nofile: both limits of the workers -----------------------------------------
raise_hard = can_raise_hard()
if raise_hard:
    n = 3000     # above the hard limit: root may raise it
    p = Portico(conf(1000, "worker_rlimit_nofile = %d;" % n), preexec_fn=low_limit)
    is_(worker_limits(p, (n, n)), [(n, n)] * 2, "worker_rlimit_nofile = %d (root): the workers' soft and hard limits" % n)
    is_(proc_limit(p.pid), (HARD, HARD), "...the master keeps its own")
    p.wait_log(r"worker 1: worker started")
    ok(not re.search(WARN, p.error_log()), "...no warning: 2050 <= 3000")
    p.stop()
else:
    skip("raising the hard limit needs root (CAP_SYS_RESOURCE)", 3)

n = 1200      # below the hard limit: anyone may
p = Portico(conf(1000, "worker_rlimit_nofile = %d;" % n), preexec_fn=low_limit)
is_(worker_limits(p, (n, n)), [(n, n)] * 2, "worker_rlimit_nofile = %d: the workers' soft and hard limits" % n)
m = p.wait_log(WARN)
is_(m and m.groups(), ("1000", str(n), "worker_rlimit_nofile"), "...and the warning uses it")
p.stop()

# a value that cannot be set (above the kernel's fs.nr_open for root, above the hard limit
# without CAP_SYS_RESOURCE): logged by each worker, which goes on with the hard limit
with open("/proc/sys/fs/nr_open") as f:
    n = int(f.read()) + 64 if raise_hard else HARD + 500
p = Portico(conf(10, "worker_rlimit_nofile = %d;" % n), preexec_fn=low_limit)
is_(worker_limits(p, (HARD, HARD)), [(HARD, HARD)] * 2, "worker_rlimit_nofile = %d cannot be set: the workers keep %d" % (n, HARD))
for w in (0, 1):
    ok(p.wait_log(r"\[alert\] \d+#worker %d: worker_rlimit_nofile %d: setrlimit\(RLIMIT_NOFILE\) failed "
                  r"\(1: Operation not permitted\); the limit is %d" % (w, n, HARD)),
       "...worker %d logs why (alert)" % w)
is_(p.get("/").status, 200, "...and serves")
p.stop()

# --- the key's type and range --------------------------------------------------------------------
for value, msg in (("10", "10 is out of range 64..2147483647"),
                   ('"max"', "expected an integer, got a string")):
    t = Portico(conf(10, "worker_rlimit_nofile = %s;" % value), start=False)
    cp = run_bin(["-t", "-c", t.conf_path])
    line = len(open(t.conf_path).read().split("worker_rlimit_nofile")[0].splitlines()) + 1
    is_((cp.returncode, cp.stderr.splitlines()[0] if cp.stderr else ""),
        (1, "portico: %s:%d: key 'worker_rlimit_nofile': %s" % (t.conf_path, line, msg)),
        "worker_rlimit_nofile = %s: -t names file, line and key" % value)

done_testing()
