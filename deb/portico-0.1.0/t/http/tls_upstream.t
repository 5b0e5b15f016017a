#!/usr/bin/env python3
# TLS to origins: upstream tls = { verify; ca; sni; }. The origin connection gets the TLS
# transport (a client handshake while connecting): verified against ca, with SNI, pooled
# keep-alive TLS connections (a session ticket from the origin does not spoil them), the
# next connection resuming the session; a certificate that does not verify (wrong CA,
# wrong name) is a 502 with an error-log line naming the server and the reason; an origin
# that never answers the hello is cut at connect_timeout_ms.
import hashlib, os, re, ssl, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

front = CA("front CA")
site = front.issue("site", sans=["a.example"])
origins = CA("origin CA")
ocert = origins.issue("origin", sans=["origin.internal", "localhost"], ips=["127.0.0.1"])
other = CA("other CA")

good = Origin.echo(tls=server_ctx(ocert))
big = Origin.large(1 << 20, tls=server_ctx(ocert))
fresh = Origin.echo(tls=server_ctx(ocert), name="fresh")


def hung(o, c):
    while not o._stopping and c.recv_some():
        pass

silent = Origin(hung, raw=True, name="silent")
ws = Origin.websocket_echo(tls=server_ctx(ocert), name="ws")


def tls_up(name, o, tls, **kw):
    return upstream(name, [o.address if isinstance(o, Origin) else o], tls=tls, **kw)


CA_OK = '{ ca = "%s"; sni = "origin.internal"; }' % origins.cert
ups = [tls_up("good", good, CA_OK),
       tls_up("big", big, CA_OK),
       tls_up("fresh", fresh, CA_OK, keepalive=0),
       tls_up("byip", good, '{ ca = "%s"; }' % origins.cert),
       tls_up("byname", "localhost:%d" % good.port, '{ ca = "%s"; }' % origins.cert),
       tls_up("wrongca", good, '{ ca = "%s"; sni = "origin.internal"; }' % other.cert),
       tls_up("wrongname", good, '{ ca = "%s"; sni = "wrong.internal"; }' % origins.cert),
       tls_up("noverify", good, '{ verify = false; sni = "wrong.internal"; }'),
       tls_up("silent", silent, CA_OK, connect_timeout_ms=500),
       tls_up("ws", ws, CA_OK)]
routes = ['{ path_prefix = "/%s"; upstream = "%s"; }' % (n, n) for n in
          ("good", "big", "fresh", "byip", "byname", "wrongca", "wrongname", "noverify", "silent",
           "ws")]
LIMITS = ("limits = { client_header_timeout_ms = 5000; keepalive_timeout_ms = 10000; "
          "max_body_size = 2000000; drain_timeout_ms = 3000; };")
p = Portico(tls_config([site], routes=routes, upstreams=ups, plain=True, limits=LIMITS))

# plain clients (port2) are enough here: the origin side is what is tested
r = p.get("/good/a", port="port2")
is_(r.status, 200, "a request to a TLS origin, CA verified")
is_(good.tls_versions[-1:], ["TLSv1.3"], "over TLS 1.3")
is_(good.tls_sni[-1:], ["origin.internal"], "with the configured SNI")
like(r.body.decode("latin-1"), r"^GET /good/a HTTP/1\.1\r\n", "the origin got the request")

n0 = good.accepted
for i in range(3):
    r = p.get("/good/k%d" % i, port="port2")
    is_(r.status, 200, "request %d to the TLS origin" % i)
is_(good.accepted, n0, "pooled: the same TLS connection carried them (none opened)")

# TLS clients through to a TLS origin
r, info = tls_get(p.port(), front, target="/good/both", sni="a.example")
is_(r.status, 200, "TLS on both sides")

r = p.get("/byip/x", port="port2")
is_(r.status, 200, "a server given by IP: verified against its IP address")
is_(good.tls_sni[-1], None, "and no SNI sent for an IP address")
r = p.get("/byname/x", port="port2")
is_(r.status, 200, "a server given by name: that name verified")
is_(good.tls_sni[-1], "localhost", "and sent as SNI")

# a body through TLS on the origin side, both ways
r = p.get("/big/x", port="port2")
is_((r.status, len(r.body), hashlib.sha256(r.body).hexdigest()),
    (200, 1 << 20, pattern_sha256(1 << 20)), "a 1 MiB response over TLS from the origin")
payload = os.urandom(600000)
with p.connect("port2") as c:
    c.send(build_request("POST", "/good/up", "a.example", body=payload))
    r = c.read_response(timeout=10)
is_(r.status, 200, "a 600 KB request body over TLS to the origin")
ok(r.body.endswith(payload), "the origin received it whole")

# a new connection for each request resumes the previous session
for i in range(3):
    is_(p.get("/fresh/%d" % i, port="port2").status, 200, "keepalive = 0: request %d" % i)
is_(fresh.accepted, 3, "a connection per request")
is_(fresh.tls_resumed, [False, True, True], "the 2nd and 3rd resume the session of the one before")

# --- a WebSocket tunnel, TLS on both sides ----------------------------------------------------
with tls_client(p.port(), front, sni="a.example") as c:
    c.send(b"GET /ws/chat HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket\r\n\r\n")
    r = c.read_response(allow_interim=True)
    is_(r.status, 101, "an Upgrade over TLS to a TLS origin: 101")
    msg = os.urandom(300000)
    c.send(msg)
    got = b""
    deadline = time.monotonic() + 10
    while len(got) < len(msg) and time.monotonic() < deadline:
        got += c.read_available(0.2)
    ok(got == msg, "300 KB echoed through the tunnel, TLS both ways (%d bytes back)" % len(got))

# --- a refusal with a body still coming: the answer arrives whole over TLS ------------------
with tls_client(p.port(), front, sni="a.example") as c:
    c.send(b"POST /good/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5000000\r\n\r\n"
           + b"x" * 200000)
    r = c.read_response()
    is_((r.status, r.header("Connection")), (413, "close"), "a body over max_body_size over TLS: 413")
    ok(c.closed(5), "the connection closes after the answer (lingering close over TLS)")

# --- verification failures -------------------------------------------------------------------
def refused(path, o, reason, label):
    mark = p.log_mark()
    r = p.get(path, port="port2")
    is_(r.status, 502, "%s: 502" % label)
    ok(p.wait_log(r'\[error\] .*upstream "%s" server %s: TLS handshake failed: %s'
                  % (path.split("/")[1], re.escape(o.address), reason), start=mark),
       "%s: the log names the server and the reason" % label)

f0 = good.tls_failures
refused("/wrongca/x", good, r"certificate verify failed \(unable to get local issuer certificate\)",
        "an origin certificate from another CA")
refused("/wrongname/x", good, r"certificate verify failed \(hostname mismatch\)",
        "an origin certificate for another name")
cmp_ok(good.tls_failures, ">", f0, "the origin saw the handshakes fail")
is_(p.get("/noverify/x", port="port2").status, 200, "verify = false: the same origin is used")

mark = p.log_mark()
r = p.get("/silent/x", port="port2")
is_(r.status, 504, "an origin that never answers the hello: 504")
ok(p.wait_log(r'upstream "silent" server %s: TLS handshake timed out' % re.escape(silent.address),
              start=mark), "logged as a TLS handshake timeout")

is_([e for e in good.errors if "TLS handshake" not in e], [], "the origin saw no other errors")
p.stop()
done_testing()
