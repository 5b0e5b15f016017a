#!/usr/bin/env python3
# The counters the cache and TLS add to /metrics and /status: cache requests by
# X-Cache-Status (HIT, MISS, EXPIRED, BYPASS...), the store's objects, bytes, stores,
# evictions and purges, /status's cache summary (hits and misses, from which the page
# shows a hit ratio), counted across 2 workers; TLS handshakes by protocol and resumption,
# failed handshakes by reason (error, timeout), upstream TLS handshakes. A configuration
# without a cache shows no cache family values and no cache object in /status.
import os, socket, ssl, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from admintest import *
from cachetest import *
from tlstest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 120)

# ---------------------------------------------------------------------------- the cache
o = CountingOrigin()
o.set("/c/a", headers=[("Cache-Control", "max-age=60")], body=b"A" * 1000)
o.set("/c/b", headers=[("Cache-Control", "max-age=60")], body=b"B" * 3000)
o.set("/c/short", headers=[("Cache-Control", "max-age=1")], body=b"S")
o.set("/c/private", headers=[("Cache-Control", "private")], body=b"P")
p = Portico(cache_config(o, workers=2, main_cache="size_mb = 8; purge_allow = [ \"127.0.0.0/8\" ];",
                         extra=ADMIN))
p.wait_workers(2)
wait_admin(p)

