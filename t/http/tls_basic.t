#!/usr/bin/env python3
# TLS termination, the basics: requests over TLS (keep-alive, pipelined), ALPN (http/1.1
# chosen, a client offering only h2 refused, none offered), min_version (TLS 1.1 refused
# with TLSv1.2, accepted when allowed), plain HTTP sent to the TLS port (a 400 that says
# so, then close), bytes that are neither, a client stalling mid-handshake (cut at
# handshake_timeout_ms), a client sending one byte at a time through the handshake and a
# request, X-Forwarded-Proto from the transport, and -V naming OpenSSL.
import os, re, socket, ssl, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

ca = CA()
cert = ca.issue("site", sans=["a.example"], serial=0x5001)
echo = Origin.echo()

routes = ['{ path_prefix = "/echo"; upstream = "echo"; }',
          '{ path_prefix = "/"; return = { status = 200; body = "tls\\n"; }; }']
LIMITS = ("limits = { client_header_timeout_ms = 3000; keepalive_timeout_ms = 5000; "
          "drain_timeout_ms = 3000; max_body_size = 0; };")
p = Portico(tls_config([cert], routes=routes, upstreams=[upstream("echo", [echo.address])],
                       plain=True, limits=LIMITS, handshake_timeout_ms=700))
port = p.port()

# --- a request over TLS ----------------------------------------------------------------------
r, info = tls_get(port, ca, sni="a.example")
is_((r.status, r.body), (200, b"tls\n"), "a request over TLS is answered")
is_(info.serial, 0x5001, "the listener's certificate (verified against the CA)")
is_(info.version, "TLSv1.3", "TLS 1.3 by default")
is_(info.alpn, None, "no ALPN offered: none chosen, HTTP/1.1 spoken")
ok(p.wait_log(r"TLS handshake with 127\.0\.0\.1 on 127\.0\.0\.1:%d: TLSv1\.3" % port),
   "the handshake is logged at debug")

with tls_client(port, ca, sni="a.example") as c:
    for i in range(3):
        c.send(build_request("GET", "/k%d" % i, "a.example"))
        r = c.read_response()
        is_((r.status, r.header("Connection")), (200, None), "keep-alive request %d over TLS" % i)
    c.send(build_request("GET", "/p1", "a.example") + build_request("GET", "/p2", "a.example")
           + build_request("HEAD", "/p3", "a.example"))
    rs = c.read_responses(["GET", "GET", "HEAD"])
    is_([x.status for x in rs], [200, 200, 200], "pipelined requests in one TLS write, answered in order")

# a TLS 1.2 client too
r, info = tls_get(port, ca, sni="a.example", max_version=ssl.TLSVersion.TLSv1_2)
is_((r.status, info.version), (200, "TLSv1.2"), "a TLS 1.2 client is served")

# --- X-Forwarded-Proto comes from the transport -----------------------------------------------
r, info = tls_get(port, ca, target="/echo", sni="a.example",
                  headers=[("X-Forwarded-Proto", "http")])
is_(r.status, 200, "proxied over TLS")
req = echo.received[-1]
is_(req.header_all("X-Forwarded-Proto"), ["https"],
    "X-Forwarded-Proto: https on the TLS listener (the client's own dropped)")
r = p.get("/echo", port="port2")
is_(echo.received[-1].header_all("X-Forwarded-Proto"), ["http"], "and http on the plain one")

# --- ALPN ------------------------------------------------------------------------------------
r, info = tls_get(port, ca, sni="a.example", alpn=["h2", "http/1.1"])
is_((r.status, info.alpn), (200, "http/1.1"), "ALPN: http/1.1 chosen from h2, http/1.1")
mark = p.log_mark()
try:
    tls_get(port, ca, sni="a.example", alpn=["h2"])
    ok(False, "a client offering only h2 is refused")
except (ssl.SSLError, ConnectionError) as e:
    like(str(e), r"NO_APPLICATION_PROTOCOL|no application protocol", "a client offering only h2 is refused (%s)" % e)
ok(p.wait_log(r"refused connection from 127\.0\.0\.1 on 127\.0\.0\.1:%d: TLS handshake failed: "
              r"no application protocol" % port, start=mark),
   "and the log says why")

# --- min_version -----------------------------------------------------------------------------
TLS11 = dict(min_version=ssl.TLSVersion.TLSv1_1, max_version=ssl.TLSVersion.TLSv1_1,
             ciphers="DEFAULT:@SECLEVEL=0")
mark = p.log_mark()
try:
    tls_get(port, ca, sni="a.example", **TLS11)
    ok(False, "TLS 1.1 is refused with min_version TLSv1.2 (the default)")
