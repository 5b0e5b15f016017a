"""Helpers for the TLS tests (t/http/tls_*.t): certificates made with the openssl CLI,
client contexts, TLS requests, configs with a TLS listener.

    from tlstest import *
    ca = CA()                                       # a CA in a temp dir (removed at exit)
    c = ca.issue("a", sans=["a.example"], serial=0x1001)   # Cert: .cert .key .serial
    p = Portico(tls_config([c]))                    # listener {port} with tls = { ... }
    r, info = tls_get(p.port(), ca, sni="a.example")   # Response, TLSInfo
    info.serial, info.version, info.alpn, info.resumed, info.session
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import warnings

from proxytest import *
from proxytest import __all__ as _px_all

__all__ = list(_px_all) + [
    "CA", "Cert", "TLSInfo", "client_ctx", "tls_client", "tls_get", "tls_config",
    "tls_block", "server_ctx", "openssl_available", "cert_serial", "ssl", "client_hello",
]

warnings.filterwarnings("ignore", category=DeprecationWarning)   # TLSv1_1 in a test


def openssl_available():
    return shutil.which("openssl") is not None


def _run(args, cwd=None):
    cp = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    if cp.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), cp.stderr))
    return cp.stdout


def _newkey(path, kind):
    if kind == "rsa":
        _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path])
    else:
        _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", path])
    os.chmod(path, 0o600)


class Cert:
    def __init__(self, cert, key, serial, names):
        self.cert, self.key, self.serial, self.names = cert, key, serial, names

    def __repr__(self):
        return "<Cert %s serial %x %r>" % (os.path.basename(self.cert), self.serial, self.names)


class CA:
    """A certificate authority in its own temp dir; issue() makes leaf certificates."""

    def __init__(self, name="portico test CA", key="ec", dir=None):
        self.dir = dir or tempfile.mkdtemp(prefix="portico-tls-")
        os.chmod(self.dir, 0o755)
        if dir is None:
            add_cleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        tag = "".join(ch for ch in name if ch.isalnum())[:24]
        self.key = os.path.join(self.dir, tag + "-ca.key")
        self.cert = os.path.join(self.dir, tag + "-ca.pem")
        _newkey(self.key, key)
        _run(["req", "-x509", "-new", "-key", self.key, "-days", "30", "-subj", "/CN=" + name,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.cert])
        self._n = 0

    def issue(self, tag, sans=(), cn=None, key="ec", serial=None, days=30, client=False,
              ips=()):
        """A certificate signed by this CA: subjectAltName DNS:sans (+ IP:ips; none at all
        when both are empty, so that the CN names it), CN cn (default: the first SAN or
        tag); days < 0 makes one that has expired."""
        self._n += 1
        serial = serial if serial is not None else 0x1000 + self._n
        base = os.path.join(self.dir, tag)
        keyf, csr, ext, crt = base + ".key", base + ".csr", base + ".ext", base + ".pem"
        _newkey(keyf, key)
        cn = cn or (sans[0] if sans else tag)
        _run(["req", "-new", "-key", keyf, "-subj", "/CN=%s/O=portico tests" % cn, "-out", csr])
        lines = ["basicConstraints=CA:FALSE",
                 "extendedKeyUsage=%s" % ("clientAuth" if client else "serverAuth")]
        alt = ["DNS:%s" % s for s in sans] + ["IP:%s" % i for i in ips]
        if alt:
            lines.append("subjectAltName=" + ",".join(alt))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        _run(["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
              "-set_serial", str(serial), "-days", str(days), "-extfile", ext, "-out", crt])
        os.chmod(crt, 0o644)
        return Cert(crt, keyf, serial, list(sans) or [cn])


def cert_serial(pem_or_der_path):
    out = _run(["x509", "-in", pem_or_der_path, "-noout", "-serial"])
    return int(out.strip().split("=", 1)[1], 16)


_contexts = {}


def client_ctx(ca=None, alpn=None, min_version=None, max_version=None, ciphers=None,
               cert=None, tickets=True):
    """A client context that verifies the server against ca (a CA or a path; not the
    host name: tests pick names with SNI), or verifies nothing when ca is None. The same
    arguments give the same context (a session resumes only with the context it was
    made with)."""
    key = (ca.cert if isinstance(ca, CA) else ca, tuple(alpn or ()), min_version,
           max_version, ciphers, cert.cert if cert else None, tickets)
    if key not in _contexts:
        _contexts[key] = _new_client_ctx(ca, alpn, min_version, max_version, ciphers, cert,
                                          tickets)
    return _contexts[key]


def _new_client_ctx(ca, alpn, min_version, max_version, ciphers, cert, tickets):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(ca.cert if isinstance(ca, CA) else ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(cert.cert, cert.key)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def server_ctx(cert, ca_for_clients=None):
    """An origin's context (Origin(..., tls=server_ctx(c)))."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    if ca_for_clients:
        ctx.load_verify_locations(ca_for_clients.cert)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class TLSInfo:
    def __init__(self, s):
        self.version = s.version()
        self.cipher = s.cipher()[0] if s.cipher() else None
        self.alpn = s.selected_alpn_protocol()
        self.resumed = s.session_reused
        self.session = s.session
        der = s.getpeercert(binary_form=True)
        self.der = der
        pc = s.getpeercert() if der else None
        self.serial = int(pc["serialNumber"], 16) if pc else None
        self.subject = pc.get("subject") if pc else None
        self.sans = [v for k, v in pc.get("subjectAltName", ())] if pc else []