m = scrape(p)
CR = "portico_cache_requests_total"
for st in ("HIT", "MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "BYPASS"):
    is_(m.value(CR, status=st), 0, "%s{status=%s} is there at 0 before any request" % (CR, st))
is_(m.value("portico_cache_size_bytes"), 8 * 1024 * 1024, "portico_cache_size_bytes: size_mb")
is_(m.value("portico_cache_objects"), 0, "no object stored yet")

# requests on fresh connections, so both workers take some
statuses = []
for target in ["/c/a", "/c/a", "/c/a", "/c/b", "/c/b", "/c/short", "/c/private", "/c/private"]:
    r = p.get(target)
    statuses.append(r.header("X-Cache-Status"))
is_(statuses, ["MISS", "HIT", "HIT", "MISS", "HIT", "MISS", "MISS", "MISS"],
    "the statuses the client saw")
time.sleep(2.1)                 # /c/short is stale now (max-age=1, no validator)
r = p.get("/c/short")
is_(r.header("X-Cache-Status"), "EXPIRED", "an expired entry refetched: EXPIRED")
r = p.get("/c/post", method="POST", body=b"x")
is_(r.header("X-Cache-Status"), "BYPASS", "a POST: BYPASS")
r = p.get("/", headers=[("Cache-Control", "max-age=60")])
is_(r.header("X-Cache-Status"), None, "a route without a cache is not counted")

is_(wait_metric(p, CR, 3, status="HIT"), 3, "3 hits counted, over both workers")
m = scrape(p)
is_(m.value(CR, status="MISS"), 5, "5 misses")
is_(m.value(CR, status="EXPIRED"), 1, "1 expired")
is_(m.value(CR, status="BYPASS"), 1, "1 bypass")
is_(m.value("portico_cache_objects"), 3, "3 objects stored (/c/a, /c/b, /c/short)")
is_(m.value("portico_cache_stores_total"), 4, "4 stores (/c/short twice)")
stored = m.value("portico_cache_stored_bytes")
ok(4000 < stored < 8192 + 4000, "stored bytes count the bodies and heads (%d)" % stored)
is_(m.value("portico_cache_evictions_total"), 0, "no eviction")

st = status(p)
ok("cache" in st, "/status has a cache object")
c = st.get("cache", {})
is_((c.get("hits"), c.get("misses"), c.get("bypass")), (3, 6, 1),
    "/status cache: 3 hits, 6 misses (MISS + EXPIRED), 1 bypass")
is_((c.get("objects"), c.get("size_bytes")), (3, 8 * 1024 * 1024), "/status cache: objects, size")

# a purge is counted
r = p.get("/c/a", method="PURGE")
is_(r.status, 200, "PURGE /c/a")
m = scrape(p)
is_((m.value("portico_cache_purged_total"), m.value("portico_cache_objects")), (1, 2),
    "purged_total 1, 2 objects left")

# the counters keep counting across a reload
p.reload(cache_config(o, workers=2, main_cache="size_mb = 8;", extra=ADMIN))
p.wait_workers(2)
r = p.get("/c/b")
is_(r.header("X-Cache-Status"), "HIT", "after a reload, the stored /c/b is a hit")
is_(wait_metric(p, CR, 4, status="HIT"), 4, "the hit counter went on from 3 to 4")
p.stop()

# eviction is counted: a 1 MiB cache and 40 objects of 64 KiB
o.set("/c/e", headers=[("Cache-Control", "max-age=60")], body=b"e" * 65536)
p = Portico(cache_config(o, main_cache="size_mb = 1;", extra=ADMIN))
wait_admin(p)
for i in range(40):
    p.get("/c/e?%d" % i)
m = scrape(p)
cmp_ok(m.value("portico_cache_evictions_total"), ">", 0,
       "a stream of unique keys into 1 MiB evicts (%d)" % m.value("portico_cache_evictions_total"))
cmp_ok(m.value("portico_cache_stored_bytes"), "<=", 1024 * 1024, "and the store stays within size")
p.stop()

# no cache configured: no cache values, no cache object
p = Portico(proxy_config(upstream("app", [o.address]), proxy_route("app"), extra=ADMIN))
wait_admin(p)
p.get("/c/a")
m = scrape(p)
is_(m.get(CR), [], "no cache: no %s samples" % CR)
is_(m.get("portico_cache_objects"), [], "no cache: no portico_cache_objects sample")
ok("cache" not in status(p), "no cache: no cache object in /status")
p.stop()

# ---------------------------------------------------------------------------- TLS
if not openssl_available():
    diag("no openssl command: the TLS counters are not checked")
else:
    ca = CA()
    cert = ca.issue("site", sans=["a.example"])
    origins = CA("origin CA")
    other = CA("other CA")
    ocert = origins.issue("origin", sans=["origin.internal"], ips=["127.0.0.1"])
    good = Origin.echo(tls=server_ctx(ocert))
    ups = [upstream("good", [good.address], tls='{ ca = "%s"; sni = "origin.internal"; }'
                    % origins.cert, keepalive=0),
           upstream("wrongca", [good.address], tls='{ ca = "%s"; sni = "origin.internal"; }'
                    % other.cert)]
    routes = ['{ path_prefix = "/good"; upstream = "good"; }',
              '{ path_prefix = "/wrongca"; upstream = "wrongca"; }',
              '{ path_prefix = "/"; return = { status = 200; body = "tls\\n"; }; }']
    p = Portico(tls_config([cert], routes=routes, upstreams=ups, plain=True,
                           handshake_timeout_ms=500, extra=ADMIN,
                           limits="limits = { client_header_timeout_ms = 3000; };"))
    wait_admin(p)
    port = p.port()
    for i in range(3):
        r, info = tls_get(port, ca, sni="a.example")
        assert r.status == 200
    r, info = tls_get(port, ca, sni="a.example", max_version=ssl.TLSVersion.TLSv1_2)
    is_(info.version, "TLSv1.2", "one TLS 1.2 client")
    # resumption: a TLS 1.2 session resumed (session cache on by default)
    ctx = client_ctx(ca, max_version=ssl.TLSVersion.TLSv1_2)
    with tls_client(port, ca, sni="a.example", ctx=ctx) as c1:
        c1.send(build_request("GET", "/", "a.example"))
        c1.read_response()
        sess = c1.sock.session
    with tls_client(port, ca, sni="a.example", ctx=ctx, session=sess) as c2:
        c2.send(build_request("GET", "/", "a.example"))
        c2.read_response()
        resumed = c2.sock.session_reused
    is_(resumed, True, "the second TLS 1.2 connection resumed its session")
    # a failed handshake: TLS 1.1 against the default min_version TLSv1.2
    try:
        tls_get(port, ca, sni="a.example", min_version=ssl.TLSVersion.TLSv1_1,
                max_version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ConnectionError):
        pass
    # a client that stalls mid-handshake: cut at handshake_timeout_ms
    with p.connect() as c:
        c.send(client_hello()[:20])
        ok(c.closed(10), "a stalled handshake is cut")

    HS = "portico_tls_handshakes_total"
    is_(wait_metric(p, HS, 3, listener="main", protocol="TLSv1.3", resumed="false"), 3,
        "3 TLS 1.3 handshakes, not resumed")
    m = scrape(p)
    is_(m.value(HS, listener="main", protocol="TLSv1.2", resumed="false"), 2,
        "2 full TLS 1.2 handshakes")
    is_(m.value(HS, listener="main", protocol="TLSv1.2", resumed="true"), 1, "1 resumed")
    FL = "portico_tls_handshake_failures_total"
    is_(m.value(FL, listener="main", reason="error"), 1, "1 failed handshake (TLS 1.1 refused)")
    is_(m.value(FL, listener="main", reason="timeout"), 1, "1 handshake timed out")
    # upstream handshakes: two to a good origin (no pool: keepalive = 0), one refused
    for i in range(2):
        is_(p.get("/good/x", port="port2").status, 200, "a request to a TLS origin")
    is_(p.get("/wrongca/x", port="port2").status, 502, "an origin whose certificate fails: 502")
    UT = "portico_upstream_tls_handshakes_total"
    m = scrape(p)
    is_(m.value(UT, upstream="good", server=good.address, result="ok"), 2,
        "2 upstream TLS handshakes with the good origin")
    is_(m.value(UT, upstream="wrongca", server=good.address, result="failed", resumed="false"), 1,
        "1 failed upstream TLS handshake (wrong CA)")
    p.stop()

done_testing()
