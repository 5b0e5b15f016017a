#!/usr/bin/env python3
# Syslog outputs: the access log over UDP and the error log over a unix datagram socket,
# each line one RFC 5424 message with the facility, tag, pid and severity; received on
# sockets of the test's own. Bad targets are -t errors naming the key.
import os, re, signal, socket, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 90)

RFC5424 = re.compile(r"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\d+) "
                     r"(\S+) - (.*)$", re.S)

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
udp.settimeout(0.2)
echo = Origin.echo()

CONF = """workers = 1;
error_log = { path = "syslog:unix:{tmp}/log.sock"; level = "info"; facility = "daemon";
              tag = "px-err"; };
access_log = { path = "syslog:udp:127.0.0.1:{sport}"; format = "main"; facility = "local0";
               tag = "px-access"; flush_ms = 50; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
upstreams = ( { name = "app"; servers = ( { address = "%s"; } ); } );
routes = ( { path_prefix = "/"; upstream = "app"; } );
""" % echo.address

p = Portico(CONF, vars={"sport": str(udp.getsockname()[1])}, start=False)
unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
unix.bind(os.path.join(p.tmp, "log.sock"))
os.chmod(os.path.join(p.tmp, "log.sock"), 0o777)     # workers may run as nobody
unix.settimeout(0.2)
p.start()
worker = p.wait_workers(1)[0]


def receive(sock, want, timeout=5.0):
    """Messages until one matches want (a regex on the message part); all received."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536).decode("utf-8", "replace"))
        except socket.timeout:
            continue
        m = RFC5424.match(got[-1])
        if m and re.search(want, m.group(7)):
            return got
    return got


# -- the error log: start-up lines, with their levels
msgs = receive(unix, r"worker started")
ok(msgs and RFC5424.match(msgs[-1]), "the error log's lines arrive as RFC 5424 messages")
m = RFC5424.match(msgs[-1]) if msgs else None
if m:
    pri, ts, host, tag, pid, msgid, text = m.groups()
    is_((int(pri), tag, int(pid), msgid), (3 * 8 + 6, "px-err", worker, "error"),
        "facility daemon, severity info (30), the tag, the worker's pid, MSGID error")
    like(text, r"^worker 0: worker started$", "the message: role and text, no second timestamp")
notices = [RFC5424.match(x) for x in msgs if RFC5424.match(x)]
ok(any(int(n.group(1)) == 3 * 8 + 5 and n.group(5) == str(p.pid) for n in notices),
   "the master's notice lines have severity notice (29) and the master's pid")

# -- the access log over UDP
r = p.get("/x?y=1", headers=[("User-Agent", "ua-syslog")])
is_(r.status, 200, "a proxied request")
msgs = receive(udp, r'"GET /x\?y=1 HTTP/1\.1"')
m = RFC5424.match(msgs[-1]) if msgs else None
ok(m, "the access line arrives over UDP")
if m:
    pri, ts, host, tag, pid, msgid, text = m.groups()
    is_((int(pri), tag, int(pid), msgid), (16 * 8 + 6, "px-access", worker, "access"),
        "facility local0, severity info (134), the tag, the pid, MSGID access")
    like(text, r'^127\.0\.0\.1 - - \[[^]]+\] "GET /x\?y=1 HTTP/1\.1" 200 \d+ "-" "ua-syslog" '
         r'\d+\.\d{3} ' + re.escape(echo.address), "the message is the main format line")
    host_ok = host == socket.gethostname() or host == "-"
    ok(host_ok, "HOSTNAME is the host's name (%s)" % host)

# -- several requests: one message each (the buffer is split into lines)
for i in range(5):
    p.get("/n%d" % i)
got = []
deadline = time.monotonic() + 5
while len(got) < 5 and time.monotonic() < deadline:
    try:
        got.append(udp.recv(65536).decode())
    except socket.timeout:
        pass
is_(len(got), 5, "5 requests, 5 messages")
ok(all(RFC5424.match(x) and "\n" not in x for x in got), "each one line, no newline inside")

# -- SIGUSR1 (reopen) leaves the sockets as they are
p.signal(signal.SIGUSR1)
msgs = receive(unix, r"reopening log files")
ok(msgs and RFC5424.match(msgs[-1]) and "reopening log files" in msgs[-1],
   "SIGUSR1: the notice arrives through the same socket")
p.get("/after")
ok(receive(udp, r'"GET /after '), "after a reopen signal, the access log still arrives")

# -- the receiver restarts (rsyslog or journald: a new socket at the same path): the next
# messages reach the new one, from the master and from the worker
sock_path = os.path.join(p.tmp, "log.sock")
unix.close()
os.unlink(sock_path)
unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
unix.bind(sock_path)
os.chmod(sock_path, 0o777)
unix.settimeout(0.2)
p.signal(signal.SIGUSR1)
msgs = receive(unix, r"reopening log files")
ok(msgs and "reopening log files" in msgs[-1],
   "after the receiver's restart, the error log reconnects: the notice arrives at the new socket")
p.reload(CONF)
msgs = receive(unix, r"worker started")
ok(msgs and "worker started" in msgs[-1], "and so do the new worker's lines")
p.stop()

# -- bad targets: -t names the key
def t_error(path, want, name):
    d = Portico(CONF.replace('"syslog:udp:127.0.0.1:{sport}"', '"%s"' % path),
                vars={"sport": "1"}, start=False)
    cp = run_bin(["-t", "-c", d.conf_path])
    is_(cp.returncode, 1, name + ": -t fails")
    like(cp.stderr, r"portico\.conf:\d+: key 'access_log\.path': " + want, name)


t_error("syslog:udp:localhost:514", r"syslog:udp: the host must be an IP address",
        "a host name")
t_error("syslog:udp:127.0.0.1:0", r"syslog:udp: the port must be 1\.\.65535", "port 0")
t_error("syslog:unix:dev/log", r"syslog:unix: needs an absolute socket path", "a relative path")
t_error("syslog:tcp:127.0.0.1:514", r"a syslog target is", "tcp")
d = Portico(CONF.replace('facility = "local0"', 'facility = "local9"'), vars={"sport": "1"},
            start=False)
cp = run_bin(["-t", "-c", d.conf_path])
like(cp.stderr, r"key 'access_log\.facility'", "an unknown facility")

# -- a unix socket nobody listens on: start-up fails, saying why
d = Portico(CONF.replace('{tmp}/log.sock', '{tmp}/absent.sock'), vars={"sport": "1"},
            start=False)
cp = run_bin(["-c", d.conf_path], timeout=20)
isnt(cp.returncode, 0, "an error log socket that does not exist: portico does not start")
like(cp.stderr, r"cannot open the error log syslog:unix:.*absent\.sock", "and says which")

done_testing()
