#!/usr/bin/env python3
# Process model: worker counts (n, "auto"), the master holds the pid file and serves no
# traffic itself, daemon = true, user/group applied to the workers when started as root.
import grp, os, pwd, shutil, signal, subprocess, sys, time
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
m = p.wait_log(r"#master: portico \S+ started: pid \d+, (\d+) workers")
n = int(m.group(1)) if m else 0
in_(n, sorted(cpus), 'workers = "auto": one worker per CPU (%d)' % n)
is_(len(p.wait_workers(n)), n, "...and that many run")
p.stop()

# --- daemon = true ---------------------------------------------------------------------------
d = Portico(standard_config(routes=ROUTES, extra="daemon = true;"), start=False)
daemon_pids = []


def kill_daemon():
    for pid in daemon_pids:
        for x in proc_children(pid) + [pid]:
            if proc_alive(x):           # a Pid: never another process that got the number
                try:
                    os.kill(x, signal.SIGKILL)
                except OSError:
                    pass


add_cleanup(kill_daemon)
cp = run_bin(["-c", d.conf_path], timeout=15)     # TimeoutExpired if it stayed
is_(cp.returncode, 0, "daemon = true: the command returns 0 (while the master runs on: below)")
pid = wait_for(lambda: os.path.exists(d.pid_path) and open(d.pid_path).read().strip(), 5.0)
ok(pid and pid.isdigit() and proc_alive(int(pid)), "daemon = true: the pid file names a live master")
if pid and pid.isdigit():
    pid = Pid.of(int(pid))
    daemon_pids.append(pid)
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
    ok(wait_for(lambda: not proc_alive(pid), 10.0), "daemon: the master exits")
    ok(not os.path.exists(d.pid_path), "daemon: the pid file is removed")
else:
    skip("no daemon", 4)

# --- user / group (root only) ------------------------------------------------------------
def workers_as(p, uid, gid, n=2):
    """The workers' (real, effective) uids and effective gids, once every one of the n
    workers has switched to uid/gid (they start as root and drop it right after the fork:
    sampling at once may catch them before)."""
    def state():
        w = p.wait_workers(n, timeout=1)
        try:
            got = ([proc_uid(x) for x in w], [proc_gid(x)[1] for x in w])
        except OSError:
            return None     # a worker went away between the listing and the read
        return got if len(w) == n and got == ([(uid, uid)] * n, [gid] * n) else None
    return wait_for(state, 10) or state() or ([proc_uid(x) for x in p.worker_pids()], [])


WORKERS_AS = r"(?m)\[notice\] %d#master: workers run as user \"%s\" \(uid %d\), group \"%s\" \(gid %d\)"

if not is_root():
    skip("user/group need root", 9)
else:
    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid)
    p = Portico(standard_config(routes=ROUTES, extra='user = "%s"; group = "%s";' % (user.pw_name, group.gr_name)))
    uids, gids = workers_as(p, user.pw_uid, group.gr_gid)
    is_(proc_uid(p.pid), (0, 0), "user/group: the master keeps root")
    is_(uids, [(user.pw_uid, user.pw_uid)] * 2, "user = %s: workers run as uid %d" % (user.pw_name, user.pw_uid))
    is_(gids, [group.gr_gid] * 2, "group = %s: workers run as gid %d" % (group.gr_name, group.gr_gid))
    like(p.error_log(), (WORKERS_AS + r"$") % (p.pid, user.pw_name, user.pw_uid, group.gr_name, group.gr_gid),
         "...which the master logs at notice")
    is_(p.get("/").body, b"ok\n", "user/group: serves")
    p.stop()

    # no user: never root. The workers run as nobody (and its group), and the log says why.
    p = Portico(standard_config(routes=ROUTES))
    uids, gids = workers_as(p, user.pw_uid, user.pw_gid)
    is_((proc_uid(p.pid), uids), ((0, 0), [(user.pw_uid, user.pw_uid)] * 2),
        "no user, started as root: the master keeps root, the workers run as nobody (uid %d)" % user.pw_uid)
    is_(gids, [user.pw_gid] * 2, "...in nobody's group (gid %d)" % user.pw_gid)
    like(p.error_log(), (WORKERS_AS + r": no user is set, and never as root$")
         % (p.pid, "nobody", user.pw_uid, grp.getgrgid(user.pw_gid).gr_name, user.pw_gid),
         "...which the master logs at notice")
    is_(p.get("/").body, b"ok\n", "...and serves")
    p.stop()

# a system without "nobody" (a mount namespace with a passwd file that lacks it): no user
# set means no start, and -t says why
if not is_root() or not shutil.which("unshare"):
    skip("needs root and unshare(1)", 2)
else:
    t = Portico(standard_config(routes=ROUTES), start=False)
    passwd = os.path.join(t.tmp, "passwd")
    with open(passwd, "w") as f:
        f.writelines(l for l in open("/etc/passwd") if not l.startswith("nobody:"))
    nss = os.path.join(t.tmp, "nsswitch.conf")
    with open(nss, "w") as f:
        f.write("passwd: files\ngroup: files\n")
    for args, what in ((["-t"], "-t"), ([], "start")):
        script = ('mount --bind %s /etc/passwd && mount --bind %s /etc/nsswitch.conf && exec %s -c %s %s'
                  % (passwd, nss, portico_bin(), t.conf_path, " ".join(args)))
        cp = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=20)
        is_((cp.returncode, cp.stderr.splitlines()[:1]),
            (1, ['portico: %s: no user is set and the default user "nobody" does not exist: set user '
                 '(workers do not run as root)' % t.conf_path]),
            "no user and no \"nobody\" (root): %s fails, saying why" % what)

done_testing()
