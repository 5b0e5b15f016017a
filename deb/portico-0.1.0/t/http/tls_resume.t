#!/usr/bin/env python3
# TLS session resumption shared by the workers: a session made on one worker resumes on
# the others, with tickets (keys made by the master in a shared zone) and with the shared
# session cache (TLS 1.2 session ids; TLS 1.3 without tickets); across a HUP; ticket keys
# rotated every ticket_key_rotation_s, the previous key still accepted for one period;
# and neither tickets nor cache when both are off (what the benchmark runs).
#
# To be sure the resuming worker is not the one that made the session, that worker is
# killed (the master starts another) before the 200 reconnections.
import os, re, signal, ssl, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

ca = CA()
cert = ca.issue("site", sans=["a.example"])
HS = (r"\[debug\] (\d+)#worker \d+: (?:last message repeated (\d+) times?: )?TLS handshake "
      r"with 127\.0\.0\.1 on 127\.0\.0\.1:%d: ([^,\s]+), [^,\s]+(, resumed)?$")


def handshakes(p, start):
    """(pid, version, resumed) of every handshake logged since start (a summary line
    "last message repeated N times" stands for N of them)."""
    out = []
    for m in re.finditer(HS % p.port(), p.error_log()[start:], re.M):
        out += [(int(m.group(1)), m.group(3), bool(m.group(4)))] * int(m.group(2) or 1)
    return out


def wait_handshakes(p, start, n):
    wait_for(lambda: len(handshakes(p, start)) >= n, 10)
    return handshakes(p, start)


def issue_then_kill(p, label, **kw):
    """A first full handshake; its worker is killed. Returns the session and the pid that
    made it."""
    mark = p.log_mark()
    r, info = tls_get(p.port(), ca, sni="a.example", **kw)
    is_((r.status, info.resumed), (200, False), "%s: a first, full handshake" % label)
    hs = wait_handshakes(p, mark, 1)
    issuer = hs[0][0] if hs else None
    ok(issuer in p.worker_pids(), "%s: made by worker %s" % (label, issuer))
    os.kill(issuer, signal.SIGKILL)
    now = p.wait_workers(2, exclude=[issuer])
    ok(len(now) == 2 and issuer not in now, "%s: that worker is gone, two others serve" % label)
    return info.session, issuer


def reconnect(p, label, session, issuer, n=200, follow=False, **kw):
    """n reconnections with the saved session (follow: with the newest session each
    time); all must be resumed, by workers other than the issuer."""
    mark = p.log_mark()
    resumed = statuses = 0
    for i in range(n):
        r, info = tls_get(p.port(), ca, sni="a.example", session=session, **kw)
        statuses += r.status == 200
        resumed += info.resumed
        if follow:
            session = info.session
    is_(statuses, n, "%s: %d reconnections answered" % (label, n))
    is_(resumed, n, "%s: all %d resumed the session" % (label, n))
    hs = wait_handshakes(p, mark, n)
    pids = set(h[0] for h in hs)
    ok(len(hs) == n and all(h[2] for h in hs) and issuer not in pids,
       "%s: the log agrees, on worker(s) %s, none the issuer %d" % (label, sorted(pids), issuer))
    return session


# --- tickets (TLS 1.3 and 1.2) -----------------------------------------------------------------
p = Portico(tls_config([cert], workers=2))
p.wait_workers(2)
s, issuer = issue_then_kill(p, "tickets, TLS 1.3")
reconnect(p, "tickets, TLS 1.3", s, issuer)
s, issuer = issue_then_kill(p, "tickets, TLS 1.2", max_version=ssl.TLSVersion.TLSv1_2)
reconnect(p, "tickets, TLS 1.2", s, issuer, max_version=ssl.TLSVersion.TLSv1_2)

# across a HUP: new workers, same ticket keys (the zone is kept)
r, info = tls_get(p.port(), ca, sni="a.example")
old = p.worker_pids()
p.reload()
ok(p.wait_log(r"reload finished: generation 2"), "HUP: reloaded")
p.wait_workers(2, exclude=old, timeout=15)
r2, info2 = tls_get(p.port(), ca, sni="a.example", session=info.session)
is_((r2.status, info2.resumed), (200, True), "tickets: a session from before the HUP resumes after it")
p.stop()

# --- the shared session cache (no tickets) -----------------------------------------------------
p = Portico(tls_config([cert], workers=2, session_tickets=False, session_cache_size=1000))
p.wait_workers(2)
s, issuer = issue_then_kill(p, "cache, TLS 1.2", max_version=ssl.TLSVersion.TLSv1_2)
reconnect(p, "cache, TLS 1.2", s, issuer, max_version=ssl.TLSVersion.TLSv1_2)
s, issuer = issue_then_kill(p, "cache, TLS 1.3")
# a TLS 1.3 session from the cache is used once: each connection brings the one it got
reconnect(p, "cache, TLS 1.3", s, issuer, follow=True)