def tls_client(port, ca=None, sni=None, ctx=None, session=None, timeout=5, **kw):
    """A raw Client over TLS (handshake done)."""
    ctx = ctx or client_ctx(ca, **kw)
    return Client(port, tls=ctx, sni=sni, session=session, timeout=timeout)


def tls_get(port, ca=None, target="/", host="a.example", sni=None, ctx=None, session=None,
            headers=(), method="GET", body=None, timeout=5, **kw):
    """One request over a fresh TLS connection: (Response, TLSInfo). The session is read
    after the response, when a TLS 1.3 server's tickets have arrived."""
    c = tls_client(port, ca, sni if sni is not None else host, ctx, session, timeout, **kw)
    try:
        c.send(build_request(method, target, host, headers, body))
        r = c.read_response(method)
        return r, TLSInfo(c.sock)
    finally:
        c.close()


def client_hello(sni="a.example"):
    """The bytes of a TLS ClientHello (the client's first flight), for raw-socket tests."""
    ctx = client_ctx(None)
    ib, ob = ssl.MemoryBIO(), ssl.MemoryBIO()
    so = ctx.wrap_bio(ib, ob, server_hostname=sni)
    try:
        so.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return ob.read()


def tls_block(certs, **opts):
    """The text of a listener's tls = { ... } with these Certs, and keys as written
    (strings quoted, booleans and numbers as they are, lists as written)."""
    cs = ", ".join('{ cert = "%s"; key = "%s"; }' % (c.cert, c.key) for c in certs)
    parts = ["certificates = ( %s );" % cs]
    for k, v in opts.items():
        if isinstance(v, bool):
            parts.append("%s = %s;" % (k, "true" if v else "false"))
        elif isinstance(v, int):
            parts.append("%s = %d;" % (k, v))
        elif isinstance(v, str) and v[:1] in "[(":
            parts.append("%s = %s;" % (k, v))
        else:
            parts.append('%s = "%s";' % (k, v))
    return "tls = { %s };" % " ".join(parts)


def tls_config(certs, workers=1, routes=None, upstreams=None, limits=PROXY_LIMITS,
               extra="", plain=False, access_log=True, **opts):
    """A config with a TLS listener "main" on {port} (and, with plain, a plain one
    "plain" on {port2}), routes (default: a return of 200 "tls\\n" for any request,
    /echo headers for the proxy tests are given explicitly)."""
    if routes is None:
        routes = ['{ path_prefix = "/"; return = { status = 200; body = "tls\\n"; }; }']
    if isinstance(routes, str):
        routes = [routes]
    ups = ""
    if upstreams:
        if isinstance(upstreams, str):
            upstreams = [upstreams]
        ups = "upstreams = (\n  %s\n);" % ",\n  ".join(upstreams)
    listeners = ['{ name = "main"; address = "127.0.0.1:{port}"; %s }' % tls_block(certs, **opts)]
    if plain:
        listeners.append('{ name = "plain"; address = "127.0.0.1:{port2}"; }')
    al = ('access_log = { path = "{tmp}/access.log"; format = "main"; enabled = true; '
          'flush_ms = 100; };' if access_log else "")
    return """workers = %d;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
%s
%s
listeners = ( %s );
%s
routes = (
  %s
);
%s
""" % (workers, al, limits, ",\n  ".join(listeners), ups, ",\n  ".join(routes), extra)
