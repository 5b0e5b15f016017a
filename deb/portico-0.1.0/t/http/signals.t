#!/usr/bin/env python3
# Signals: a worker killed with SIGKILL is logged and replaced while service goes on;
# QUIT lets requests in flight finish (half-sent head, slowly read large response), closes
# the listeners and idle connections, exits 0 and removes the pid file; drain_timeout_ms
# bounds it; TERM and INT stop fast.
import os, signal, socket, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

# The return module takes bodies up to 1 MiB; several pipelined requests for it keep a
# response in flight well beyond what the kernel buffers on loopback (~4 MiB) hold.
BIG = 1000000
PIPELINED = 8
LIMITS = ("limits = { client_header_timeout_ms = 10000; client_body_timeout_ms = 10000; "
          "keepalive_timeout_ms = 30000; send_timeout_ms = 10000; drain_timeout_ms = %d; "
          "max_header_size = 4096; max_body_size = 1000; };")
BIG_BODY = ("0123456789abcdef" * (BIG // 16 + 1))[:BIG].encode()
ROUTES = """routes = (
  { path_prefix = "/big"; return = { status = 200; body = "%s"; }; },
  { path_prefix = "/"; return = { status = 200; body = "ok\\n"; }; }
);""" % BIG_BODY.decode()


def conf(drain_ms=8000):
    return standard_config(limits=LIMITS % drain_ms, routes=ROUTES)


def refused_now(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


p = Portico(conf(), start_timeout=20)

# --- a worker killed with SIGKILL --------------------------------------------------------
workers = p.wait_workers(2)
is_(len(workers), 2, "two workers")
victim = workers[0]
mark = p.log_mark()
os.kill(victim, signal.SIGKILL)
results = []
for i in range(20):
    try:
        r = p.get("/", host="x", timeout=5)
        results.append((r.status, r.body))
    except (OSError, HTTPError) as e:
        results.append(repr(e))
is_(results, [(200, b"ok\n")] * 20, "requests right after the kill all succeed")
m = p.wait_log(r"(?m)^(?=.*\b%d\b)(?=.*(?:exited|killed by signal)).*$" % victim, 5.0, start=mark)
ok(m, "the error log says the worker %d exited / was killed by signal" % victim)
if m:
    like(m.group(0), r"\b9\b|KILL", "...naming the signal (9/KILL): %s" % m.group(0).strip())
else:
    skip("no log line", 1)
now = p.wait_workers(2, timeout=5, exclude=[victim])
ok(len(now) == 2 and victim not in now, "a new worker replaces it")
ok(all(proc_ppid(w) == p.pid for w in now), "the new worker is the master's child")
good = sum(1 for _ in range(50) if p.get("/", host="x").status == 200)
is_(good, 50, "50 more requests succeed")

# --- QUIT: graceful --------------------------------------------------------------------------
# (a) a client that has sent half of a request head
half = p.connect(timeout=10)
r = half.request("GET", "/", host="x")
is_((r.status, r.body), (200, b"ok\n"), "keep-alive connection established")
half.send(b"GET /after HTTP/1.1\r\nHost: x\r\n")
# (b) a client reading large responses slowly (8 pipelined requests for 1 MB each)
slow = p.connect(timeout=10, rcvbuf=16384)
slow.send(build_request("GET", "/big", "x") * PIPELINED)
first = b""
while len(first) < 256 * 1024:
    d = slow.sock.recv(16384)
    if not d:
        break
    first += d
    time.sleep(0.005)
# (c) an idle keep-alive connection
idle = p.connect(timeout=10)
r = idle.request("GET", "/", host="x")
time.sleep(0.3)

t_quit = time.monotonic()
p.signal(signal.SIGQUIT)
ok(wait_for(lambda: refused_now(p.port("port")), 4.0, 0.05), "QUIT: the listener is closed, new connections are refused")
ok(wait_for(lambda: refused_now(p.port("port2")), 4.0, 0.05), "QUIT: the other listener too")
try:
    data = idle.read_until_close(timeout=4)
    is_(data, b"", "QUIT: an idle keep-alive connection is closed without a byte")
except HTTPError as e:
    ok(False, "QUIT: an idle keep-alive connection is closed")
    diag(str(e))

half.send(b"X-End: 1\r\n\r\n")
try:
    r = half.read_response()
    is_((r.status, r.body), (200, b"ok\n"), "QUIT: the half-sent request completes and is answered")
    ok(half.closed(3.0), "QUIT: ...then its connection is closed")
except HTTPError as e:
    ok(False, "QUIT: the half-sent request is answered")
    diag(str(e))
    skip("no response", 1)

# The rest, at full speed now: the response in flight at QUIT arrives whole, and so does
# every further one the server starts; it may close between responses, never inside one.
ok(first.startswith(b"HTTP/1.1 200 "), "QUIT: the large response had started before QUIT")
slow.buf = bytearray(first)
complete, broken = 0, None
while complete < PIPELINED:
    try:
        r = slow.read_response(timeout=10)
    except ConnectionClosed as e:
        if e.data:
            broken = "closed inside response %d after %d bytes" % (complete + 1, len(e.data))
        break
    except HTTPError as e:
        broken = str(e)
        break
    if (r.status, len(r.body)) != (200, BIG) or r.body != BIG_BODY:
        broken = "response %d: %d, %d bytes" % (complete + 1, r.status, len(r.body))
        break
    complete += 1
ok(broken is None and complete >= 1,
   "QUIT: %d pipelined 1 MB responses arrived whole, none cut (%s)" % (complete, broken or "ok"))

status = p.wait_exit(10)
is_(status, 0, "QUIT: the master exits 0")
ok(not os.path.exists(p.pid_path), "QUIT: the pid file is removed")
ok(wait_for(lambda: not any(proc_alive(w) for w in p._known_workers), 3.0), "QUIT: no worker left")

# --- drain_timeout_ms bounds a graceful stop ------------------------------------------------
p = Portico(conf(drain_ms=1000), start_timeout=20)
stuck = p.connect(timeout=10)
stuck.request("GET", "/", host="x")
stuck.send(b"GET / HTTP/1.1\r\nHost: x\r\n")       # never completed
time.sleep(0.3)
p.wait_workers(2)
t0 = time.monotonic()
p.signal(signal.SIGQUIT)
status = p.wait_exit(8)                 # the stuck head itself would time out after 10 s
elapsed = time.monotonic() - t0
is_(status, 0, "QUIT with a stuck client: exit 0, before client_header_timeout_ms (10 s) ends the request")
cmp_ok(elapsed, ">=", 0.8, "QUIT with a stuck client: not before drain_timeout_ms 1000 (%.2fs)" % elapsed)
ok(stuck.closed(2.0), "the stuck client's connection is closed")
ok(wait_for(lambda: not any(proc_alive(w) for w in p._known_workers), 3.0), "no worker left")

# --- TERM and INT: fast ------------------------------------------------------------------------
for sig in (signal.SIGTERM, signal.SIGINT):
    name = signal.Signals(sig).name
    p = Portico(conf(), start_timeout=20)
    workers = p.wait_workers(2)
    c = p.connect(timeout=10)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")          # in flight, never completed
    time.sleep(0.2)
    t0 = time.monotonic()
    p.signal(sig)
    status = p.wait_exit(6)             # a graceful stop would wait drain_timeout_ms (8 s)
    elapsed = time.monotonic() - t0
    ok(status is not None, "%s: the master exits without waiting for the request in flight (%.2fs)" % (name, elapsed))
    ok(wait_for(lambda: not any(proc_alive(w) for w in workers), 2.0), "%s: workers gone" % name)
    ok(c.closed(2.0), "%s: client connections closed" % name)
    ok(refused_now(p.port("port")), "%s: nothing listens any more" % name)

done_testing()
