#!/usr/bin/env python3
# Service manager notifications (sd_notify protocol, for systemd Type=notify): with
# NOTIFY_SOCKET set, the master reports READY=1 with its pid once its workers run,
# RELOADING=1 then READY=1 around a reload (a failed one too), MAINPID= of the new master
# after a binary upgrade (and nothing that says "stopping" from the old master as it
# quits), and STOPPING=1 on QUIT. Without NOTIFY_SOCKET nothing changes (every other test).
import os, signal, socket, sys, tempfile, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 60)

sockdir = tempfile.mkdtemp(prefix="portico-notify-")
path = os.path.join(sockdir, "notify.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(path)
os.chmod(sockdir, 0o755)
os.chmod(path, 0o777)
ns.settimeout(0.2)


def messages(timeout=10.0, until=None):
    """(sender-visible) messages as lists of lines, read for up to timeout seconds or
    until one contains the line `until`."""
    out, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            m = ns.recv(4096).decode()
        except socket.timeout:
            continue
        out.append(m.split("\n"))
        if until and until in out[-1]:
            break
    return out


def conf(body):
    return standard_config(workers=1, routes="""routes = (
  { path_prefix = "/"; return = { status = 200; body = "%s\\n"; }; }
);""" % body)


p = Portico(conf("one"), env=dict(os.environ, NOTIFY_SOCKET=path))
m = messages(until="READY=1")
ok(m and "READY=1" in m[-1] and "MAINPID=%d" % p.pid in m[-1], "start: READY=1 with MAINPID=<master> (%r)" % m)
is_(p.get("/", host="x").body, b"one\n", "...and it serves by then")

p.write_config(conf("two"))
p.signal(signal.SIGHUP)
m = messages(until="READY=1")
is_([x for x in m], [["RELOADING=1"], ["READY=1"]], "HUP: RELOADING=1, then READY=1")

p.write_config("workers = 1;\nnonsense = 1;\n")
p.signal(signal.SIGHUP)
m = messages(until="READY=1")
is_(m, [["RELOADING=1"], ["READY=1"]], "a failed reload: RELOADING=1, then READY=1 (the old configuration serves)")

# binary upgrade: the new master announces itself; the old one quits without STOPPING=1
p.write_config(conf("three"))
A = p.pid
os.kill(A, signal.SIGUSR2)
m = messages(until="READY=1")
ok(wait_for(lambda: os.path.exists(p.pid_path + ".oldbin"), 3), "USR2: an upgrade starts")
B = int(open(p.pid_path).read())
ok(m and "MAINPID=%d" % B in m[-1] and "READY=1" in m[-1], "...the new master sends READY=1 with MAINPID=<its pid> (%r)" % m)
os.kill(A, signal.SIGQUIT)
p.wait_exit(10)
m = messages(1.0)
is_(m, [], "the old master quits without STOPPING=1")
os.kill(B, signal.SIGQUIT)
m = messages(until="STOPPING=1")
is_(m, [["STOPPING=1"]], "QUIT to the new master: STOPPING=1")
ok(wait_for(lambda: not proc_alive(B), 10), "...and it exits")

import shutil
shutil.rmtree(sockdir, ignore_errors=True)
done_testing()