r, info = tls_get(p.port(), ca, sni="a.example", max_version=ssl.TLSVersion.TLSv1_2)
old = p.worker_pids()
p.reload()
ok(p.wait_log(r"reload finished: generation 2"), "HUP: reloaded")
p.wait_workers(2, exclude=old, timeout=15)
r2, info2 = tls_get(p.port(), ca, sni="a.example", session=info.session,
                    max_version=ssl.TLSVersion.TLSv1_2)
is_((r2.status, info2.resumed), (200, True), "cache: a session from before the HUP resumes after it")

# the cache keeps at most session_cache_size sessions: a HUP to a size of 2 (a new zone:
# its size changed), then 3 sessions: the oldest is gone, the newest resumes
old = p.worker_pids()
p.reload(tls_config([cert], workers=2, session_tickets=False, session_cache_size=2))
ok(p.wait_log(r"reload finished: generation 3"), "HUP: session_cache_size = 2")
p.wait_workers(2, exclude=old, timeout=15)      # the old ones used the old zone
sess = []
for i in range(3):
    r, info = tls_get(p.port(), ca, sni="a.example", max_version=ssl.TLSVersion.TLSv1_2)
    sess.append(info.session)
r, i0 = tls_get(p.port(), ca, sni="a.example", session=sess[0], max_version=ssl.TLSVersion.TLSv1_2)
r, i2 = tls_get(p.port(), ca, sni="a.example", session=sess[2], max_version=ssl.TLSVersion.TLSv1_2)
is_((i0.resumed, i2.resumed), (False, True),
    "session_cache_size 2: the least recently used of 3 was evicted, the newest resumes")
p.stop()

# --- neither: no resumption at all (the benchmark's setting) -----------------------------------
p = Portico(tls_config([cert], workers=1, session_tickets=False, session_cache_size=0))
for kw, label in (({}, "TLS 1.3"), ({"max_version": ssl.TLSVersion.TLSv1_2}, "TLS 1.2")):
    r, info = tls_get(p.port(), ca, sni="a.example", **kw)
    r2, info2 = tls_get(p.port(), ca, sni="a.example", session=info.session, **kw)
    is_((r2.status, info2.resumed), (200, False),
        "session_tickets = false, session_cache_size = 0: %s sessions do not resume" % label)
r, info = tls_get(p.port(), ca, sni="a.example")
ok(not info.session.has_ticket, "and TLS 1.3 sends no ticket")
p.stop()

# --- ticket key rotation -----------------------------------------------------------------------
PERIOD = 2
p = Portico(tls_config([cert], workers=2, ticket_key_rotation_s=PERIOD, session_cache_size=0))
ROT = r"TLS session ticket keys of 127\.0\.0\.1:%d rotated \((\d+)\)" % p.port()


def rotations():
    return [int(x) for x in re.findall(ROT, p.error_log())]


def scenario():
    """A session made between rotations k and k + 1; tried after k + 1 and after k + 2,
    with the ticket renewed at the first try too. None when a rotation came in the middle
    of a step (a loaded machine): the caller starts over."""
    r, i0 = tls_get(p.port(), ca, sni="a.example")
    k = len(rotations())
    wait_for(lambda: len(rotations()) >= k + 1, PERIOD * 5)
    r, i1 = tls_get(p.port(), ca, sni="a.example", session=i0.session)
    if len(rotations()) != k + 1:
        return None
    wait_for(lambda: len(rotations()) >= k + 2, PERIOD * 5)
    r, i2 = tls_get(p.port(), ca, sni="a.example", session=i0.session)
    r, i3 = tls_get(p.port(), ca, sni="a.example", session=i1.session)
    if len(rotations()) != k + 2:
        return None
    return i1.resumed, i2.resumed, i3.resumed


ok(wait_for(lambda: len(rotations()) >= 1, PERIOD * 5), "the master rotates the keys every "
   "ticket_key_rotation_s, and says so")
res = None
for attempt in range(3):
    res = scenario()
    if res is not None:
        break
ok(res is not None, "a session and two rotations without interference")
res = res or (None, None, None)
is_(res[0], True, "a ticket of the previous key resumes after one rotation")
is_(res[1], False, "after a second rotation its key is gone: a full handshake")
is_(res[2], True, "the ticket renewed at the first rotation still resumes")
p.stop()

done_testing()
