#!/usr/bin/env python3
# Process model: worker counts (n, "auto"), the master holds the pid file and serves no
# traffic itself, daemon = true, user/group applied to the workers when started as root.
import grp, os, pwd, signal, subprocess, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

ROUTES = 'routes = ( { path_prefix = "/"; return = { status = 200; body = "ok\\n"; }; } );'

# --- worker counts -------------------------------------------------------------------------
p = Portico(standard_config(workers=1, routes=ROUTES))
is_(len(p.wait_workers(1)), 1, "workers = 1: one worker")
is_(p.get("/").body, b"ok\n", "workers = 1: serves")
p.stop()

p = Portico(standard_config(workers=3, routes=ROUTES))
w = p.wait_workers(3)
is_(len(w), 3, "workers = 3: three workers")
ok(p.pid not in w and all(proc_ppid(x) == p.pid for x in w), "workers are the master's children")
# The master serves no traffic: with every worker stopped (SIGSTOP), nothing is answered.
for x in w:
    os.kill(x, signal.SIGSTOP)
try:
    c = p.connect(timeout=1.5)
    c.send(build_request("GET", "/", "x"))
    try:
        c.read_response(timeout=1.5)
        ok(False, "the master serves no traffic")
    except ResponseTimeout:
        ok(True, "the master serves no traffic (no answer while the workers are stopped)")
finally:
    for x in w:
        os.kill(x, signal.SIGCONT)
r = c.read_response(timeout=5)
is_((r.status, r.body), (200, b"ok\n"), "...and the request is answered once they run again")
c.close()
p.stop()

cpus = {os.cpu_count(), len(os.sched_getaffinity(0))}
p = Portico(standard_config(workers='"auto"', routes=ROUTES))
time.sleep(0.5)
n = len(p.wait_workers(max(cpus)))
in_(n, sorted(cpus), 'workers = "auto": one worker per CPU')
p.stop()

# --- daemon = true ---------------------------------------------------------------------------
d = Portico(standard_config(routes=ROUTES, extra="daemon = true;"), start=False)
daemon_pids = []


def kill_daemon():
    for pid in daemon_pids:
        for x in proc_children(pid) + [pid]:
            try:
                os.kill(x, signal.SIGKILL)
            except OSError:
                pass


add_cleanup(kill_daemon)
t0 = time.monotonic()
cp = run_bin(["-c", d.conf_path], timeout=15)
is_(cp.returncode, 0, "daemon = true: the command returns 0")
cmp_ok(time.monotonic() - t0, "<", 10, "daemon = true: ...promptly")
pid = wait_for(lambda: os.path.exists(d.pid_path) and open(d.pid_path).read().strip(), 5.0)
ok(pid and pid.isdigit() and proc_alive(int(pid)), "daemon = true: the pid file names a live master")
if pid and pid.isdigit():
    daemon_pids.append(int(pid))
    d.wait_ports = None
    d.proc = None
    try:
        r = d.get("/")
        is_((r.status, r.body), (200, b"ok\n"), "daemon = true: serves")
    except (OSError, HTTPError) as e:
        ok(False, "daemon = true: serves")
        diag(str(e))
    cp = run_bin(["-s", "quit", "-c", d.conf_path])
    is_(cp.returncode, 0, "daemon: -s quit")
    ok(wait_for(lambda: not proc_alive(int(pid)), 10.0), "daemon: the master exits")
    ok(not os.path.exists(d.pid_path), "daemon: the pid file is removed")
else:
    skip("no daemon", 4)

# --- user / group (root only) ------------------------------------------------------------
if not is_root():
    skip("user/group need root", 4)
else:
    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid)
    p = Portico(standard_config(routes=ROUTES, extra='user = "%s"; group = "%s";' % (user.pw_name, group.gr_name)))
    w = p.wait_workers(2)
    is_(proc_uid(p.pid), (0, 0), "user/group: the master keeps root")
    is_([proc_uid(x) for x in w], [(user.pw_uid, user.pw_uid)] * 2, "user = %s: workers run as uid %d" % (user.pw_name, user.pw_uid))
    is_([proc_gid(x)[1] for x in w], [group.gr_gid] * 2, "group = %s: workers run as gid %d" % (group.gr_name, group.gr_gid))
    is_(p.get("/").body, b"ok\n", "user/group: serves")
    p.stop()

done_testing()
