#!/usr/bin/env python3
# Access log: "main" and "combined" formats field by field, refused requests logged,
# flushing (flush_ms and at exit), enabled = false, USR1 reopen of access and error logs.
import os, re, signal, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

DATE = r"\[(\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]"
TIME = r"\d+\.\d{3}"


def main_re(request, status, nbytes, referer="-", ua="-"):
    return ("^127\\.0\\.0\\.1 - - %s \"%s\" %d %d \"%s\" \"%s\" %s - - -$"
            % (DATE, request, status, nbytes, re.escape(referer), re.escape(ua), TIME))


def combined_re(request, status, nbytes, referer="-", ua="-"):
    return ("^127\\.0\\.0\\.1 - - %s \"%s\" %d %d \"%s\" \"%s\"$"
            % (DATE, request, status, nbytes, re.escape(referer), re.escape(ua)))


def log_time(line):
    m = re.search(DATE, line)
    if not m:
        return None
    import datetime
    return datetime.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()


# --- format main -------------------------------------------------------------------------------
p = Portico(standard_config())
n0 = len(p.access_log_lines())
t0 = time.monotonic()
r = p.get("/h?x=1", host="b.example", headers=["Referer: http://ref.example/page", "User-Agent: test-agent/1.0"])
waited = time.monotonic() - t0
is_(r.status, 200, "request answered")
t_req = time.time()
lines = p.wait_access_log(n0 + 1, 2.0)
is_(len(lines), n0 + 1, "one access log line within flush_ms (100 ms, waited up to 2 s)")
line = lines[-1] if lines else ""
like(line, main_re(r"GET /h\?x=1 HTTP/1\.1", 200, 2, "http://ref.example/page", "test-agent/1.0"),
     "main: address, time, request, status, body bytes, referer, user agent, request time, - - -")
t = log_time(line)
ok(t is not None and abs(t - t_req) < 5, "main: the timestamp is now")
m = re.search(r'" (\d+\.\d{3}) - - -$', line)
ok(m and float(m.group(1)) <= waited + 0.001,
   "main: request time in seconds with 3 decimals, within what the client waited (%.3f s)" % waited)

p.get("/", host="a.example", method="HEAD")
lines = p.wait_access_log(n0 + 2)
like(lines[-1] if lines else "", main_re(r"HEAD / HTTP/1\.1", 200, 0), "main: HEAD sends 0 body bytes, missing fields are -")

p.get("/zzz", host="b.example", method="POST", body=b"hello")
lines = p.wait_access_log(n0 + 3)
like(lines[-1] if lines else "", main_re(r"POST /zzz HTTP/1\.1", 404, len(error_body(404))),
     "main: a 404 with its body size")

p.get("/re/1", host="b.example", version="HTTP/1.0")
lines = p.wait_access_log(n0 + 4)
like(lines[-1] if lines else "", main_re(r"GET /re/1 HTTP/1\.0", 201, 3), "main: the request's own version")

# Refused requests are logged too; "-" when the request line was not parsed.
p.request(b"GARBAGE\r\n\r\n")
lines = p.wait_access_log(n0 + 5)
like(lines[-1] if lines else "", main_re("-", 400, len(error_body(400))), "main: unparsed request line logged as \"-\" with 400")
p.request(b"GET /bad HTTP/1.1\r\nHost: a.example\r\nX-A: a\r\n b\r\n\r\n")
lines = p.wait_access_log(n0 + 6)
like(lines[-1] if lines else "", r'^127\.0\.0\.1 - - \S+ \S+ "(GET /bad HTTP/1\.1|-)" 400 16 ',
     "main: a request refused after its request line: logged with 400")

# A quoted field never breaks the line: a double quote in the user agent is escaped.
p.get("/", host="a.example", headers=['User-Agent: evil" 200 0 "x'])
lines = p.wait_access_log(n0 + 7)
last = lines[-1] if lines else ""
ok(last.count('"') - last.count('\\"') == 6 and '"evil" 200' not in last,
   "main: a quote in User-Agent is escaped (%s)" % last[-60:])

# Flush at exit: with a long flush_ms, lines written just before QUIT are there after it.
p.stop()
is_(p.exit_status, 0, "master exits 0")

q = Portico(standard_config(access_log='access_log = { path = "{tmp}/access.log"; format = "main"; '
                                       'enabled = true; flush_ms = 60000; buffer_size = 65536; };'))
for i in range(3):
    q.get("/re/%d" % i, host="b.example")
time.sleep(0.3)
q.stop()
lines = q.access_log_lines()
is_(len([l for l in lines if re.search(r'"GET /re/\d HTTP/1\.1" 201 3 ', l)]), 3,
    "buffered lines are flushed on exit")

# --- format combined ----------------------------------------------------------------------------
q = Portico(standard_config(access_log='access_log = { path = "{tmp}/access.log"; format = "combined"; '
                                       'enabled = true; flush_ms = 100; };'))
q.get("/h", host="b.example", headers=["User-Agent: ua/2"])
lines = q.wait_access_log(1)
like(lines[-1] if lines else "", combined_re(r"GET /h HTTP/1\.1", 200, 2, "-", "ua/2"), "combined: the first nine fields only")
q.stop()

# --- enabled = false ----------------------------------------------------------------------------
q = Portico(standard_config(access_log='access_log = { path = "{tmp}/access.log"; format = "main"; '
                                       'enabled = false; flush_ms = 100; };'))
q.get("/h", host="b.example")
time.sleep(0.4)
q.stop()
is_(q.access_log_lines(), [], "enabled = false: nothing logged")

# --- USR1: reopen -------------------------------------------------------------------------------
p = Portico(standard_config())
p.get("/re/1", host="b.example")
p.wait_access_log(1)
os.rename(p.access_log_path, p.access_log_path + ".1")
os.rename(p.error_log_path, p.error_log_path + ".1")
p.signal(signal.SIGUSR1)
ok(wait_for(lambda: os.path.exists(p.access_log_path) and os.path.exists(p.error_log_path), 3.0),
   "USR1: access.log and error.log are created again")


def reopened(pid):
    """Has worker pid reopened its logs (no descriptor left on the renamed files)?"""
    try:
        targets = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
    except OSError:
        return False
    return p.access_log_path in targets and not any(t.endswith(".1") for t in targets)


ok(wait_for(lambda: all(reopened(w) for w in p.wait_workers(2)), 5.0), "USR1: the workers reopen them too")
p.get("/re/2", host="b.example")
lines = p.wait_access_log(1)
ok(len(lines) == 1 and '"GET /re/2 HTTP/1.1" 201' in lines[0], "USR1: the next request goes to the new access.log")
old = p.access_log_lines(p.access_log_path + ".1")
ok(len(old) == 1 and '"GET /re/1 HTTP/1.1" 201' in old[0], "USR1: the old file keeps the earlier line only")
p.request(b"GARBAGE\r\n\r\n")
ok(p.wait_log(refused_re(400), 3), "USR1: the error log goes to the new error.log")
p.stop()
is_(p.exit_status, 0, "master exits 0")

done_testing()
