#!/usr/bin/env python3
# The module API, driven by the test module (modules/test_module.c, only in the test
# binary t/portico-test): a handler in every phase, each suspending (PT_AGAIN) and resumed
# from a timer; a refusal from the access phase; a header filter; a body filter that turns
# 1 KiB into 1 MiB for a slow reader, with back-pressure; filters switched on per request,
# so a route without them still relays its body by splice.
import hashlib, os, re, socket, subprocess, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

BIN = os.environ.get("PORTICO_TEST_BIN") or os.path.join(srcdir(), "t", "portico-test")
if not os.path.exists(BIN):
    skip_all("no test binary (t/portico-test; make check builds it)")

small = Origin.fixed(body=b"k" * 1024)
big = Origin.large(4 << 20)
echo = Origin.echo()
routes = [
    proxy_route("echo", "/edit/", test='{ path = "/rewritten"; }'),
    proxy_route("small", "/grow/", test="{ expand = 1024; }"),
    proxy_route("small", "/slowphases/", test="{ suspend_ms = 30; }"),
    proxy_route("small", "/deny/", test="{ deny = true; suspend_ms = 10; }"),
    proxy_route("big", "/big-filtered/", test="{ }"),
    proxy_route("big", "/big/"),
    proxy_route("small", "/"),
]
p = Portico(proxy_config([upstream("small", [small.address]), upstream("big", [big.address]),
                          upstream("echo", [echo.address])], routes), bin=BIN)
w = the_worker(p)


def expected(n):
    pat = bytes((ord("a") + i % 26) for i in range(16384))
    h = hashlib.sha256()
    left = n
    while left:
        k = min(left, len(pat))
        h.update(pat[:k])
        left -= k
    return h.hexdigest()


# --- every phase, each suspended and resumed from a timer ----------------------------------
mark = p.log_mark()
r = p.get("/slowphases/x")
is_((r.status, r.body, r.header("X-Test-Phases")), (200, b"k" * 1024, "headers,access,precontent"),
    "each phase suspends (PT_AGAIN) and a timer resumes it: the response comes, the header "
    "filter saw the three phases in order")
ok(p.wait_log(r"test module: GET /slowphases/x: phases headers,access,precontent, resumed 3 times, "
              r"status 200", 3, mark), "the log phase ran: 3 resumptions")

r = p.get("/deny/x")
is_((r.status, r.body), (403, error_body(403)), "the access phase refuses: 403 from the core")
ok(p.wait_log(r"test module: GET /deny/x: phases headers,access, resumed 1 times, status 403", 3, mark),
   "...after the headers phase suspended once; the log phase runs for refusals too")

# a client leaving while a phase is suspended: the timer is cancelled, nothing breaks
c = p.connect()
c.send(build_request("GET", "/slowphases/gone", "a.example"))
time.sleep(0.01)
c.close()
r = p.get("/slowphases/after")
is_(r.status, 200, "a client gone while a phase was suspended: the worker goes on")

# --- a body filter expanding 1 KiB into 1 MiB, to a slow reader --------------------------------
c = p.connect(rcvbuf=8192)
c.send(build_request("GET", "/grow/x", "a.example"))
head = b""
while b"\r\n\r\n" not in head:
    head += c.sock.recv(1)
ok(b"Transfer-Encoding: chunked" in head and b"X-Test-Phases: headers,access,precontent" in head,
   "the expanded response is chunked (its length changed), with the header filter's field")
h = hashlib.sha256()
total, buf, done = 0, b"", False
rss0 = peak = rss_kb(w)
reads = 0


def more():
    global buf, reads, peak
    piece = c.sock.recv(4096)
    if not piece:
        raise ConnectionError("closed mid-body")
    buf += piece
    reads += 1
    if reads % 16 == 0:                 # a slow reader: 64 KiB, then a pause
        time.sleep(0.005)
        peak = max(peak, rss_kb(w))


while not done:                         # chunked framing, decoded while reading slowly
    while b"\r\n" not in buf:
        more()
    line, buf = buf.split(b"\r\n", 1)
    size = int(line.split(b";")[0], 16)
    while len(buf) < size + 2:
        more()
    h.update(buf[:size])
    total += size
    buf = buf[size + 2:]
    done = size == 0
c.close()
is_((total, h.hexdigest()), (1 << 20, expected(1 << 20)),
    "1 KiB from the origin becomes 1 MiB for a slow reader, intact")
if sanitized_build():
    skip("RSS bound: the sanitizer's quarantine keeps freed memory", 1)
else:
    cmp_ok(peak - rss0, "<", 512, "...with bounded memory (back-pressure through the filter: "
           "worker RSS +%d KiB)" % (peak - rss0))

