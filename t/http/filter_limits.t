#!/usr/bin/env python3
# Shared limits: rate limits exact across 2 workers (burst requests pass, burst + 1 gets
# 429 with Retry-After, wherever it lands; then one more per interval), keyed by the
# client address or a request variable, in a route or filters.global; connection limits
# in the accept pipeline (the PROXY protocol's client address), given back on close and
# when a worker dies; route restrictions (max_body_size up and down, max_headers) and the
# global methods list (405 with Allow); log lines, counters, -t errors.
import os, re, signal, socket, subprocess, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from filtertest import *

if not os.path.exists(TEST_BIN):
    skip_all("no test binary (t/portico-test; make check builds it)")

CONF = """workers = 2;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
access_log = { path = "{tmp}/access.log"; };
limits = { client_header_timeout_ms = 5000; keepalive_timeout_ms = 120000; max_body_size = 1000; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; },
              { name = "pp"; address = "127.0.0.1:{port2}"; proxy_protocol = true; } );
filters = {
  rate_limits = (
    { name = "per-ip"; key = "$remote_addr"; rate = "1r/h"; burst = 6; },
    { name = "refill"; key = "$http_x_key"; rate = "2r/s"; burst = 1; status = 503; },
    { name = "api"; key = "key:$arg_key"; rate = "1r/m"; burst = 2; memory = 65536; },
    { name = "global"; key = "$http_x_global"; rate = "1r/m"; burst = 1; }
  );
  conn_limits = ( { name = "per-client"; key = "$remote_addr"; max = 3; listeners = [ "pp" ]; } );
  global = { rate_limit = "global"; methods = [ "GET", "HEAD", "POST" ]; };
};
routes = (
  { path_prefix = "/_counters"; test_counters = true; },
  { path_prefix = "/limited/"; rate_limit = "per-ip"; return = { body = "limited\\n"; }; },
  { path_prefix = "/refill/"; rate_limit = "refill"; return = { body = "refill\\n"; }; },
  { path_prefix = "/api/"; rate_limit = [ "api" ]; return = { body = "api\\n"; }; },
  { path_prefix = "/small/"; max_body_size = 10; return = { body = "small\\n"; }; },
  { path_prefix = "/big/"; max_body_size = 100000; return = { body = "big\\n"; }; },
  { path_prefix = "/few/"; max_headers = 3; return = { body = "few\\n"; }; },
  { path_prefix = "/"; return = { body = "open\\n"; }; }
);
"""

p = Portico(CONF, bin=TEST_BIN)
workers = p.wait_workers(2)
is_(len(workers), 2, "two workers")

# --- rate limit exact across two workers --------------------------------------------------------
# keep-alive connections until each worker holds at least four: connections made one
# after another all go to the worker first in the listener's wait queue (EPOLLEXCLUSIVE
# wakes the first idle one), so they are made from several threads at once
by_worker = {w: [] for w in workers}
extra = []
for _ in range(10):
    if all(len(v) >= 4 for v in by_worker.values()):
        break
    made, lock = [], threading.Lock()

    def opener():
        for _ in range(10):
            c = p.connect()
            c.send(build_request("GET", "/warm", "a.example"))
            with lock:
                made.append(c)
    ts = [threading.Thread(target=opener) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for c in made:
        c.read_response()
    for c, w in zip(made, conn_workers(p, made)):
        (by_worker[w] if w in by_worker and len(by_worker[w]) < 4 else extra).append(c)
ok(all(len(v) >= 4 for v in by_worker.values()),
   "keep-alive connections on both workers (%s)" % {w: len(v) for w, v in by_worker.items()})
a, b = by_worker[workers[0]], by_worker[workers[1]]
order = [a[0], b[0], a[1], b[1], a[2], b[2]]          # alternating workers

mark = p.log_mark()
got = []
for c in order:
    c.send(build_request("GET", "/limited/x", "a.example"))
    got.append(c.read_response().status)
is_(got, [200] * 6, "burst 6: six requests pass, three on each worker")
c = a[3]
c.send(build_request("GET", "/limited/x", "a.example"))
r = c.read_response()
retry = r.header("Retry-After")
is_((r.status, r.body), (429, error_body(429)), "the seventh gets 429 (on the first worker)")
ok(retry is not None and 3500 <= int(retry) <= 3600, "...with Retry-After in seconds until one fits (%s)" % retry)
c = b[3]
c.send(build_request("GET", "/limited/x", "a.example"))
is_(c.read_response().status, 429, "...and the eighth on the other worker too: one bucket for both")
c.send(build_request("GET", "/other", "a.example"))
is_(c.read_response().status, 200, "...the connection stays usable after a 429 (keep-alive)")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 429 Too Many Requests \(rate limit \"per-ip\" "
              r"\(1r/h, burst 6\) exceeded for \"127\.0\.0\.1\" \(route at line \d+\)\)", 3, mark),
   "the refusal names the limit, its rate and the key")
