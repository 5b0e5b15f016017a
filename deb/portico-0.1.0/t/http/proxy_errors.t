#!/usr/bin/env python3
# Reverse proxying, failures: connect refused (the next server up to `retries`, then 502),
# no response within read_timeout_ms (504), a connect that times out (504), an origin that
# stalls mid-body; clients hanging up mid-upload, mid-download and while waiting (the
# origin connection is closed, no descriptor is left behind); error pages never show an
# upstream address while the error log names the server and why; access log fields.
import os, re, signal, socket, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *


def stall_mid_body(o, c, req):
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    for _ in range(40):                 # 4 s unless stopped
        if o._stopping:
            break
        time.sleep(0.1)
    return False


def answers_early(o, c):
    """Refuses an upload at once, without reading its body."""
    req = c.read_head()
    if req is None:
        return
    o.record(c, req)
    c.sendall(response_bytes(413, [], b"too big for me\n", close=True))
    time.sleep(0.1)


def never_reads(o, c):
    req = c.read_head()
    if req is None:
        return
    o.record(c, req)
    for _ in range(40):
        if o._stopping:
            break
        time.sleep(0.1)


def drips(o, c, req):
    """Head and body a piece every 300 ms: slow, but never silent for 500 ms."""
    for piece in (b"HTTP/1.1 200 OK\r\n", b"X-A: 1\r\n", b"Content-Length: 4\r\n\r\n", b"a", b"b", b"c", b"d"):
        time.sleep(0.3)
        c.sendall(piece)
    return True


closed = [refusing_port() for _ in range(7)]
echo = Origin.echo()
silent = Origin.silent()
stall = Origin(stall_mid_body)
big = Origin.large(1 << 30)
sink = Origin.echo(store_body=False)
slow = Origin.slow(2.0)
bh = blackhole()
early = Origin(answers_early, raw=True)
noread = Origin(never_reads, raw=True)
drip = Origin(drips)

A = "127.0.0.1:%d"
ups = [upstream("dead", [A % closed[0]]),
       upstream("failover", [A % closed[1], echo.address], retries=1),
       # max_fails = 0: the refusing server stays in the rotation (passive health would
       # take it out after its first refusal)
       upstream("noretry", [A % closed[2], echo.address], retries=0, max_fails=0),
       upstream("alldead", [A % closed[3], A % closed[4], A % closed[5]], retries=1),
       upstream("alldead5", [A % closed[3], A % closed[4], A % closed[5]], retries=5),
       upstream("silent", [silent.address], read_timeout_ms=500),
       upstream("stall", [stall.address], read_timeout_ms=500),
       upstream("big", [big.address]), upstream("sink", [sink.address]),
       upstream("slow", [slow.address]),
       upstream("bh", [bh.address], connect_timeout_ms=300),
       upstream("bhfail", [bh.address, echo.address], connect_timeout_ms=300, retries=1),
       upstream("drip", [drip.address], read_timeout_ms=500), upstream("early", [early.address]), upstream("noread", [noread.address], write_timeout_ms=500)]
names = re.findall(r'name = "(\w+)"', " ".join(ups))
# "silent" streams request bodies: its tests watch portico wait for the origin's 100
routes = [proxy_route(n, "/%s/" % n, **({"request_buffering": False} if n == "silent" else {}))
          for n in names]
p = Portico(proxy_config(ups, routes))
w = the_worker(p)
PORTS = [str(x).encode() for x in closed + [echo.port, silent.port, stall.port, big.port,
                                            sink.port, slow.port, bh.port]]


def shows_upstream(r):
    return any(x in r.raw for x in PORTS) or b"127.0.0.1" in r.raw


def log_since(mark):
    return p.error_log()[mark:]


# --- connect refused ---------------------------------------------------------------------------------
mark = p.log_mark()
r = p.get("/dead/1")
is_((r.status, r.body, r.header("Content-Type")), (502, b"502 Bad Gateway\n", "text/plain"),
    "the only server refuses: 502 with portico's page")
ok(not shows_upstream(r), "the 502 page shows no upstream address")
ok(p.wait_log(r'\[error\] .*upstream "dead" server 127\.0\.0\.1:%d: connect\(\) failed \(111: Connection refused\), '
              r'client 127\.0\.0\.1, request "GET /dead/1"' % closed[0], 2, mark),
   "error log: the upstream, the server, connect() failed, why, the client and the request")

mark = p.log_mark()
st = [p.get("/failover/%d" % i).status for i in range(6)]
is_(st, [200] * 6, "first server refuses, retries = 1: every request answered by the second")
cmp_ok(len(re.findall(r'upstream "failover" server 127\.0\.0\.1:%d: connect\(\) failed' % closed[1],
                      log_since(mark))), ">=", 1, "...the refusals are logged")

st = [p.get("/noretry/%d" % i).status for i in range(4)]
is_(sorted(st), [200, 200, 502, 502], "retries = 0: requests sent to the refusing server fail (2 of 4, round-robin)")