except (ssl.SSLError, ConnectionError) as e:
    ok(True, "TLS 1.1 is refused with min_version TLSv1.2 (the default): %s" % e)
ok(p.wait_log(r"TLS handshake failed: unsupported protocol", start=mark),
   "logged: unsupported protocol")

# the same client is served where TLS 1.1 is allowed: the refusal above is the setting's
p11 = Portico(tls_config([cert], min_version="TLSv1.1", ciphers="DEFAULT:@SECLEVEL=0"))
r, info = tls_get(p11.port(), ca, sni="a.example", **TLS11)
is_((r.status, info.version), (200, "TLSv1.1"), "with min_version TLSv1.1 that client is served")
p11.stop()

p13 = Portico(tls_config([cert], min_version="TLSv1.3"))
try:
    tls_get(p13.port(), ca, sni="a.example", max_version=ssl.TLSVersion.TLSv1_2)
    ok(False, "min_version TLSv1.3 refuses a TLS 1.2 client")
except (ssl.SSLError, ConnectionError):
    ok(True, "min_version TLSv1.3 refuses a TLS 1.2 client")
r, info = tls_get(p13.port(), ca, sni="a.example")
is_((r.status, info.version), (200, "TLSv1.3"), "and serves a TLS 1.3 one")
p13.stop()

# alpn = [] : no ALPN at all, whatever the client offers
pn = Portico(tls_config([cert], alpn="[ ]"))
r, info = tls_get(pn.port(), ca, sni="a.example", alpn=["h2"])
is_((r.status, info.alpn), (200, None), "alpn = []: no protocol chosen, HTTP/1.1 served")
pn.stop()

# --- plain HTTP to the TLS port --------------------------------------------------------------
mark = p.log_mark()
with p.connect() as c:
    c.send(build_request("GET", "/plain", "a.example"))
    r = c.read_response()
    is_(r.status, 400, "plain HTTP on the TLS port: 400")
    like(r.body.decode(), r"plain HTTP request sent to a TLS port", "the body says so")
    is_(r.header("Connection"), "close", "Connection: close")
    ok(c.closed(3), "and the connection closes")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 400 Bad Request \(plain HTTP request sent "
              r"to a TLS port\)", start=mark), "logged as a refused request")
with p.connect() as c:
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n")
    r = c.read_response()
    is_(r.status, 400, "any method: OPTIONS also gets the 400")

mark = p.log_mark()
with p.connect() as c:
    c.send(b"\x00\x01\x02 not a TLS hello")
    ok(c.closed(3), "bytes that are neither TLS nor HTTP: closed")
ok(p.wait_log(r"refused connection from 127\.0\.0\.1 on 127\.0\.0\.1:%d: not a TLS handshake "
              r"\(first byte 0x00\)" % port, start=mark), "logged with the first byte")

# --- a client that stalls mid-handshake ------------------------------------------------------
hello = client_hello()
mark = p.log_mark()
with p.connect() as c:
    c.send(hello[:20])          # part of the ClientHello, then nothing
    ok(c.closed(10), "a client stalling mid-handshake is cut")
ok(p.wait_log(r"refused connection from 127\.0\.0\.1 on 127\.0\.0\.1:%d: no TLS handshake within "
              r"handshake_timeout_ms" % port, start=mark), "at handshake_timeout_ms, logged")
with p.connect() as c:
    ok(c.closed(10), "a client that sends nothing at all is cut as well")

# a complete hello, then silence: the server's flight went out, the client's Finished
# never comes
mark = p.log_mark()
with p.connect() as c:
    c.send(hello)
    try:
        flight = c.read_until_close(10)
        ok(flight[:1] == b"\x16", "a client that stops after its hello gets the server's flight, "
           "then is cut")
    except ResponseTimeout:
        ok(False, "a client that stops after its hello is cut")
ok(p.wait_log(r"no TLS handshake within handshake_timeout_ms", start=mark), "logged the same way")

# --- one byte at a time, through the handshake and the request ------------------------------
def trickle(sock, data, delay=0.001):
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(delay)

def bytewise_request(port, target):
    ctx = client_ctx(ca)
    ib, ob = ssl.MemoryBIO(), ssl.MemoryBIO()
    so = ctx.wrap_bio(ib, ob, server_hostname="a.example")
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5)
    sent = 0
    try:
        while True:
            try:
                so.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = ob.read()
                sent += len(out)
                trickle(s, out)
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("closed during the handshake")
                ib.write(d)
        trickle(s, ob.read())       # the client's Finished (TLS 1.3)
        so.write(build_request("GET", target, "a.example"))
        req = ob.read()
        trickle(s, req)
        resp = b""
        while b"\r\n\r\n" not in resp or not resp.endswith(b"tls\n"):
            try:
                resp += so.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            d = s.recv(65536)
            if not d:
                break
            ib.write(d)
        return sent, len(req), resp
    finally:
        s.close()

