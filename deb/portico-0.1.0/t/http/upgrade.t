#!/usr/bin/env python3
# Binary upgrade (SIGUSR2, `-s upgrade`), under continuous requests with zero failures:
# the master starts its binary anew with the listening sockets; the new master takes the
# pid file (the old one's becomes PID.oldbin) and reads the configuration afresh; WINCH
# makes the old master's workers drain; QUIT ends the old master. A new master that fails
# to start hands the pid file back; a rollback (HUP to the old master, QUIT to the new)
# brings the old master back into service. Each master is checked, and stopped, by pid:
# the new master is a child of the old one, not a worker.
import os, re, signal, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 120)
LIMITS = BASE_LIMITS.replace("keepalive_timeout_ms = 2000", "keepalive_timeout_ms = 30000")


def conf(body):
    return standard_config(workers=2, limits=LIMITS, routes="""routes = (
  { path_prefix = "/"; return = { status = 200; body = "%s\\n"; }; }
);""" % body)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def masters_workers(pid, n, timeout=30):
    """Wait until master pid has n worker children (portico worker processes)."""
    def is_worker(c):
        try:
            with open("/proc/%d/cmdline" % c, "rb") as f:
                return b"worker" in f.read()
        except OSError:
            return False                    # gone meanwhile

    def workers():
        return [c for c in proc_children(pid) if is_worker(c)]
    wait_for(lambda: len(workers()) == n, timeout)
    return workers()


class Load:
    """Requests on fresh connections, back to back, from two threads; counts bodies and
    failures."""
    def __init__(self, port):
        self.port, self.stop_flag, self.lock = port, False, threading.Lock()
        self.bodies, self.errors, self.n = {}, [], 0
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop_flag:
            try:
                with Client(self.port, timeout=5) as c:
                    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    r = c.read_response()
                with self.lock:
                    self.n += 1
                    self.bodies[r.body] = self.bodies.get(r.body, 0) + 1
            except Exception as e:          # noqa: BLE001 (every failure counts)
                with self.lock:
                    self.errors.append("%s: %s" % (type(e).__name__, e))
            time.sleep(0.002)

    def seen_since(self, body, timeout=5):
        start = self.bodies.get(body, 0)
        return wait_for(lambda: self.bodies.get(body, 0) > start, timeout)

    def finish(self):
        self.stop_flag = True
        for t in self.threads:
            t.join(10)


def stop_master(pid, timeout=30):
    if not proc_alive(pid):             # gone (its number may be another process's now)
        return True
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return True
    return wait_for(lambda: not proc_alive(pid), timeout)


strays = []


def kill_strays():
    for pid in strays:                  # Pids: never another process that got the number
        for c in proc_children(pid) + [pid]:
            if proc_alive(c):
                try:
                    os.kill(c, signal.SIGKILL)
                except OSError:
                    pass


tap.add_cleanup(kill_strays)

p = Portico(conf("v1"))
A = p.pid
oldbin = p.pid_path + ".oldbin"
is_(len(masters_workers(A, 2)), 2, "master A with two workers")
load = Load(p.port())
ok(load.seen_since(b"v1\n"), "v1 answers under load")

# --- upgrade A -> B ------------------------------------------------------------------------------------------
p.write_config(conf("v2"))
res = run_bin(["-c", p.conf_path, "-s", "upgrade"])
is_(res.returncode, 0, "-s upgrade signals the master")
ok(wait_for(lambda: read_pid(p.pid_path) not in (None, A) and read_pid(oldbin) == A, 5),
   "USR2: the pid file names a new master, PID.oldbin the old one")
B = Pid.of(read_pid(p.pid_path))
strays.append(B)
is_(proc_ppid(B), A, "...the new master B is A's child")
is_(len(masters_workers(B, 2)), 2, "...B has started its two workers")
is_(len(masters_workers(A, 2)), 2, "...and A's two keep serving")
ok(p.wait_log(r"\[notice\] %d#master: binary upgrade: new master started \(pid %d\)" % (A, B)), "A logs the upgrade")
ok(p.wait_log(r"%d#master: listener 127\.0\.0\.1:%d: socket \d+ inherited from the old master" % (B, p.port())),
   "B adopts A's listening socket")

