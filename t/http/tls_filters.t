#!/usr/bin/env python3
# Filtering on a TLS listener: the accept pipeline runs the connection limits before the
# TLS handshake (a refused client gets no ServerHello, so it costs no signature), and the
# request filters (access lists, rules) see requests that came over TLS like any other.
import os, re, socket, ssl, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

ca = CA()
cert = ca.issue("site", sans=["a.example"], serial=0x7001)
routes = ['{ path_prefix = "/office/"; allow = [ "192.0.2.0/24" ]; deny = [ "all" ]; '
          'return = { status = 200; body = "office\\n"; }; }',
          '{ path_prefix = "/"; rules = [ "traversal" ]; return = { status = 200; body = "tls\\n"; }; }']
extra = """filters = {
  rules = ( { name = "traversal"; match = "/etc/passwd"; in = [ "path" ]; action = "deny"; status = 403; } );
  conn_limits = ( { name = "one"; key = "$remote_addr"; max = 1; listeners = [ "main" ]; } );
};"""
p = Portico(tls_config([cert], routes=routes, extra=extra))
port = p.port()

# the harness's readiness probe held a connection a moment ago: the first client may
# have to wait for it to be given back
def first():
    try:
        return tls_client(port, ca, sni="a.example")
    except (ssl.SSLError, OSError):
        return None
held = wait_for(first, 5)
held.send(build_request("GET", "/", "a.example"))
r = held.read_response()
is_((r.status, r.body), (200, b"tls\n"), "the first TLS connection is served")

# the second: the limit closes it before any handshake byte is answered
mark = p.log_mark()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
ctx = client_ctx(ca)
try:
    t = ctx.wrap_socket(s, server_hostname="a.example")
    ok(False, "a second connection over the limit gets no handshake")
except (ssl.SSLError, OSError) as e:
    ok(True, "a second connection over the limit gets no handshake (%s)" % type(e).__name__)
ok(p.wait_log(r"refused connection from 127\.0\.0\.1 on 127\.0\.0\.1:%d: conn_limit \"one\": "
              r"1 connections for \"127\.0\.0\.1\" \(max 1\)" % port, 5, mark),
   "refused by the connection limit, logged")
ok(not re.search(r"TLS handshake (with|failed)", p.error_log()[mark:]),
   "and no handshake was attempted for it")

# request filters over TLS, on the held connection
held.send(build_request("GET", "/files/%65tc/passwd", "a.example"))
r = held.read_response()
is_(r.status, 403, "a rule sees the decoded path of a request that came over TLS")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 403 Forbidden \(rule \"traversal\" matched", 5, mark),
   "logged with the rule")
held.close()           # a refusal closes its connection (and gives back its count)
held = wait_for(first, 5)
ok(held, "the limit's count was given back when the connection closed")
held.send(build_request("GET", "/office/x", "a.example"))
r = held.read_response()
is_(r.status, 403, "an access list refuses a client not in it over TLS")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 403 Forbidden \(access denied", 5, mark),
   "logged as an access refusal")
held.close()

# the connection is given back when it closes: a new one is served
def served():
    try:
        r, info = tls_get(port, ca, sni="a.example")
        return r.status == 200
    except (ssl.SSLError, OSError):
        return False
ok(wait_for(served, 5), "once the first closes, a new TLS connection is served")
p.stop()
done_testing()
