#!/usr/bin/env python3
# SIGHUP reload: a changed config answers within a second, new workers replace the old
# ones, idle keep-alive connections of old workers are closed, an in-flight request
# finishes, zero failed requests under continuous load across three reloads, a broken
# config keeps the old one running, a listener added by a reload answers.
import collections, os, re, signal, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

# Long keep-alive timeout: an idle connection closed here was closed by the reload.
LIMITS = BASE_LIMITS.replace("client_header_timeout_ms = 1000", "client_header_timeout_ms = 5000").replace(
    "keepalive_timeout_ms = 2000", "keepalive_timeout_ms = 30000")


def conf(body, workers=2, extra_listener=""):
    c = standard_config(workers=workers, limits=LIMITS, routes="""routes = (
  { path_prefix = "/"; return = { status = 200; body = "%s\\n"; }; }
);""" % body)
    if extra_listener:
        c = c.replace('{ name = "other"; address = "127.0.0.1:{port2}"; }',
                      '{ name = "other"; address = "127.0.0.1:{port2}"; },\n  ' + extra_listener)
    return c


errors = []


def body_of(port="port"):
    """Body of GET / on a fresh connection; a failure is recorded (and asserted on at the
    end of each phase), not raised, so one bad answer does not end the script."""
    try:
        return p.get("/", host="x", port=port, timeout=3).body
    except (OSError, HTTPError) as e:
        errors.append("%s: %s" % (type(e).__name__, e))
        return None


def no_errors(what):
    is_(len(errors), 0, "%s: no request failed" % what)
    for e in errors[:5]:
        diag("  " + e)
    del errors[:]


p = Portico(conf("v1"))
old = p.wait_workers(2)
is_(len(old), 2, "two workers")
is_(p.get("/").body, b"v1\n", "v1 answers")

# An idle keep-alive connection on an old worker, and a request in flight (half a head).
idle = p.connect()
r = idle.request("GET", "/", host="x")
inflight = p.connect()
r0 = inflight.request("GET", "/", host="x")
inflight.send(b"GET /inflight HTTP/1.1\r\nHost: x\r\n")
time.sleep(0.2)

# --- reload to v2 ------------------------------------------------------------------------------
p.write_config(conf("v2"))
t_hup = time.monotonic()
mark = p.log_mark()
p.signal(signal.SIGHUP)
seen = wait_for(lambda: body_of() == b"v2\n", 10.0, 0.01)
ok(seen, "HUP: new connections get v2 (after %.2fs)" % (time.monotonic() - t_hup))
# Once every old worker has begun to drain, it has closed its listening sockets: from then
# on nothing but the new generation can take a connection.
ok(all(p.wait_log(r"%d#worker \d+: gracefully stopping" % w, 10.0, mark) for w in old),
   "HUP: the old workers stop accepting")
bodies = collections.Counter(body_of() for _ in range(30))
is_(dict(bodies), {b"v2\n": 30}, "...after which every new request gets v2")

inflight.send(b"X-Late: 1\r\n\r\n")
try:
    r = inflight.read_response()
    ok(r.status == 200 and r.body in (b"v1\n", b"v2\n"), "a request in flight during HUP is answered (%r)" % r.body)
except HTTPError as e:
    ok(False, "a request in flight during HUP is answered")
    diag(str(e))

try:
    data = idle.read_until_close(timeout=4)
    is_(data, b"", "an idle keep-alive connection of an old worker is closed, silently")
except HTTPError as e:
    ok(False, "an idle keep-alive connection of an old worker is closed within 4 s")
    diag(str(e))

no_errors("reload to v2")
new = p.wait_workers(2, timeout=8, exclude=old)
ok(len(new) == 2 and not set(new) & set(old), "two new workers replace the old ones")
ok(wait_for(lambda: not any(proc_alive(w) for w in old), 8.0), "old workers exit (drain_timeout_ms 5000)")

# --- broken config: old config keeps serving, workers unchanged ------------------------------
workers_before = p.wait_workers(2)
good_text = p.conf_text
broken = conf("v3").replace(
    "limits = {", "limits = { bogus_limit = 1;", 1)
p.write_config(broken)
line = [i for i, l in enumerate(p.conf_text.split("\n"), 1) if "bogus_limit" in l][0]
mark = p.log_mark()
p.signal(signal.SIGHUP)
m = p.wait_log(r"%s:%d:.*bogus_limit" % (re.escape(p.conf_path), line), 5.0, start=mark)
ok(m, "HUP with a broken config: the error log names %s:%d and the key" % (os.path.basename(p.conf_path), line))
time.sleep(0.5)
is_(body_of(), b"v2\n", "broken config: the old config still answers")
is_(p.worker_pids(), workers_before, "broken config: the same workers")
ok(p.running(), "broken config: master still running")