for c in a + b + extra:
    c.close()

# refills at the rate: 2r/s, burst 1 (keyed by a header: a bucket of its own)
H = [("X-Key", "refill-1")]
r = p.get("/refill/x", headers=H)
is_(r.status, 200, "refill (2r/s, burst 1): the first passes")
r = p.get("/refill/x", headers=H)
is_((r.status, r.header("Retry-After")), (503, "1"),
    "the next at once is refused with the limit's status (503), Retry-After: 1")
t0 = time.monotonic()
ok(wait_for(lambda: p.get("/refill/x", headers=H).status == 200, 5, 0.05),
   "...one passes again once the bucket has refilled by one")
is_(p.get("/refill/x", headers=H).status, 503, "...and only one: the next at once is refused")
is_(p.get("/refill/x", headers=[("X-Key", "refill-2")]).status, 200, "another key has its own bucket")
is_(p.get("/refill/x").status, 200, "no X-Key at all (empty key): not limited")
is_(p.get("/refill/x").status, 200, "...however often")

# a variable of the request as key; a list of limits
is_([p.get("/api/x?key=k1").status for _ in range(3)], [200, 200, 429], "key:$arg_key: burst 2 per key")
is_(p.get("/api/x?key=k2").status, 200, "...another key value, another bucket")

# global: before routing
is_(p.get("/anything", headers=[("X-Global", "g")]).status, 200, "global rate limit: the first passes")
r = p.get("/limited/x", headers=[("X-Global", "g")])
is_(r.status, 429, "...the second is refused before routing, whatever the route")

# --- global methods ------------------------------------------------------------------------------
mark = p.log_mark()
r = p.get("/x", method="DELETE")
is_((r.status, r.header("Allow")), (405, "GET, HEAD, POST"), "filters.global methods: 405 with Allow")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 405 Method Not Allowed \(method not allowed: "
              r"filters\.global allows GET, HEAD, POST\)", 3, mark), "...logged")
is_(p.get("/x", method="POST", body=b"x").status, 200, "a listed method goes on")

# --- route restrictions ------------------------------------------------------------------------
mark = p.log_mark()
r = p.get("/small/x", method="POST", body=b"x" * 11)
is_(r.status, 413, "max_body_size 10 on the route: 11 bytes by Content-Length: 413")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 413 Content Too Large \(Content-Length 11 exceeds "
              r"max_body_size 10 \(route at line \d+\)\)", 3, mark), "...logged with the route")