mark = p.log_mark()
r = p.get("/alldead/1")
is_((r.status, r.body), (502, b"502 Bad Gateway\n"), "three refusing servers, retries = 1: 502")
is_(len(re.findall(r'connect\(\) failed .*request "GET /alldead/1"', log_since(mark))), 2,
    "...after two attempts (the first and one retry)")
mark = p.log_mark()
r = p.get("/alldead5/1")
is_(r.status, 502, "three refusing servers, retries = 5: 502")
is_(len(set(re.findall(r'server (127\.0\.0\.1:\d+): connect\(\) failed .*request "GET /alldead5/1"',
                       log_since(mark)))), 3, "...after trying each server once")
like(log_since(mark), r'upstream "alldead5": no server left to try, client 127\.0\.0\.1, request "GET /alldead5/1"',
     "...then: no server left to try")

# --- read timeout --------------------------------------------------------------------------------------
mark = p.log_mark()
t0 = time.monotonic()
r = p.get("/silent/1")
took = time.monotonic() - t0
is_((r.status, r.body, r.header("Content-Type")), (504, b"504 Gateway Timeout\n", "text/plain"),
    "no response within read_timeout_ms: 504")
ok(0.4 <= took < 3, "...after about 500 ms (%.2f s)" % took)
ok(not shows_upstream(r), "the 504 page shows no upstream address")
ok(p.wait_log(r'upstream "silent" server 127\.0\.0\.1:%d: timed out waiting for the response, client '
              r'127\.0\.0\.1, request "GET /silent/1"' % silent.port, 2, mark), "error log: server and why")
is_(silent.wait_open(0, 3), 0, "the origin connection is closed")

r = p.get("/drip/1")
is_((r.status, r.header("X-A"), r.body), (200, "1", b"abcd"),
    "read_timeout_ms is per read: a head and body trickling in every 300 ms (2 s in all) pass")

# --- connect timeout ---------------------------------------------------------------------------------------
if bh.works:
    mark = p.log_mark()
    r, took = timed_get(p, "/bh/1")
    is_((r.status, r.body), (504, b"504 Gateway Timeout\n"), "connect does not complete within connect_timeout_ms: 504")
    ok(0.25 <= took < 3, "...after about 300 ms (%.2f s)" % took)
    ok(not shows_upstream(r), "the page shows no upstream address")
    ok(p.wait_log(r'upstream "bh" server 127\.0\.0\.1:%d: connect\(\) timed out.*request "GET /bh/1"' % bh.port, 2, mark),
       "error log: connect() timed out, with the server")
    r, took = timed_get(p, "/bhfail/1")
    is_((r.status, r.body[:len(b"GET /bhfail/1")]), (200, b"GET /bhfail/1"),
        "connect timeout on the first server, retries = 1: answered by the second")
    ok(0.25 <= took < 3, "...after the first server's connect timeout (%.2f s)" % took)
else:
    skip("connects to a full accept queue do not hang on this kernel", 6)

# --- the origin stalls in the body -----------------------------------------------------------------------------
mark = p.log_mark()
with p.connect() as c:
    c.send(build_request("GET", "/stall/1"))
    t0 = time.monotonic()
    try:
        r = c.read_response(timeout=5)
        res = ("complete", r.status)
    except ConnectionClosed as e:
        res = ("closed", e.data.split(b"\r\n")[0], e.data.split(b"\r\n\r\n", 1)[-1])
    except HTTPError as e:
        res = ("error", repr(e)[:80])
    took = time.monotonic() - t0
is_(res, ("closed", b"HTTP/1.1 200 OK", b"0123456789"),
    "origin stalls mid-body past read_timeout_ms: the client has the head and 10 bytes, then a close")
ok(took < 3, "...within about 500 ms (%.2f s)" % took)
ok(p.wait_log(r'upstream "stall" server 127\.0\.0\.1:%d: timed out reading the response body' % stall.port, 2, mark),
   "...logged with the server")

# --- uploads the origin does not take ----------------------------------------------------------------------------


def upload_50mb(path):
    """Starts a 50 MB upload in a thread; returns (response or error, seconds)."""
    c = p.connect(timeout=10)
    c.send(b"POST %s HTTP/1.1\r\nHost: a.example\r\nContent-Length: 50000000\r\n\r\n" % path.encode())
    stop = []

    def sender():
        try:
            for _ in range(50):
                if stop:
                    break
                c.sock.sendall(b"x" * 1000000)
        except OSError:
            pass
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        r = c.read_response(timeout=8)
        res = (r.status, r.body)
    except HTTPError as e:
        res = ("error", repr(e)[:80])
    took = time.monotonic() - t0
    stop.append(1)
    c.close()
    t.join(5)
    return res, took


