#!/usr/bin/env python3
# Self-test of the harness (t/lib), independent of portico: the TAP module, the strict
# response reader against canned responses from a raw socket server, the origin servers,
# and the Portico fixture driven with a stand-in binary (t/lib/fake_portico.py).
import os, signal, socket, subprocess, sys, threading, time
sys.dont_write_bytecode = True
LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
from portico_test import *
from origin import Origin, pattern_sha256, response_bytes

FAKE = os.path.join(LIB, "fake_portico.py")


# --- TAP module ------------------------------------------------------------------------------
def run_script(code, env=None, timeout=20):
    pre = "import sys; sys.dont_write_bytecode = True; sys.path.insert(0, %r)\nfrom tap import *\nimport tap\n" % LIB
    e = dict(os.environ)
    e.update(env or {})
    t0 = time.monotonic()
    cp = subprocess.run([sys.executable, "-c", pre + code], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, timeout=timeout, env=e)
    return cp.returncode, cp.stdout, time.monotonic() - t0


rc, out, _ = run_script("plan(2)\nok(True, 'a')\nis_(1, 1, 'b')\n")
is_((rc, out), (0, "1..2\nok 1 - a\nok 2 - b\n"), "tap: passing script")
rc, out, _ = run_script("is_(1, 2, 'one is two')\nlike('abc', r'^b', 'starts with b')\ndone_testing()\n")
ok(rc == 2 and "not ok 1 - one is two" in out and "#          got: 1" in out
   and "#     expected: 2" in out and "not ok 2 - starts with b" in out and "1..2" in out,
   "tap: failures print got/expected, exit status = failures")
rc, out, _ = run_script("ok(True)\nraise ValueError('boom')\n")
ok(rc == 255 and "not ok 2 - uncaught exception: ValueError" in out and "# ValueError: boom" in out,
   "tap: an exception is a failed test with its traceback, exit 255")
rc, out, el = run_script("import time\nok(True)\ntime.sleep(30)\n", env={"PORTICO_TEST_TIMEOUT": "1"})
ok(rc == 254 and "watchdog" in out and el < 10, "tap: the watchdog ends a hung script (%.1fs)" % el)
rc, out, _ = run_script("ok(True)\nok(True)\n")
ok(rc == 255 and "no plan" in out, "tap: a missing plan is an error")
rc, out, _ = run_script("plan(3)\nok(True)\n")
ok(rc == 255 and "planned 3 tests but ran 1" in out, "tap: a wrong count is an error")
rc, out, _ = run_script("skip_all('nothing here')\nok(False)\n")
is_((rc, out), (0, "1..0 # SKIP nothing here\n"), "tap: skip_all")
rc, out, _ = run_script("skip('why', 2)\ndone_testing()\n")
is_((rc, out), (0, "ok 1 # skip why\nok 2 # skip why\n1..2\n"), "tap: skip")
rc, out, _ = run_script("add_cleanup(lambda: print('cleaned'))\nraise KeyError(1)\n")
ok("cleaned" in out and rc == 255, "tap: cleanups run after an exception")