is_(p.get("/small/x", method="POST", body=b"x" * 10).status, 200, "10 bytes: served")
with p.connect() as c:
    c.send(b"POST /small/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 6, b"y" * 6))
    is_(c.read_response().status, 413, "...chunked: the total passes 10 while reading: 413")
is_(p.get("/big/x", method="POST", body=b"x" * 5000).status, 200,
    "max_body_size 100000 on a route: above limits.max_body_size (1000) is allowed there")
is_(p.get("/other", method="POST", body=b"x" * 5000).status, 413, "...the global limit holds elsewhere")
r = p.get("/few/x", headers=[("A", "1"), ("B", "2")])
is_(r.status, 200, "max_headers 3: Host and two more fields pass")
r = p.get("/few/x", headers=[("A", "1"), ("B", "2"), ("C", "3")])
is_(r.status, 431, "...a fourth field: 431")

# --- connection limits ----------------------------------------------------------------------------
def pp_conn(src):
    c = p.connect("port2")
    c.send(proxy_v1(src))
    return c


# three connections of one client, opened at once so that both workers take some (a
# fresh client address per try: the counts of an earlier try need not be waited out)
def open_three(src):
    out, lock = [], threading.Lock()

    def one():
        c = pp_conn(src)
        c.send(build_request("GET", "/x", "a.example"))
        r = c.read_response()
        with lock:
            out.append((c, r.status))
    ts = [threading.Thread(target=one) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


for attempt in range(20):
    CLIENT = "198.51.100.%d" % (10 + attempt)
    got = open_three(CLIENT)
    held = [c for c, st in got]
    spread = set(conn_workers(p, held))
    if len(spread) == 2:
        break
    for c in held:
        c.close()
is_([st for c, st in got], [200, 200, 200], "conn_limit max 3: three connections of %s served" % CLIENT)
ok(len(spread) == 2, "...on both workers (%d tries)" % (attempt + 1))
mark = p.log_mark()
before = counters(p).get("conn_limit:per-client", 0)
c4 = pp_conn(CLIENT)
c4.send(build_request("GET", "/x", "a.example"))
ok(c4.try_read_response() is None and c4.closed(), "a fourth connection from that client is closed "
   "in the accept pipeline, without an answer")
ok(p.wait_log(r"refused connection from %s on 127\.0\.0\.1:\d+: conn_limit \"per-client\": "
              r"3 connections for \"%s\" \(max 3\)" % (re.escape(CLIENT), re.escape(CLIENT)), 3, mark),
   "...logged with the limit and the key: the count is shared by the workers")
is_(counters(p).get("conn_limit:per-client", 0) - before, 1, "...and counted once in conn_limit:per-client")
other = pp_conn("198.51.100.8")
other.send(build_request("GET", "/x", "a.example"))
is_(other.read_response().status, 200, "another client (by PROXY protocol) is not concerned")
plain = [p.connect() for _ in range(5)]
for c in plain:
    c.send(build_request("GET", "/x", "a.example"))
ok(all(c.read_response().status == 200 for c in plain), "a listener the limit does not name is not concerned")
held[0].close()


def fourth_ok():
    c = pp_conn(CLIENT)
    c.send(build_request("GET", "/x", "a.example"))
    r = c.try_read_response()
    c.close()
    return r is not None and r.status == 200


ok(wait_for(fourth_ok, 5, 0.05), "once one closes, a new connection is let in")

# a worker killed while it holds counted connections: the master takes its counts back
held = held[1:]
victim = conn_worker(p, held[0])
mine = [c for c in held if conn_worker(p, c) == victim]
counted = len(mine) + (conn_worker(p, other) == victim)
keys = 1 + (conn_worker(p, other) == victim)
mark = p.log_mark()
os.kill(victim, signal.SIGKILL)
ok(p.wait_log(r"conn_limit \"per-client\": %d connections of a worker that is gone taken off %d keys"
              % (counted, keys), 5, mark),
   "a worker killed with %d counted connections of %s: its counts are taken back" % (len(mine), CLIENT))
p.wait_workers(2, exclude=[victim])
for c in mine:
    c.close()
survivors = [c for c in held if c not in mine]
fresh = []
for _ in range(3 - len(survivors)):
    c = pp_conn(CLIENT)
    c.send(build_request("GET", "/x", "a.example"))
    r = c.try_read_response()
    fresh.append(r.status if r else None)
is_(fresh, [200] * (3 - len(survivors)), "...so the client gets its %d connections back" % (3 - len(survivors)))
for c in survivors + plain + [other]:
    c.close()

# --- counters ------------------------------------------------------------------------------------
cs = counters(p)
is_((cs.get("rate_limit:per-ip"), cs.get("rate_limit:api"), cs.get("rate_limit:global")), (2, 1, 1),
    "rate limit refusals counted per limit")
cmp_ok(cs.get("rate_limit:refill", 0), ">=", 2, "...the refill limit's too (the waits in between count)")
cmp_ok(cs.get("conn_limit:per-client", 0), ">=", 1,
       "connection refusals counted (a retry above may have met the limit again)")
is_((cs.get("restrict:max_body_size"), cs.get("restrict:max_headers"), cs.get("restrict:methods")),
    (1, 1, 1), "restriction refusals counted")

# --- reloads ----------------------------------------------------------------------------------------
mark = p.log_mark()
old_workers = p.worker_pids()
p.reload(CONF)
ok(p.wait_log(r"reload finished", 10, mark), "reload with the same configuration")
p.wait_workers(2, exclude=old_workers)
r = p.get("/limited/x")
is_((r.status, r.header("Retry-After") is not None), (429, True),
    "the rate limit's zone is kept across the reload: the bucket is still empty")
is_(counters(p).get("rate_limit:per-ip"), 3, "...and the counter goes on (2 before, 3 now)")
mark = p.log_mark()
p.reload(CONF.replace('rate = "1r/h"; burst = 6;', 'rate = "1r/mn"; burst = 6;'))
ok(p.wait_log(r"reload failed, keeping the running configuration: .*portico\.conf:\d+: key "
              r"'filters\.rate_limits\[0\]\.rate': \"1r/mn\": expected", 10, mark),
   "a reload with a bad rate fails with file:line and the key")
is_(p.get("/limited/x").status, 429, "...and the running configuration goes on")
p.write_config(CONF)

# --- -t errors --------------------------------------------------------------------------------------
def bad(a, b_, err, what):
    assert a in CONF, a
    path = os.path.join(p.tmp, "bad.conf")
    p.write_config(CONF.replace(a, b_, 1), path)
    res = subprocess.run([TEST_BIN, "-t", "-c", path], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    ok(res.returncode == 1 and re.search(err, out), "-t: %s" % what) or diag(out)


bad('rate = "2r/s"', 'rate = "2/s"', r"key 'filters\.rate_limits\[1\]\.rate': \"2/s\": expected N requests per "
    r"second, minute or hour", "a bad rate")
bad('rate = "1r/m"; burst = 2;', 'rate = "1r/m"; burst = 0;', r"0 is out of range 1\.\.1000000", "burst 0")
bad('key = "key:$arg_key"', 'key = "key:$args_key"', r"unknown variable \$args_key", "an unknown variable")
bad('rate_limit = "refill"', 'rate_limit = "refil"', r"key 'routes\[2\]\.rate_limit': \"refil\": no rate limit "
    r"has that name", "an unknown rate limit")
bad('key = "$remote_addr"; max = 3', 'key = "$http_x"; max = 3',
    r"a connection is counted before any request: only \$remote_addr and \$listener", "a request variable in a conn limit key")
bad('listeners = [ "pp" ]', 'listeners = [ "ppp" ]', r"no listener is named \"ppp\"", "an unknown listener")
bad('memory = 65536', 'memory = 1024', r"1024 is out of range 65536\.\.", "memory too small")
bad('max_headers = 3', 'max_headers = 0', r"0 is out of range 1\.\.10000", "max_headers 0")
bad('methods = [ "GET", "HEAD", "POST" ]', 'methods = [ "GET", "GET" ]',
    r"key 'filters\.global\.methods\[1\]': \"GET\" is listed twice", "a method listed twice")
done_testing()