# USR2 to B while A (holding PID.oldbin) still runs is refused
os.kill(B, signal.SIGUSR2)
ok(p.wait_log(r"%d#master: binary upgrade ignored: the old master of an earlier upgrade \(pid %d" % (B, A)),
   "USR2 to B while A still runs: refused, logged")
is_(read_pid(p.pid_path), B, "...the pid file still names B")

# WINCH: A's workers drain; B serves everything (with its configuration: v2)
os.kill(A, signal.SIGWINCH)
ok(wait_for(lambda: masters_workers(A, 0, 0.1) == [], 10), "WINCH: A's workers exit")
ok(proc_alive(A), "...A stays")
ok(load.seen_since(b"v2\n"), "B's workers answer with the configuration read at upgrade (v2)")
time.sleep(0.3)
before = dict(load.bodies)
time.sleep(0.5)
is_(load.bodies.get(b"v1\n", 0) - before.get(b"v1\n", 0), 0, "...nothing answers v1 any more")

# QUIT A: the upgrade is done
ok(stop_master(A), "QUIT: A exits")
p.wait_exit(5)
ok(not os.path.exists(oldbin), "...removing PID.oldbin")
is_(read_pid(p.pid_path), B, "...the pid file names B")
ok(load.seen_since(b"v2\n"), "B serves on")

# --- a new master that cannot start: B goes on --------------------------------------------------------------
p.write_config("workers = 2;\nlisteners = ( { address = 127; } );\n")
mark = p.log_mark()
os.kill(B, signal.SIGUSR2)
ok(p.wait_log(r"%d#master: binary upgrade: the new master \(pid \d+\) exited with code 1; this master \(pid %d\) goes on"
              % (B, B), 5, mark), "an upgrade to a broken configuration: the new master exits 1, B says so")
is_(read_pid(p.pid_path), B, "...the pid file is B's again")
ok(not os.path.exists(oldbin), "...and no PID.oldbin is left")
ok(load.seen_since(b"v2\n"), "...B serves on")

# --- upgrade B -> C, then roll back: HUP to B, QUIT to C ----------------------------------------------------
p.write_config(conf("v3"))
os.kill(B, signal.SIGUSR2)
ok(wait_for(lambda: read_pid(oldbin) == B and read_pid(p.pid_path) not in (None, B), 20), "upgrade B -> C")
C = Pid.of(read_pid(p.pid_path))
strays.append(C)
is_(len(masters_workers(C, 2)), 2, "...C has two workers")
os.kill(B, signal.SIGWINCH)
ok(wait_for(lambda: masters_workers(B, 0, 0.1) == [], 10), "WINCH: B's workers exit")
ok(load.seen_since(b"v3\n"), "C answers (v3)")
p.write_config(conf("v4"))
mark = p.log_mark()
os.kill(B, signal.SIGHUP)
is_(len(masters_workers(B, 2)), 2, "rollback: HUP gives B two workers again")
ok(stop_master(C), "...QUIT: C exits")
ok(p.wait_log(r"%d#master: binary upgrade: the new master \(pid %d\) exited with code 0" % (B, C), 20, mark),
   "...B logs it")
is_(read_pid(p.pid_path), B, "...and takes its pid file back")
ok(not os.path.exists(oldbin), "...no PID.oldbin left")
ok(load.seen_since(b"v4\n"), "B serves (v4, the configuration it reloaded)")

load.finish()
cmp_ok(load.n, ">", 0, "requests made during all of this (%d)" % load.n)
is_(load.errors[:5], [], "no request failed (%d failures)" % len(load.errors))
ok(stop_master(B), "B stops on QUIT")
ok(not os.path.exists(p.pid_path), "...removing the pid file")
strays[:] = []