# A good config after the broken one is taken again.
p.write_config(conf("v3"))
p.signal(signal.SIGHUP)
ok(wait_for(lambda: body_of() == b"v3\n", 5.0), "a fixed config is loaded by the next HUP")

# --- a listener added by a reload, and a different worker count ------------------------------
def try_body(port):
    """Like body_of, for a port that may not listen yet: a failure is not recorded."""
    try:
        return p.get("/", host="x", port=port, timeout=3).body
    except (OSError, HTTPError):
        return None


before = p.worker_pids()
p.write_config(conf("v4", workers=3, extra_listener='{ name = "added"; address = "127.0.0.1:{port3}"; }'))
p.signal(signal.SIGHUP)
ok(wait_for(lambda: try_body("port3") == b"v4\n", 5.0), "a listener added by the reload answers")
ok(wait_for(lambda: body_of("port2") == b"v4\n", 3.0), "a listener kept by the reload answers with the new config")
is_(len(p.wait_workers(3, timeout=8, exclude=before)), 3, "workers = 3 after the reload: three workers")
no_errors("reloads to v3 and v4")

# --- zero failed requests under continuous load across three reloads --------------------------
p.write_config(conf("w0"))
p.signal(signal.SIGHUP)
ok(wait_for(lambda: body_of("port") == b"w0\n", 5.0), "load test config w0 loaded")
p.wait_workers(2, timeout=8)


class Load:
    ALLOWED = {("w%d\n" % i).encode() for i in range(4)}

    def __init__(self, fresh=3, keepalive=2):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0
        self.retries = 0
        self.failures = []
        self.bodies = collections.Counter()
        self.threads = [threading.Thread(target=self.fresh_loop, daemon=True) for _ in range(fresh)]
        self.threads += [threading.Thread(target=self.keepalive_loop, daemon=True) for _ in range(keepalive)]
        for t in self.threads:
            t.start()

    def record(self, r, how):
        with self.lock:
            if r.status == 200 and r.body in self.ALLOWED:
                self.done += 1
                self.bodies[r.body] += 1
            else:
                self.failures.append("%s: %d %r" % (how, r.status, r.body))

    def fail(self, how, e):
        with self.lock:
            self.failures.append("%s: %s: %s" % (how, type(e).__name__, e))

    def fresh_loop(self):
        req = build_request("GET", "/", "x", ["Connection: close"])
        while not self.stop.is_set():
            try:
                with p.connect(timeout=5) as c:
                    c.send(req)
                    self.record(c.read_response(), "fresh connection")
            except (OSError, HTTPError) as e:
                self.fail("fresh connection", e)

    def keepalive_loop(self):
        req = build_request("GET", "/", "x")
        c, served = None, 0
        while not self.stop.is_set():
            try:
                if c is None:
                    c, served = p.connect(timeout=5), 0
                c.send(req)
                r = c.read_response()
            except ConnectionClosed as e:
                if served and not e.data:
                    # The server closed this idle connection before reading the request:
                    # the one case a client may retry.
                    with self.lock:
                        self.retries += 1
                    c.close()
                    c = None
                    continue
                self.fail("keep-alive (request %d on the connection)" % (served + 1), e)
                c.close()
                c = None
                continue
            except (OSError, HTTPError) as e:
                self.fail("keep-alive (request %d on the connection)" % (served + 1), e)
                if c:
                    c.close()
                c = None
                continue
            served += 1
            self.record(r, "keep-alive")
            if "close" in (r.header("Connection") or "").lower():
                c.close()
                c = None
        if c:
            c.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


load = Load()
time.sleep(0.7)
generations = [p.worker_pids()]
for i in (1, 2, 3):
    p.write_config(conf("w%d" % i))
    p.signal(signal.SIGHUP)
    wait_for(lambda: load.bodies[("w%d\n" % i).encode()] > 20, 3.0)
    time.sleep(0.5)
    generations.append(p.worker_pids())
time.sleep(0.5)
load.finish()

is_(len(load.failures), 0, "three HUPs under load: zero failed requests (%d done, %d idle retries)"
    % (load.done, load.retries))
for f in load.failures[:5]:
    diag("  " + f)
cmp_ok(load.done, ">", 0, "the load did requests (%d)" % load.done)
is_(sorted(load.bodies), sorted(Load.ALLOWED), "every generation answered (%s)"
    % ", ".join("%s=%d" % (k.strip().decode(), v) for k, v in sorted(load.bodies.items())))
ok(wait_for(lambda: body_of("port") == b"w3\n", 5.0), "the last config answers")
all_old = set(w for g in generations[:-1] for w in g)
ok(wait_for(lambda: not any(proc_alive(w) for w in all_old), 8.0), "every old worker has exited")
is_(len(p.worker_pids()), 2, "two workers in the end")

p.stop()
is_(p.exit_status, 0, "QUIT: master exits 0")
done_testing()