# --- response reader against canned bytes ------------------------------------------------------
class Canned:
    """Accepts one connection per script entry; reads a request head, then plays the
    script: bytes to send, floats to sleep, None to close."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []

    def play(self, *steps, read=True):
        def run():
            c, _ = self.sock.accept()
            c.settimeout(5)
            if read:
                data = b""
                while b"\r\n\r\n" not in data:
                    d = c.recv(4096)
                    if not d:
                        break
                    data += d
                self.received.append(data)
            for s in steps:
                if s is None:
                    c.close()
                    return
                if isinstance(s, float):
                    time.sleep(s)
                else:
                    c.sendall(s)
            time.sleep(5)
            c.close()
        threading.Thread(target=run, daemon=True).start()
        c = Client(self.port, timeout=3)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return c


srv = Canned()
c = srv.play(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello")
r = c.read_response()
is_((r.version, r.status, r.reason, r.body), ("HTTP/1.1", 200, "OK", b"hello"), "reader: Content-Length body")
is_((r.header("x-A"), r.headers.get_all("X-A"), r.headers.count("x-a")), ("1", ["1", "2"], 2),
    "reader: case-insensitive header lookup, all values in order")
ok(r.raw.endswith(b"\r\n\r\nhello") and r.raw.startswith(b"HTTP/1.1 200 OK\r\n"), "reader: raw bytes")
is_(r.closed_after, False, "reader: closed_after False while the server keeps the connection")

c = srv.play(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
             0.1, b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", None)
r = c.read_response()
is_((r.status, r.body, r.chunked, r.trailers.get("x-trailer")), (200, b"hello world", True, "t"),
    "reader: chunked body in two writes, trailers")
is_(r.closed_after, True, "reader: closed_after True when the server closed")

c = srv.play(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil ", 0.1, b"close", None)
r = c.read_response()
is_((r.version, r.body, r.closed_after), ("HTTP/1.0", b"until close", True), "reader: close-delimited body")

c = srv.play(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
             b"HTTP/1.1 204 No Content\r\n\r\n"
             b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
             b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
rs = [c.read_response("HEAD"), c.read_response(), c.read_response()]
f = c.read_final_response()
is_([(x.status, x.body) for x in rs] + [(f.status, f.body)], [(200, b""), (204, b""), (304, b""), (201, b"ok")],
    "reader: no body for HEAD, 204, 304; pipelined responses in order")
is_([i.status for i in f.interim], [100], "reader: interim 1xx kept by read_final_response")

c = srv.play(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
try:
    c.read_response()
    ok(False, "reader: an unexpected 1xx raises")
except ProtocolError:
    ok(True, "reader: an unexpected 1xx raises")

for raw, what in ((b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF after the status line"),
                  (b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", "bare LF after a field"),
                  (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "CL and TE"),
                  (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "two CL"),
                  (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status code"),
                  (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "space in a field name"),
                  (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "NUL in a value"),
                  (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n", "chunk without CRLF")):
    c = srv.play(raw)
    try:
        c.read_response()
        ok(False, "reader: %s is a ProtocolError" % what)
    except ProtocolError:
        ok(True, "reader: %s is a ProtocolError" % what)

c = srv.play(None)
try:
    c.read_response()
    ok(False, "reader: close before any byte")
except ConnectionClosed as e:
    is_(e.data, b"", "reader: close before any byte: ConnectionClosed with no data")
c = srv.play(None)
is_(c.try_read_response(), None, "reader: try_read_response gives None on a silent close")

c = srv.play(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", None)
try:
    c.read_response()
    ok(False, "reader: close mid-body raises")
except ConnectionClosed as e:
    ok(e.data.endswith(b"hel"), "reader: close mid-body raises ConnectionClosed with the bytes")

c = srv.play(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
t0 = time.monotonic()
try:
    c.read_response(timeout=0.5)
    ok(False, "reader: incomplete response times out")
except ResponseTimeout:
    cmp_ok(time.monotonic() - t0, "<", 2, "reader: incomplete response times out in time")

steps = []
for b in b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc":
    steps += [bytes([b]), 0.002]
c = srv.play(*steps)
r = c.read_response()
is_((r.status, r.body), (200, b"abc"), "reader: a response arriving byte by byte")

# Sending byte by byte / in pieces, and a reset peer: the answer is still readable.
srv2 = Canned()
c = srv2.play(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0.05, None, read=False)
time.sleep(0.3)
for i in range(20):
    c.send(b"x" * 1000)
r = c.read_response()
is_((r.status, r.closed_after), (400, True), "client: response readable after the peer reset; closed")
ok(c.send_failed or True, "client: send after reset does not raise")

got = []
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)


def collect():
    s, _ = ls.accept()
    s.settimeout(3)
    while True:
        d = s.recv(100)
        if not d:
            break
        got.append(d)
    s.close()


th = threading.Thread(target=collect)
th.start()
c = Client(ls.getsockname()[1])
c.send_slowly(b"abcdef", delay=0.02)
c.send_pieces([b"gh", b"ij"], delay=0.02)
c.close()
th.join(5)
is_(b"".join(got), b"abcdefghij", "client: send_slowly and send_pieces deliver every byte")
cmp_ok(len(got), ">=", 6, "client: byte-by-byte sends arrive as separate segments (%d reads)" % len(got))

is_(build_request("POST", "/x", "h", ["A: b"], b"xyz"),
    b"POST /x HTTP/1.1\r\nHost: h\r\nA: b\r\nContent-Length: 3\r\n\r\nxyz", "build_request")
is_(chunked(b"hello", b"", b"ab", trailers=["T: 1"]), b"5\r\nhello\r\n2\r\nab\r\n0\r\nT: 1\r\n\r\n", "chunked()")
is_(error_body(431), b"431 Request Header Fields Too Large\n", "error_body")

# --- origin servers -------------------------------------------------------------------------------
o = Origin.echo()
with Client(o.port) as c:
    r = c.request("POST", "/e?x=1", host="o", headers=["X-A: 1"], body=b"payload")
    r2 = c.request("GET", "/two", host="o")
    c.send(b"POST /c HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"abc", b"de"))
    r3 = c.read_response()
ok(r.body.startswith(b"POST /e?x=1 HTTP/1.1\r\nHost: o\r\nX-A: 1\r\nContent-Length: 7\r\n\r\n")
   and r.body.endswith(b"\r\n\r\npayload"), "origin echo: the received head and body")
is_((r2.status, r3.body.endswith(b"\r\n\r\nabcde")), (200, True), "origin echo: keep-alive; chunked upload decoded")
wait_for(lambda: o.requests == 3, 2)
is_((o.accepted, o.requests), (1, 3), "origin counters: 1 connection, 3 requests")
is_([(q.method, q.target, q.body, q.conn_index, q.seq_on_conn) for q in o.received],
    [("POST", "/e?x=1", b"payload", 1, 1), ("GET", "/two", b"", 1, 2), ("POST", "/c", b"abcde", 1, 3)],
    "origin: received requests recorded")
is_(o.received[0].header("x-a"), "1", "origin: request header lookup")
o.stop()

o = Origin.fixed(404, [("X-F", "1")], b"nope\n")
with Client(o.port) as c:
    r = c.request("GET", "/", host="o")
    h = c.request("HEAD", "/", host="o")
is_((r.status, r.body, r.header("X-F"), h.body, h.header("Content-Length")), (404, b"nope\n", "1", b"", "5"),
    "origin fixed: status, headers, body; HEAD without body")
o = Origin.chunked([b"a" * 10, b"b" * 20], trailers=["X-T: 1"], delay=0.01)
r = Client(o.port).request("GET", "/", host="o")
is_((r.chunked, r.body, r.trailers.get("X-T")), (True, b"a" * 10 + b"b" * 20, "1"), "origin chunked")
o = Origin.close_delimited(b"all of it\n")
r = Client(o.port).request("GET", "/", host="o")
is_((r.body, r.closed_after), (b"all of it\n", True), "origin close-delimited")
o = Origin.slow(0.5)
t0 = time.monotonic()
r = Client(o.port).request("GET", "/", host="o")
ok(r.body == b"slow\n" and time.monotonic() - t0 >= 0.45, "origin slow: answers after the delay")
o = Origin.close_mid_body(total=1000, sent=100)
try:
    Client(o.port).request("GET", "/", host="o")
    ok(False, "origin close_mid_body")
except ConnectionClosed as e:
    ok(len(e.data) > 100, "origin close_mid_body: the client sees the body cut")
o = Origin.malformed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
try:
    Client(o.port).request("GET", "/", host="o")
    ok(False, "origin malformed")
except ProtocolError:
    ok(True, "origin malformed: sends the given bytes")
o = Origin.large(3 * 1000 * 1000 + 7)
with Client(o.port, timeout=20) as c:
    r = c.request("GET", "/", host="o")
import hashlib
is_((len(r.body), hashlib.sha256(r.body).hexdigest()), (3000007, pattern_sha256(3000007)), "origin large: streamed pattern")
o = Origin.large(100000, chunked=True)
r = Client(o.port).request("GET", "/", host="o")
is_(hashlib.sha256(r.body).hexdigest(), pattern_sha256(100000), "origin large, chunked")
o = Origin.echo(store_body=False)
r = Client(o.port).request("POST", "/", host="o", body=b"z" * 50000)
wait_for(lambda: o.requests == 1, 2)
is_((o.received[0].body, o.received[0].body_len, o.received[0].body_sha256),
    (b"", 50000, hashlib.sha256(b"z" * 50000).hexdigest()), "origin store_body=False: length and sha256 only")
o = Origin.websocket_echo()
with Client(o.port) as c:
    c.send(b"GET /ws HTTP/1.1\r\nHost: o\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    r = c.read_response(allow_interim=True)
    c.send(b"ping")
    echoed = c.read_available(0.5)
is_((r.status, r.header("Upgrade"), echoed), (101, "websocket", b"ping"), "origin websocket_echo: 101 then echo")
port = closed_port()
try:
    Client(port)
    ok(False, "closed_port: refused")
except ConnectionRefusedError:
    ok(True, "closed_port: refused")

# --- Portico fixture with the stand-in binary -----------------------------------------------
CONF = """workers = 2;
pid_file = "{tmp}/portico.pid";
error_log = { path = "{tmp}/error.log"; level = "debug"; };
listeners = ( { name = "a"; address = "127.0.0.1:{port}"; }, { name = "b"; address = "127.0.0.1:{port2}"; } );
routes = ( { path_prefix = "/"; return = { status = 200; body = "x"; }; } );
upstreams = ( { name = "u"; servers = ( { address = "127.0.0.1:{port_up}"; } ); } );
"""
p = Portico(CONF, bin=FAKE)
ok(p.port("port") != p.port("port2") and "{port" not in p.conf_text and "{tmp}" not in p.conf_text
   and p.port("port_up") not in (p.port("port"), p.port("port2")),
   "fixture: placeholders expanded to distinct ports")
is_(sorted(p.listener_ports()), sorted([("127.0.0.1", p.port("port")), ("127.0.0.1", p.port("port2"))]),
    "fixture: listener ports come from the listeners section only")
is_((p.get("/").status, p.get("/", port="port2").body), (200, b"fake\n"), "fixture: both listeners answer")
w = p.wait_workers(2)
is_(len(w), 2, "fixture: worker_pids finds two workers")
ok(all(proc_ppid(x) == p.pid for x in w), "fixture: workers are the master's children")
ok(fd_count(p.pid) > 2 and rss_kb(p.pid) > 1000, "fixture: fd_count and rss_kb")
ok(p.wait_log(r"master started", 2), "fixture: wait_log")
mark = p.log_mark()
p.signal(signal.SIGHUP)
ok(p.wait_log(r"reload requested", 2, start=mark), "fixture: signal + wait_log from a mark")
ok(p.wait_log(r"master started", 0.2, start=mark) is None, "fixture: wait_log ignores what came before the mark")
os.kill(w[0], signal.SIGKILL)
ok(p.wait_log(r"worker %d exited" % w[0], 3), "fixture: a killed worker is logged")
is_(p.stop(), 0, "fixture: stop() sends QUIT; exit status 0")
ok(not any(proc_alive(x) for x in w), "fixture: no process left")
ok(not os.path.exists(p.pid_path), "fixture: pid file removed by the stand-in")

try:
    Portico(CONF + "fake_fail = true;\n", bin=FAKE)
    ok(False, "fixture: start failure raises PorticoError")
except PorticoError as e:
    ok("exited with status 1" in str(e) and "fake failure" in str(e), "fixture: start failure raises PorticoError with the log")

# A script that fails with portico running leaves no process behind.
code = ("import sys; sys.dont_write_bytecode = True; sys.path.insert(0, %r)\n"
        "from portico_test import *\np = Portico(%r, bin=%r)\n"
        "print('PIDS', p.pid, *p.wait_workers(2), flush=True)\nraise RuntimeError('test bug')\n" % (LIB, CONF, FAKE))
cp = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
pids = [int(x) for x in (cp.stdout.split("PIDS", 1)[1].split("\n")[0].split() if "PIDS" in cp.stdout else [])]
ok(cp.returncode == 255 and len(pids) == 3, "fixture: failing script exits 255")
ok(pids and not any(proc_alive(x) for x in pids), "fixture: ...and its portico processes are gone")

code = ("import sys; sys.dont_write_bytecode = True; sys.path.insert(0, %r)\n"
        "from portico_test import *\np = Portico(%r, bin=%r)\np.stop()\ndone_testing()\n"
        % (LIB, CONF + "fake_asan = true;\n", FAKE))
cp = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
ok(cp.returncode != 0 and "not ok 1 - no sanitizer report from portico" in cp.stdout and "ERROR: AddressSanitizer" in cp.stdout,
   "fixture: a sanitizer report on portico's stderr fails the script")

# Pids remember their process: a number the kernel gave to another process is not ours.
me = Pid.of(os.getpid())
ok(me == os.getpid() and proc_alive(me), "Pid.of: equals the number, alive while the process runs")
other = Pid(os.getpid(), me.start + 1)
ok(not proc_alive(other) and other != me and me in {me} and other not in {me},
   "a Pid with another start time: not alive, not equal to the live one (a reused number)")
ok(all(isinstance(x, Pid) for x in proc_children(os.getppid())), "proc_children gives Pids")

done_testing()