# --- the binary is gone: exec fails, the master goes on ---------------------------------------------------------
import shutil
copy = os.path.join(p.tmp, "portico-copy")
shutil.copy(portico_bin(), copy)
q = Portico(conf("q"), bin=copy)
os.unlink(copy)
mark = q.log_mark()
os.kill(q.pid, signal.SIGUSR2)
ok(q.wait_log(r"binary upgrade: execv\(%s\) failed \(2: No such file or directory\)" % re.escape(copy), 5, mark),
   "the binary removed: execv() fails, logged")
ok(q.wait_log(r"%d#master: binary upgrade: the new master \(pid \d+\) exited with code 2; this master" % q.pid, 5, mark),
   "...the master goes on")
is_((read_pid(q.pid_path), os.path.exists(q.pid_path + ".oldbin")), (q.pid, False), "...with its pid file")
is_(q.get("/", host="x").body, b"q\n", "...and serves")
q.stop()


# --- WINCH outside an upgrade: ignored ------------------------------------------------------------------------
q = Portico(conf("w"))
mark = q.log_mark()
ws = masters_workers(q.pid, 2)
os.kill(q.pid, signal.SIGWINCH)
ok(q.wait_log(r"SIGWINCH ignored: it stops the workers only during a binary upgrade", 5, mark),
   "WINCH with no upgrade in progress: ignored, logged")
is_((sorted(masters_workers(q.pid, 2)), q.get("/", host="x").body), (sorted(ws), b"w\n"),
    "...the same workers serve on")
q.stop()

# --- the new master's side: what PORTICO_LISTEN_FDS names is checked, not trusted --------------------------
import socket as so
keep = so.socket()
keep.setsockopt(so.SOL_SOCKET, so.SO_REUSEADDR, 1)
keep.bind(("127.0.0.1", 0))
keep.listen(16)
kport = keep.getsockname()[1]
drop = so.socket()
drop.bind(("127.0.0.1", 0))
drop.listen(16)
dport = drop.getsockname()[1]
plain = so.socket()                                  # not listening
early = so.create_connection(("127.0.0.1", kport))   # queued on the socket before portico runs
early.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
fds = [keep.fileno(), drop.fileno(), plain.fileno()]
env = dict(os.environ, PORTICO_LISTEN_FDS="%d;%d;%d;abc;1" % tuple(fds))
n = Portico(conf("n").replace("127.0.0.1:{port}", "127.0.0.1:%d" % kport), env=env, pass_fds=fds)
# kport accepted before portico ran (the test's own socket listens): wait for the log
# rather than read it right after the start
n.wait_workers(2)
ok(n.wait_log(r"binary upgrade: 2 listening sockets inherited"), "started with PORTICO_LISTEN_FDS: the 2 listening sockets taken")
ok(n.wait_log(r"listener 127\.0\.0\.1:%d: socket %d inherited from the old master" % (kport, fds[0])),
   "...the one the configuration lists is adopted")
ok(n.wait_log(r"inherited socket %d is not in the configuration; closed" % fds[1]), "...the other closed")
ok(n.wait_log(r"descriptor %d is not a listening socket; ignored" % fds[2]), "...a socket that is not listening: ignored")
ok(n.wait_log(r'ignoring "abc"') and n.wait_log(r'ignoring "1"'), "...garbage and stdio numbers: ignored")
early.settimeout(5)
ok(early.recv(4096).startswith(b"HTTP/1.1 200 OK"), "a connection queued on the socket before start is answered")
early.close()
keep.close(); drop.close(); plain.close()
is_(n.get("/", host="x", port=kport).body, b"n\n", "the adopted socket serves once the test's own copy is closed")
try:
    so.create_connection(("127.0.0.1", dport), timeout=2).close()
    refused = False
except OSError:
    refused = True
ok(refused, "the closed one refuses connections")
n.stop()

bad = [l for l in p.error_log().splitlines()
       if re.search(r"killed by signal|\[(alert|emerg)\]", l) and "binary upgrade: the new master" not in l]
is_(bad, [], "no crash and no alert besides the ends of the new masters")
done_testing()
