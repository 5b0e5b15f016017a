#!/usr/bin/env python3
# Keep-alive across reloads: a draining worker does not close an idle keep-alive connection
# while its client may be sending the next request. That request is answered with
# Connection: close; connections idle past drain_idle_grace_ms are closed, spread over
# drain_close_spread_ms. Under keep-alive load, 20 HUPs fail no request (the client never
# sees a connection closed under a request it sent, which it could only retry).
import collections, os, signal, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *


def conf(body, grace=3000, spread=500):
    return """
workers = 2;
limits = { keepalive_timeout_ms = 60000; drain_timeout_ms = 10000;
           drain_idle_grace_ms = %d; drain_close_spread_ms = %d; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
routes = ( { path_prefix = "/"; return = { status = 200; body = "%s\\n"; }; } );
""" % (grace, spread, body)


def body_of(p):
    try:
        return p.get("/").body
    except (OSError, HTTPError):
        return None


p = Portico(conf("g0"))
p.wait_workers(2, timeout=8)

# --- an idle connection of a draining worker ------------------------------------------------
idle_used = p.connect(timeout=5)
r = idle_used.request("GET", "/")
is_(r.status, 200, "a keep-alive connection to the first generation")
idle_left = p.connect(timeout=5)
r = idle_left.request("GET", "/")
old = p.worker_pids()
mark = p.log_mark()
p.write_config(conf("g1"))
p.signal(signal.SIGHUP)
ok(p.wait_log(r"gracefully stopping", 5, mark), "HUP: the old workers drain")
r = idle_used.request("GET", "/again")
is_((r.status, r.body, r.header("Connection")), (200, b"g0\n", "close"),
    "a request on an idle connection of a draining worker, within the grace: answered, Connection: close")
ok(idle_used.closed(3), "...then that connection is closed")
ok(idle_left.closed(8), "a connection left idle is closed by the draining worker (grace + spread)")
ok(wait_for(lambda: not any(proc_alive(w) for w in old), 8), "...and the old workers exit")

# --- 20 HUPs under keep-alive load ----------------------------------------------------------
class Load:
    def __init__(self, n):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0
        self.reconnects = 0
        self.failures = []
        self.bodies = collections.Counter()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def loop(self):
        req = build_request("GET", "/", "x")
        c, served = None, 0
        while not self.stop.is_set():
            try:
                if c is None:
                    c, served = p.connect(timeout=10), 0
                c.send(req)
                r = c.read_response(timeout=10)
            except (OSError, HTTPError) as e:
                # any error counts, also a connection closed before the request was read:
                # that is the race this test is about
                with self.lock:
                    self.failures.append("request %d on its connection: %s: %s"
                                         % (served + 1, type(e).__name__, str(e)[:80]))
                if c:
                    c.close()
                c = None
                continue
            served += 1
            with self.lock:
                if r.status == 200 and r.body.startswith(b"g"):
                    self.done += 1
                    self.bodies[r.body] += 1
                else:
                    self.failures.append("%d %r" % (r.status, r.body[:40]))
            if "close" in (r.header("Connection") or "").lower():
                with self.lock:
                    self.reconnects += 1
                c.close()
                c = None
        if c:
            c.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(20)


load = Load(20)
time.sleep(0.5)
for i in range(2, 22):
    p.write_config(conf("g%d" % i))
    p.signal(signal.SIGHUP)
    time.sleep(0.5)
time.sleep(0.5)
load.finish()
is_(len(load.failures), 0, "20 HUPs in 10 s under keep-alive load (20 clients): zero failed requests "
    "(%d done, %d connections ended by Connection: close)" % (load.done, load.reconnects))
for f in load.failures[:5]:
    diag("  " + f)
cmp_ok(load.done, ">", 500, "the load did many requests")
cmp_ok(load.reconnects, ">", 0, "draining workers ended keep-alive connections with Connection: close")
ok(wait_for(lambda: body_of(p) == b"g21\n", 5), "the last config answers")

p.stop()
is_(p.exit_status, 0, "QUIT: master exits 0")
done_testing()