# (its own listener: at a byte a millisecond the handshake alone takes longer than the
# 700 ms the stall tests above use)
pb = Portico(tls_config([cert], handshake_timeout_ms=20000))
sent, reqlen, resp = bytewise_request(pb.port(), "/bytewise")
cmp_ok(sent, ">", 200, "the handshake went out one byte at a time (%d bytes)" % sent)
like(resp.decode("latin-1"), r"^HTTP/1\.1 200 OK\r\n", "then the request, byte by byte (%d bytes): 200" % reqlen)
ok(resp.endswith(b"tls\n"), "with its body")
pb.stop()

# --- PROXY protocol, then TLS -----------------------------------------------------------------
# the PROXY header and the ClientHello in one write: the hello gets no event of its own
pp = Portico(tls_config([cert], routes=routes, upstreams=[upstream("echo", [echo.address])],
                        limits=LIMITS).replace('address = "127.0.0.1:{port}";',
                                               'address = "127.0.0.1:{port}"; proxy_protocol = true;'))

def proxied_tls(port, header, together):
    ctx = client_ctx(ca)
    ib, ob = ssl.MemoryBIO(), ssl.MemoryBIO()
    so = ctx.wrap_bio(ib, ob, server_hostname="a.example")
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    try:
        if not together:
            s.sendall(header)
        first = True
        while True:
            try:
                so.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = ob.read()
                s.sendall((header if together and first else b"") + out)
                first = False
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("closed during the handshake")
                ib.write(d)
        so.write(build_request("GET", "/echo/pp", "a.example"))
        s.sendall(ob.read())
        resp = b""
        while b"\r\n\r\n" not in resp:
            try:
                resp += so.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            d = s.recv(65536)
            if not d:
                break
            ib.write(d)
        return resp
    finally:
        s.close()

for together in (True, False):
    n0 = echo.requests
    resp = proxied_tls(pp.port(), b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n", together)
    like(resp.decode("latin-1"), r"^HTTP/1\.1 200 OK", "PROXY header then TLS (%s): served"
         % ("in one write with the hello" if together else "in writes of their own"))
    echo.wait_requests(n0 + 1, 3)
    is_(echo.received[-1].header("X-Forwarded-For"), "192.0.2.7", "the PROXY header's client is the client")
pp.stop()

# --- a key update in the middle of a connection ----------------------------------------------
# openssl s_client's "K" sends a TLS 1.3 KeyUpdate that asks for one back: the worker's
# read takes it in, its next write sends its own update, and the connection goes on.
import subprocess, threading

def s_client_key_update():
    proc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                             "-tls1_3", "-msg", "-servername", "a.example"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = []
    def reader():
        for line in proc.stdout:
            out.append(line.decode("latin-1"))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    def saw(rx, n=1):
        return wait_for(lambda: len(re.findall(rx, "".join(out))) >= n, 10)
    try:
        proc.stdin.write(b"GET /ku1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
        proc.stdin.flush()
        first = saw(r"HTTP/1\.1 200 OK")
        proc.stdin.write(b"K\n")
        proc.stdin.flush()
        sent = saw(r">>> TLS 1\.3, Handshake \[length [0-9a-f]+\], KeyUpdate")
        # OpenSSL sends the update asked for with its next record: the next response
        proc.stdin.write(b"GET /ku2 HTTP/1.1\r\nHost: a.example\r\n\r\n")
        proc.stdin.flush()
        second = saw(r"HTTP/1\.1 200 OK", 2)
        back = saw(r"<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], KeyUpdate")
        return bool(first and sent), bool(back), bool(second)
    except BrokenPipeError:
        diag("s_client said:\n" + "".join(out))
        return False, False, False
    finally:
        proc.kill()
        proc.wait()

first, back, second = s_client_key_update()
ok(first, "s_client: a request answered, then a KeyUpdate that asks for one back")
ok(second, "the next request is answered under the new keys")
ok(back, "with the worker's own KeyUpdate before it")

# --- -V ---------------------------------------------------------------------------------------
cp = run_bin(["-V"])
like(cp.stdout + cp.stderr, r"OpenSSL 3\.\d+\.\d+", "-V names the OpenSSL version")

is_(echo.errors, [], "the origin saw no errors")
p.stop()
done_testing()
