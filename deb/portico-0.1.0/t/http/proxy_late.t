#!/usr/bin/env python3
# Late origin bytes: an origin that sends more than its response (a body to a HEAD, bytes
# after a 204) some time after the response ended. Those bytes must never become the
# answer to the next request sent on the pooled connection.
import os, re, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

EVIL = response_bytes(200, [("X-Evil", "1")], b"EVIL!")


def late_after_bodiless(o, c):
    """HEAD and /204 are answered correctly, then 50 ms later a whole extra response is
    written on the connection; other requests are answered normally."""
    while True:
        req = c.read_head()
        if req is None:
            return
        c.read_body(req)
        o.record(c, req)
        if req.method == "HEAD":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        elif req.target.endswith("/204"):
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            c.sendall(response_bytes(200, [("X-Conn", str(c.index))], b"real %s\n" % req.target.encode()))
            continue
        time.sleep(0.05)
        try:
            c.sendall(EVIL)
        except OSError:
            return
        o.evil_sent = getattr(o, "evil_sent", 0) + 1


late = Origin(late_after_bodiless, raw=True)
p = Portico(proxy_config([upstream("late", [late.address])], [proxy_route("late", "/")]))

# HEAD, then at once a GET on the same client connection: the GET must not go out on the
# connection that answered the HEAD before that connection has rested
with p.connect() as c:
    r1 = c.request("HEAD", "/h")
    r2 = c.request("GET", "/after-head")
is_((r1.status, r1.body), (200, b""), "HEAD answered")
is_((r2.status, r2.body, r2.header("X-Evil")), (200, b"real /after-head\n", None),
    "GET right after it: the real answer, not the body the origin sent late to the HEAD")
is_(late.received[-1].conn_index != late.received[-2].conn_index, True,
    "...the GET went out on another connection (the HEAD's one was resting)")

# a 204, then a pause: the late bytes are noticed on the pooled connection
BYTES_AFTER = (r'upstream "late" server 127\.0\.0\.1:%d: bytes after a complete response; connection not '
               r'reused' % late.port)
# the HEAD's connection got its late response meanwhile: let portico see it first, so the
# line below is the 204's
wait_for(lambda: getattr(late, "evil_sent", 0) >= 1, 3)
p.wait_log(BYTES_AFTER, 3)
mark = p.log_mark()
r = p.get("/x/204")
is_(r.status, 204, "204 answered")
wait_for(lambda: getattr(late, "evil_sent", 0) >= 2, 3)
ok(p.wait_log(BYTES_AFTER, 3, mark), "bytes after the 204 are noticed and logged (with the server)")
r = p.get("/after-204")
is_((r.status, r.body), (200, b"real /after-204\n"), "...and the next request gets its real answer")

# after a HEAD, a GET once the connection has rested: the late response arrived meanwhile
r1 = p.get("/h2", method="HEAD")
time.sleep(0.3)
r2 = p.get("/after-rest")
is_((r2.status, r2.body), (200, b"real /after-rest\n"), "a GET 300 ms after the HEAD: its real answer")

done_testing()
