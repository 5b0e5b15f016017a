#!/usr/bin/env python3
# Reverse proxying, servers that cannot be reached: connect() failing at once with
# EHOSTUNREACH (no route) counts like a refusal: the next server up to `retries`, then 502;
# connect() that never completes (SYNs dropped) ends after connect_timeout_ms: the next
# server, else 504. Both logged. Such addresses need routes of their own; so as not to
# touch the host's routing, the test re-runs itself in a network namespace of its own
# (unshare -n, root only), where only lo is up, 10.255.0.0/16 is unreachable and
# 10.254.0.0/16 is routed into lo, which drops the SYNs as not its own.
import os, re, shutil, subprocess, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

if os.environ.get("PORTICO_TEST_NETNS") != "1":
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    # a container may refuse new namespaces even to root: try one first
    if (os.geteuid() == 0 and unshare and ip
            and subprocess.run([unshare, "-n", "true"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL).returncode == 0):
        env = dict(os.environ, PORTICO_TEST_NETNS="1")
        os.execve(unshare, [unshare, "-n", sys.executable, os.path.abspath(__file__)], env)
    from tap import skip_all
    skip_all("needs root, unshare and ip (iproute2), and the right to create a network namespace")

from proxytest import *
from tap import skip_all

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 60)
try:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "unreachable", "10.255.0.0/16"], check=True)
    subprocess.run(["ip", "route", "add", "10.254.0.0/16", "dev", "lo"], check=True)
except (OSError, subprocess.CalledProcessError) as e:
    skip_all("cannot set up the network namespace: %s" % e)

UNREACH = "10.255.0.1:80"
SILENT = "10.254.0.9:80"
origin = Origin.fixed(body=b"second\n")
ups = [upstream("one", [UNREACH], retries=0),
       upstream("two", [UNREACH, origin.address], retries=1),
       upstream("hang", [SILENT], connect_timeout_ms=300, retries=0),
       upstream("hang2", [SILENT, origin.address], connect_timeout_ms=300, retries=1)]
p = Portico(proxy_config(ups, [proxy_route("one", "/one/"), proxy_route("hang", "/hang/"),
                               proxy_route("hang2", "/hang2/"), proxy_route("two", "/")]))

mark = p.log_mark()
r = p.get("/one/x")
is_((r.status, r.body), (502, b"502 Bad Gateway\n"), "the only server unreachable: 502 with portico's page")
ok(UNREACH.encode() not in r.raw, "...which does not show the server's address")
ok(p.wait_log(r'\[error\] .*upstream "one" server 10\.255\.0\.1:80: connect\(\) failed '
              r'\(113: No route to host\), client 127\.0\.0\.1, request "GET /one/x"', 2, mark),
   "...logged with the server and the reason")

mark = p.log_mark()
st = [p.get("/r%d" % i) for i in range(4)]
is_([(r.status, r.body) for r in st], [(200, b"second\n")] * 4,
    "first server unreachable, retries = 1: every request answered by the second")
is_(origin.requests, 4, "...which got all four")
cmp_ok(len(re.findall(r'server 10\.255\.0\.1:80: connect\(\) failed \(113', p.error_log()[mark:])), ">=", 1,
       "...the failures are logged")

# --- a server whose connect never completes -----------------------------------------------------
mark = p.log_mark()
r, took = timed_get(p, "/hang/x")
is_((r.status, r.body), (504, b"504 Gateway Timeout\n"), "connect never completing, no other server: 504")
ok(0.25 <= took < 2.5, "...after connect_timeout_ms (300 ms): %.2f s" % took)
ok(p.wait_log(r'upstream "hang" server 10\.254\.0\.9:80: connect\(\) timed out.*request "GET /hang/x"', 2, mark),
   "...logged: connect() timed out, with the server")
st = [timed_get(p, "/hang2/%d" % i) for i in range(2)]
is_([(r.status, r.body) for r, _ in st], [(200, b"second\n")] * 2,
    "first server silent, retries = 1: answered by the second")
took = sum(t for _, t in st)
ok(0.25 <= took < 3, "...one of the two waited for the connect timeout first (%.2f s for both)" % took)
done_testing()
