#!/usr/bin/env python3
# HTTP/2 and graceful stops: on reload (HUP) and on QUIT, an h2 connection with streams in
# flight gets GOAWAY NO_ERROR naming the last stream it took, those streams finish, then
# the connection closes; an idle h2 connection gets GOAWAY and is closed; a stream opened after the GOAWAY is not served by the old worker;
# new connections go to the new workers.
import os, signal, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from h2test import *

if not openssl_available():
    skip_all("no openssl command")
if not h2_built():
    skip_all("built --without-nghttp2")

ca = CA()
cert = ca.issue("site", sans=["a.example"], serial=0x6003)
slow = Origin.slow(delay=1.5, body=b"slow\n")
routes = ['{ path_prefix = "/slow"; upstream = "slow"; }',
          '{ path_prefix = "/"; return = { status = 200; body = "h2\\n"; }; }']
LIMITS = ("limits = { client_header_timeout_ms = 5000; keepalive_timeout_ms = 10000; "
          "max_body_size = 0; send_timeout_ms = 10000; drain_timeout_ms = 8000; };")
p = Portico(h2_config(cert, routes=routes, upstreams=[upstream("slow", [slow.address],
                                                               keepalive=16)],
                      limits=LIMITS))
h2c = p.port("port2")


def in_flight_then(sig, label, tls=False):
    port = p.port() if tls else h2c
    idle = H2(h2c)
    idle.handshake()
    with H2(port, tls=ca if tls else None) as c:
        c.handshake()
        slow.reset_counters()
        ids = [c.request("/slow/%d" % i, scheme="https" if tls else "http") for i in range(5)]
        ok(slow.wait_requests(5) == 5, "%s: 5 streams in flight at the origin" % label)
        old = p.worker_pids()
        mark = p.log_mark()
        p.signal(sig)
        g = c.wait_goaway(timeout=5)
        is_(g, (ids[-1], NO_ERROR), "%s: GOAWAY NO_ERROR naming the last stream taken" % label)
        late = c.request("/late")
        for i in ids:
            r = c.response(i, timeout=10)
            is_((r.status, r.body), (200, b"slow\n"), "%s: stream %d finishes" % (label, i))
        ok(c.wait_closed(timeout=10), "%s: then the connection is closed" % label)
        ok(late not in c.responses or c.responses[late].status is None,
           "%s: a stream opened after the GOAWAY is not served" % label)
        is_(idle.wait_goaway(timeout=5), (0, NO_ERROR), "%s: an idle h2 connection gets "
            "GOAWAY NO_ERROR" % label)
        ok(idle.wait_closed(), "%s: and is closed" % label)
        idle.close()
        return old


old = in_flight_then(signal.SIGHUP, "reload")
is_(len(p.wait_workers(1, exclude=old)), 1, "reload: a new worker runs")
with H2(h2c) as c:
    c.handshake()
    r = c.response(c.request("/"))
    is_((r.status, r.body), (200, b"h2\n"), "reload: a new connection is served")

in_flight_then(signal.SIGHUP, "reload over TLS", tls=True)

in_flight_then(signal.SIGQUIT, "quit")
is_(p.wait_exit(10), 0, "quit: the master exits (status 0) once the streams are done")
ok(p.sanitizer_report() is None, "no sanitizer report")
done_testing()