res, took = upload_50mb("/early/up")
is_(res, (413, b"too big for me\n"), "the origin answers an upload before reading it: its answer is relayed")
mark = p.log_mark()
res, took = upload_50mb("/noread/up")
is_(res, (504, b"504 Gateway Timeout\n"), "the origin reads none of an upload for write_timeout_ms: 504")
ok(0.4 <= took < 3, "...after about 500 ms (%.2f s)" % took)
ok(p.wait_log(r'upstream "noread" server 127\.0\.0\.1:%d: timed out sending the request.*request "POST /noread/up"'
              % noread.port, 2, mark), "...logged with the server")

# --- the client hangs up -------------------------------------------------------------------------------------------
# mid-upload: 1 MB of an announced 50 MB
fd0 = stable_fds(w)
c = p.connect()
c.send(b"POST /sink/up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 50000000\r\n\r\n")
c.send(b"u" * 1000000)
sink.wait_requests(0)
ok(wait_for(lambda: sink.open_conns == 1, 3), "mid-upload: the origin connection is open")
c.close()
is_(sink.wait_open(0, 3), 0, "client hangs up mid-upload: the origin connection is closed")
is_(wait_fds(w, fd0), fd0, "...and the worker has the descriptors it had before")
ok(any("EOF in body" in e for e in sink.errors), "...the origin saw the body end early")
sink.errors[:] = []

# while portico waits for the origin's 100 Continue (the origin says nothing for 1 s)
fd0 = stable_fds(w)
c = p.connect()
c.send(b"POST /silent/expect HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
ok(wait_for(lambda: silent.open_conns == 1, 3), "Expect: the origin has the head")
time.sleep(0.1)
c.close()
t0 = time.monotonic()
is_(wait_fds(w, fd0, 0.8), fd0, "client hangs up while portico waits for 100 Continue: both connections closed at once")
is_(silent.wait_open(0, 3), 0, "...the origin's too")

# mid-download: 1 MB of 1 GiB
fd0 = stable_fds(w)
c = p.connect(rcvbuf=65536)
c.send(build_request("GET", "/big/down"))
got = 0
c.sock.settimeout(5)
while got < 1000000:
    d = c.sock.recv(65536)
    if not d:
        break
    got += len(d)
ok(got >= 1000000, "mid-download: 1 MB received")
c.close()
is_(big.wait_open(0, 5), 0, "client hangs up mid-download: the origin connection is closed")
cmp_ok(big.bytes_sent, "<", 200 << 20, "...long before the origin could send its 1 GiB")
is_(wait_fds(w, fd0), fd0, "...and the worker has the descriptors it had before")

# while waiting for the response head
fd0 = stable_fds(w)
c = p.connect()
c.send(build_request("GET", "/slow/wait"))
ok(slow.wait_requests(1, 3) == 1, "waiting: the origin has the request")
fd1 = fd_count(w)
c.close()
t0 = time.monotonic()
is_(wait_fds(w, fd0, 1.5), fd0, "client hangs up while the origin thinks: its connection is closed at once")
cmp_ok(time.monotonic() - t0, "<", 1.5, "...before the origin answers (2 s)")
like(access_line(p, r"GET /slow/wait HTTP/1\.1"), r'"GET /slow/wait HTTP/1\.1" 499 0 "-" "-" ' + MAIN_LOG_RE,
     "access log: 499 (client closed request)")

# --- access log fields of failures -------------------------------------------------------------------------
p.get("/dead/log")
p.get("/silent/log")
got = [re.search(r'"GET (/\w+/log) HTTP/1\.1" (\d+) \d+ "-" "-" ' + MAIN_LOG_RE,
                 access_line(p, r"GET %s HTTP/1\.1" % path)) for path in ("/dead/log", "/silent/log")]
is_([(m.group(1), m.group(2), m.group(4)) if m else None for m in got],
    [("/dead/log", "502", A % closed[0]), ("/silent/log", "504", silent.address)],
    "access log: status and the upstream address tried, for 502 and 504")
ok(all(m and m.group(5) != "-" for m in got), "access log: an upstream time for both")
m = got[1] if len(got) > 1 else None
ok(m and 0.4 <= float(m.group(5)) <= float(m.group(3)), "access log: the 504's upstream time is the 500 ms waited")

# --- a graceful stop lets a proxied request finish -------------------------------------------------------------------
with p.connect() as c:
    c.send(build_request("GET", "/slow/drain"))
    ok(slow.wait_requests(2, 3) == 2, "drain: the slow origin has the request")
    p.signal(signal.SIGQUIT)
    try:
        r = c.read_response(timeout=5)
        res = (r.status, r.body, "close" in conn_tokens(r))
    except HTTPError as e:
        res = ("error", repr(e)[:80])
is_(res, (200, b"slow\n", True), "SIGQUIT during a proxied request: it completes (Connection: close)")
is_(p.wait_exit(5), 0, "...then portico exits, idle pooled connections do not hold it")

is_(echo.errors, [], "the origins saw only well-formed requests")
done_testing()