# --- filters are per request: a route without them still splices --------------------------------
p0 = pipe_count(w)
r = p.get("/big-filtered/x")
is_((r.status, len(r.body), r.header("X-Test-Phases")), (200, 4 << 20, "headers,access,precontent"),
    "a 4 MiB body through the (pass-through) filter: complete")
is_(pipe_count(w), p0, "...copied through the buffer, no splice pipe taken (a filter is on)")
r = p.get("/big/x")
is_((r.status, len(r.body), r.header("X-Test-Phases")), (200, 4 << 20, None),
    "the same origin on a route without the test module: complete, no filter")
cmp_ok(pipe_count(w), ">", p0, "...relayed by splice (a pipe was taken): filters are per request")

# --- the request head is the modules' to edit --------------------------------------------------
r = p.get("/edit/x?q=1")
req = echo.received[-1]
is_((r.status, req.target, req.header("X-Test")), (200, "/rewritten?q=1", "edited"),
    "a phase edits the head (a field, the path): the request to the origin is built from it")

# --- an upstream exchange with no client request (what health checks will do) ---------------------
probed = Origin.fixed(body=b"alive\n")
PROBE = proxy_config([upstream("pr", [probed.address])], [proxy_route("pr", "/")],
                     extra='test_probe = { upstream = "pr"; path = "/probe"; interval_ms = 50; };')
p2 = Portico(PROBE, bin=BIN)
ok(probed.wait_requests(3, 5) >= 3, "the probe sends requests with no client behind them")
is_(sorted(set(q.target for q in probed.received)), ["/probe"], "...GET /probe each time")
LINE = (r'test probe: upstream "pr" server 127\.0\.0\.1:%d: status 200, 6 body bytes; shared: '
        r'(\d+) requests, 0 in flight' % probed.port)
ok(p2.wait_log(LINE, 3), "the exchange's owner gets the head and the body, and the server's shared "
   "counters (nothing in flight once it is over)")


def last_count():
    found = re.findall(LINE, p2.error_log())
    return int(found[-1]) if found else 0


before = last_count()
mark = p2.log_mark()
p2.reload(PROBE)
ok(p2.wait_log(r"reload finished", 10, mark), "reload")
ok(wait_for(lambda: len(re.findall(LINE, p2.error_log()[mark:])) >= 2, 5), "the new workers probe too")
after = int(re.findall(LINE, p2.error_log()[mark:])[0])
cmp_ok(after, ">", before, "the shared zone is kept across the reload: the server's request count "
       "goes on (%d before, %d after)" % (before, after))
p2.stop()

bad = PROBE.replace('upstream = "pr"; path', 'upstream = "nope"; path')
p.write_config(bad, os.path.join(p.tmp, "bad.conf"))
res = subprocess.run([BIN, "-t", "-c", os.path.join(p.tmp, "bad.conf")], capture_output=True, text=True,
                     timeout=30)
like(res.stdout + res.stderr, r"bad\.conf:\d+: key 'test_probe\.upstream': no upstream named \"nope\"",
     "-t: a probe naming a missing upstream, file:line")

# --- the phase before routing: filters.global is a route-shaped scope ----------------------------
GLOBAL = proxy_config([upstream("small", [small.address])],
                      [proxy_route("small", "/t/", test="{ suspend_ms = 10; }"),
                       proxy_route("small", "/")],
                      extra='filters = { global = { test = { suspend_ms = 20; }; }; };')
p3 = Portico(GLOBAL, bin=BIN)
mark = p3.log_mark()
r = p3.get("/t/x")
is_((r.status, r.header("X-Test-Phases")), (200, "request,headers,access,precontent"),
    "the request phase runs first, with filters.global's configuration, and suspends and "
    "resumes like the others; routing follows it")
ok(p3.wait_log(r"test module: GET /t/x: phases request,headers,access,precontent, resumed 4 times", 3, mark),
   "...4 resumptions")
r = p3.get("/other")
is_((r.status, r.header("X-Test-Phases")), (200, None),
    "a route without the test key: only the request phase ran (no filter switched on)")
ok(p3.wait_log(r"test module: GET /other: phases request, resumed 1 times, status 200", 3, mark),
   "...the global scope applies to every request")
p3.stop()
p.write_config(GLOBAL.replace("global = { test", "global = { upstream = \"small\"; test"),
               os.path.join(p.tmp, "bad2.conf"))
res = subprocess.run([BIN, "-t", "-c", os.path.join(p.tmp, "bad2.conf")], capture_output=True,
                     text=True, timeout=30)
like(res.stdout + res.stderr, r"bad2\.conf:\d+: key 'filters\.global\.upstream': unknown key here "
     r"\(it goes in a route\)", "-t: a content key in filters.global is refused, file:line")

is_(small.errors + big.errors + echo.errors + probed.errors, [], "the origins saw only well-formed requests")
done_testing()
