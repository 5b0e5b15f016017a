#!/usr/bin/env python3
# Client certificates: verify_client = "required" (no certificate, or one the client CA
# did not sign: the handshake fails, logged), "optional" (none is fine; a bad one is not),
# and the route key client_cert_headers passing the verified subject and the SHA-256 of
# the certificate to the origin, while a client's own fields of those names never get
# through. A resumed session keeps its client's identity. -t errors for the keys.
import hashlib, os, re, ssl, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

server_ca = CA("server CA")
site = server_ca.issue("site", sans=["a.example"])
clients = CA("clients CA")
alice = clients.issue("alice", cn="alice", client=True, serial=0xa11ce)
other = CA("other CA")
mallory = other.issue("mallory", cn="alice", client=True)     # same name, wrong CA

def der_sha256(c):
    with open(c.cert) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()

echo = Origin.echo()
HEADERS = 'client_cert_headers = { subject = "X-Client-Subject"; sha256 = "X-Client-SHA256"; };'
routes = ['{ path_prefix = "/id"; upstream = "echo"; %s }' % HEADERS,
          '{ path_prefix = "/plain"; upstream = "echo"; }']
conf = tls_config([site], routes=routes, upstreams=[upstream("echo", [echo.address])],
                  client_ca=clients.cert, verify_client="required")
# a second TLS listener, optional
conf = conf.replace('listeners = ( ', 'listeners = ( { name = "opt"; address = "127.0.0.1:{port2}"; %s },\n  '
                    % tls_block([site], client_ca=clients.cert, verify_client="optional"))
p = Portico(conf)
req_port, opt_port = p.port(), p.port("port2")

SPOOF = [("X-Client-Subject", "CN=admin"), ("X-Client-SHA256", "00" * 32),
         ("X_Client_Subject", "CN=twin")]


def seen(port, cert=None, target="/id", headers=SPOOF, session=None):
    """What the origin got: (status, subject fields, sha256 fields, twin fields, info)."""
    n0 = echo.requests
    r, info = tls_get(port, server_ca, target=target, sni="a.example",
                      cert=cert, headers=headers, session=session)
    if r.status != 200 or echo.wait_requests(n0 + 1, 3) <= n0:
        return r.status, None, None, None, info
    q = echo.received[-1]
    return (r.status, q.header_all("X-Client-Subject"), q.header_all("X-Client-SHA256"),
            q.header_all("X_Client_Subject"), info)


def refused(port, cert, label, log_re):
    n0 = echo.requests
    mark = p.log_mark()
    try:
        r, info = tls_get(port, server_ca, target="/id", sni="a.example", cert=cert)
        ok(False, "%s: refused (got %d)" % (label, r.status))
    except (ssl.SSLError, ConnectionError, HTTPError) as e:
        ok(True, "%s: refused (%s)" % (label, type(e).__name__))
    ok(p.wait_log(r"refused connection from 127\.0\.0\.1 on 127\.0\.0\.1:%d: TLS handshake "
                  r"failed: %s" % (port, log_re), start=mark), "%s: logged" % label)
    is_(echo.requests, n0, "%s: no request reached the origin" % label)


# --- required --------------------------------------------------------------------------------
st, subj, fp, twin, info = seen(req_port, alice)
is_(st, 200, "required: a certificate from client_ca is accepted")
is_(subj, ["O=portico tests,CN=alice"], "the verified subject goes to the origin (RFC 2253)")
is_(fp, [der_sha256(alice)], "and the certificate's SHA-256")
is_(twin, [], "the client's own fields of those names (and '_' twins) are gone")

refused(req_port, None, "required, no certificate", r"peer did not return a certificate")
refused(req_port, mallory, "required, a certificate of another CA",
        r"certificate verify failed \(unable to get local issuer certificate\)")
refused(req_port, clients.issue("expired", cn="old", client=True, days=-1),
        "required, an expired certificate", r"certificate verify failed \(certificate has expired\)")

# a resumed session keeps the identity it was verified with
st, subj, fp, twin, info = seen(req_port, alice)
st2, subj2, fp2, twin2, info2 = seen(req_port, alice, session=info.session)
is_((st2, info2.resumed, subj2, fp2), (200, True, ["O=portico tests,CN=alice"], [der_sha256(alice)]),
    "a resumed session passes the same subject and fingerprint")

# a route without client_cert_headers leaves those fields alone (they mean nothing there)
st, subj, fp, twin, info = seen(req_port, alice, target="/plain")
is_((st, subj, fp), (200, ["CN=admin"], ["00" * 32]), "a route without the key forwards the fields as sent")

# --- optional --------------------------------------------------------------------------------
st, subj, fp, twin, info = seen(opt_port, None)
is_((st, subj, fp, twin), (200, [], [], []),
    "optional, no certificate: served, no identity (and the client's fields dropped)")
st, subj, fp, twin, info = seen(opt_port, alice)
is_((st, subj, fp), (200, ["O=portico tests,CN=alice"], [der_sha256(alice)]),
    "optional, with a certificate: its identity")
refused(opt_port, mallory, "optional, a certificate of another CA",
        r"certificate verify failed \(unable to get local issuer certificate\)")

# --- -t ---------------------------------------------------------------------------------------
def t_error(label, conf, want):
    q = Portico(conf, start=False)
    cp = run_bin(["-t", "-c", q.conf_path])
    is_(cp.returncode, 1, "-t: %s fails" % label)
    like(cp.stderr, want, "-t: %s: the message" % label)

t_error("verify_client without client_ca", tls_config([site], verify_client="optional"),
        r"portico\.conf:\d+: key 'listeners\[0\]\.tls\.verify_client': \"optional\" needs client_ca")
t_error("client_ca without verify_client", tls_config([site], client_ca=clients.cert),
        r"key 'listeners\[0\]\.tls\.client_ca': client certificates are not asked for")
t_error("a missing client_ca", tls_config([site], client_ca="/nonexistent/ca.pem", verify_client="required"),
        r"key 'listeners\[0\]\.tls\.client_ca': /nonexistent/ca\.pem: cannot open: No such file")
t_error("a client_ca with no certificate", tls_config([site], client_ca=site.key, verify_client="required"),
        r"key 'listeners\[0\]\.tls\.client_ca': %s: (cannot load CA certificates|no CA certificate)" % re.escape(site.key))
t_error("verify_client = \"maybe\"", tls_config([site], client_ca=clients.cert, verify_client="maybe"),
        r"key 'listeners\[0\]\.tls\.verify_client': \"maybe\" is not one of off, optional, required")
t_error("client_cert_headers with a bad name",
        tls_config([site], routes=['{ path_prefix = "/"; upstream = "echo"; client_cert_headers = { subject = "X Bad"; }; }'],
                   upstreams=[upstream("echo", [echo.address])]),
        r"key 'routes\[0\]\.client_cert_headers\.subject': \"X Bad\" is not a valid field name")

is_(echo.errors, [], "the origin saw no errors")
p.stop()
done_testing()
