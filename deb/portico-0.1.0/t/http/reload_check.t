#!/usr/bin/env python3
# The reload's check runs in a child process: whatever the parse does, the master is not
# in it. A stand-in for libconfig's parse (t/lib/libconfig_shim.so, preloaded) exits with
# code 2 as libconfig's scanner does on an unreadable @include, or never returns as it does
# on a FIFO, when the text holds "#shim:exit" or "#shim:hang". Then: the master logs why
# the reload failed and serves on with the same workers; while a check hangs, the master
# still replaces a killed worker and still stops on TERM; a check over its 10 s deadline
# is killed; a HUP during a check has the file checked again when it ends.
import os, re, signal, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 120)

shim = os.path.join(os.path.dirname(os.path.dirname(portico_bin())), "t", "lib",
                    "libconfig_shim.so")
if not os.path.isfile(shim):
    skip_all("no %s (make check builds it)" % shim)
env = dict(os.environ, LD_PRELOAD=shim)
# a sanitizer build wants its runtime first in the list of libraries; the stand-in only
# forwards calls, so the order does not matter here
env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"


def conf(body, mark=""):
    return standard_config(workers=2, routes="""routes = (
  { path_prefix = "/"; return = { status = 200; body = "%s\\n"; }; }
);""" % body) + mark + "\n"


def body(q):
    try:
        return q.get("/", host="x", timeout=3).body
    except (OSError, HTTPError) as e:
        return "%s: %s" % (type(e).__name__, e)


def checker(q):
    """The pid of q's running configuration check (a child of the master that says so)."""
    for pid in proc_children(q.pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if f.read().startswith(b"portico: configuration check"):
                    return pid
        except OSError:
            pass
    return None


FAILED = r"\[error\] %d#master: reload failed, keeping the running configuration: "

p = Portico(conf("v1"), env=env)
workers = p.wait_workers(2)
is_(body(p), b"v1\n", "v1 answers (the stand-in passes a normal text on)")

# --- the parse exits (libconfig's exit(2)) --------------------------------------------------
p.write_config(conf("v2", "#shim:exit"))
mark = p.log_mark()
p.signal(signal.SIGHUP)
m = p.wait_log((FAILED + r"the check of %s \(pid (\d+)\) exited with code 2$")
               % (p.pid, re.escape(p.conf_path)), 5, start=mark)
ok(m, "a parse that exits: the reload fails, the log says the check exited with code 2")
ok(m and int(m.group(1)) not in (p.pid,) + tuple(workers), "...the check was a process of its own")
is_(body(p), b"v1\n", "...v1 still answers")
ok(p.running(), "...the master (pid %d) still runs" % p.pid)
is_(p.wait_workers(2), workers, "...with the same workers")

# --- the parse hangs: the master supervises meanwhile; the check is killed at its deadline ----
p.write_config(conf("v2", "#shim:hang"))
mark = p.log_mark()
t0 = time.monotonic()
p.signal(signal.SIGHUP)
c = wait_for(lambda: checker(p), 5)
ok(c, "a parse that hangs: the check process runs (pid %s)" % c)
os.kill(workers[0], signal.SIGKILL)
m = p.wait_log(r"worker (\d+) started \(pid (\d+), generation 1\)", 5, start=mark)
new = p.wait_workers(2, exclude=[workers[0]])
ok(m and int(m.group(2)) in new and c not in new and proc_ppid(int(m.group(2))) == p.pid,
   "while the check hangs, a worker killed with -9 is replaced (%s -> %s)" % (workers, new))
is_(body(p), b"v1\n", "...and v1 answers")
ok(checker(p) == c, "...while the check still hangs")

# a HUP during the check: the file is checked again once this check ends (by its deadline)
p.write_config(conf("v3"))
p.signal(signal.SIGHUP)
ok(p.wait_log(r"reload: a check of the configuration is running; the file is checked again "
              r"when it ends", 5, start=mark), "a HUP during the check: checked again later")
m = p.wait_log((FAILED + r"the check of %s \(pid %d\) did not finish within 10000 ms: killed$")
               % (p.pid, re.escape(p.conf_path), c), 20, start=mark)
ok(m, "the hanging check is killed at its deadline, and the log says so")
ok(wait_for(lambda: not proc_alive(c), 5), "...the check process is gone")
ok(wait_for(lambda: body(p) == b"v3\n", 5), "...then the file is checked again: v3 loads")
ok(p.wait_log(r"reload finished", 5, start=mark), "...reload finished")

# --- a check killed by someone else -------------------------------------------------------
p.write_config(conf("v4", "#shim:hang"))
mark = p.log_mark()
p.signal(signal.SIGHUP)
c = wait_for(lambda: checker(p), 5)
ok(c, "another hanging check (pid %s)" % c)
if c:
    os.kill(c, signal.SIGKILL)
ok(p.wait_log((FAILED + r"the check of %s \(pid %d\) killed by signal 9 \(SIGKILL\)$")
              % (p.pid, re.escape(p.conf_path), c or 0), 5, start=mark),
   "a check killed by a signal: the reload fails, the log says how")
is_(body(p), b"v3\n", "...v3 still answers")

# --- TERM while a check hangs: the master stops at once, the check with it -----------------
p.write_config(conf("v5", "#shim:hang"))
p.signal(signal.SIGHUP)
c = wait_for(lambda: checker(p), 5)
ok(c, "a third hanging check (pid %s)" % c)
p.signal(signal.SIGTERM)
st = p.wait_exit(10)
is_(st, 0, "TERM while the check hangs: the master exits (status 0)")
ok(c and wait_for(lambda: not proc_alive(c), 5), "...and the check process is gone")
done_testing()
