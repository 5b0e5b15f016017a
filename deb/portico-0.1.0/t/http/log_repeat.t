#!/usr/bin/env python3
# Error-log floods: a message repeated (same level, same text) within a second is counted
# instead of written and reported once as "last message repeated N times: TEXT", when the
# second has passed (without another message to trigger it), or before the slot is
# reused. Every occurrence is accounted for, and a different message is never held back.
import os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

N = 300
dead, other = refusing_port(), refusing_port()
A = "127.0.0.1:%d"
p = Portico(proxy_config([upstream("dead", [A % dead]), upstream("other", [A % other], retries=0)],
                         [proxy_route("other", "/other"), proxy_route("dead", "/")]))
w = the_worker(p)
mark = p.log_mark()

# A failed request logs two lines (the refused connect, then no server left): a flood of
# them alternates, and both are counted.
CONNECT = ('upstream "dead" server %s: connect() failed (111: Connection refused), client 127.0.0.1, '
           'request "GET /flood"' % (A % dead))
NOLEFT = 'upstream "dead": no server left to try, client 127.0.0.1, request "GET /flood"'
DIFFERENT = ('upstream "other" server %s: connect() failed (111: Connection refused), client 127.0.0.1, '
             'request "GET /other/once"' % (A % other))
statuses = []
for i in range(N):
    statuses.append(p.get("/flood").status)
    if i == N // 2:
        statuses.append(p.get("/other/once").status)
is_(statuses, [502] * (N + 1), "%d requests to a refusing upstream, one to another: 502 each" % (N + 1))


def accounting():
    """{message: (full lines, sum of the repeat counts, summary lines)} of the worker's
    error-level lines written since mark."""
    out = {}
    prefix = r"^\S+ \S+ \[error\] %d#worker 0: " % w
    for line in p.error_log()[mark:].splitlines():
        m = re.match(prefix + r"last message repeated (\d+) times?: (.*)$", line)
        if m:
            full, rep, summ = out.get(m.group(2), (0, 0, 0))
            out[m.group(2)] = (full, rep + int(m.group(1)), summ + 1)
            continue
        m = re.match(prefix + r"(.*)$", line)
        if m:
            full, rep, summ = out.get(m.group(1), (0, 0, 0))
            out[m.group(1)] = (full + 1, rep, summ)
    return out


def complete():
    a = accounting()
    c, n = a.get(CONNECT, (0, 0, 0)), a.get(NOLEFT, (0, 0, 0))
    return a if c[0] + c[1] == N and n[0] + n[1] == N else None


# The last summaries come from the worker's loop once the window has passed: nothing else
# happens after the flood to trigger them.
a = wait_for(complete, 10) or accounting()
for msg, name in ((CONNECT, "connect() failed"), (NOLEFT, "no server left")):
    full, rep, summ = a.get(msg, (0, 0, 0))
    is_(full + rep, N, "%s: every one of the %d accounted for (%d written, %d counted in %d summaries)"
        % (name, N, full, rep, summ))
    cmp_ok(summ, ">=", 1, "...held back and reported as 'last message repeated N times: <the message>'")
    cmp_ok(full + summ, "<", N, "...in fewer lines than occurrences")
is_(a.get(DIFFERENT), (1, 0, 0), "a different message in the middle of the flood is written, once")
unknown = [m for m in a if m not in (CONNECT, NOLEFT, DIFFERENT)]
is_(unknown, [], "no other error line (nothing mangled)")
like(p.error_log()[mark:], r"(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] %d#worker 0: last message repeated \d+ times?: %s$"
     % (w, re.escape(CONNECT)), "the summary line: timestamp, level, pid and role of the process, count, text")
is_(len(p.access_log_lines()) if p.wait_access_log(N + 1) else 0, N + 1, "the access log has every request")
p.stop()

done_testing()
