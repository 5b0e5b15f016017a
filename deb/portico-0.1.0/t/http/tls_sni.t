#!/usr/bin/env python3
# SNI picks the certificate: names come from each certificate's subjectAltName (its CN
# when it has none); exact names first, then a wildcard covering one label; the first
# certificate serves everything else (no SNI, an unknown name). An RSA and an ECDSA
# certificate for the same name are both served, each to the clients that support it.
# Two certificates of the same key type for one name are a -t error naming the file.
import os, re, ssl, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

ca = CA()
default = ca.issue("default", sans=["default.example"], serial=0x101)
a = ca.issue("a", sans=["a.example", "www.a.example"], serial=0x102)
wild = ca.issue("wild", sans=["*.wild.example"], serial=0x103)
b_rsa = ca.issue("b-rsa", sans=["b.example"], key="rsa", serial=0x104)
b_ec = ca.issue("b-ec", sans=["b.example"], serial=0x105)
cn_only = ca.issue("cn-only", cn="cn.example", serial=0x106)
exact_in_wild = ca.issue("x-wild", sans=["x.wild.example"], serial=0x107)

p = Portico(tls_config([default, a, wild, b_rsa, b_ec, cn_only, exact_in_wild]))
port = p.port()


def serial(sni, **kw):
    r, info = tls_get(port, ca, host="h.example", sni=sni, **kw)
    if r.status != 200:
        return "status %d" % r.status
    return info.serial


is_(serial("a.example"), 0x102, "exact name: its certificate")
is_(serial("www.a.example"), 0x102, "a second name of the same certificate")
is_(serial("A.Example"), 0x102, "names compare without case")
is_(serial("y.wild.example"), 0x103, "a wildcard covers one label")
is_(serial("x.wild.example"), 0x107, "an exact name wins over a wildcard")
is_(serial("a.b.wild.example"), 0x101, "but not two labels: the default")
is_(serial("wild.example"), 0x101, "nor the bare suffix: the default")
is_(serial("cn.example"), 0x106, "a certificate without SAN is found by its CN")
is_(serial("unknown.example"), 0x101, "an unknown name gets the first certificate")
is_(serial(None), 0x101, "no SNI at all: the first certificate")

# RSA and ECDSA for b.example: a TLS 1.2 client that only takes one key type gets it
is_(serial("b.example", max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256"),
    0x104, "b.example to an RSA-only client: the RSA certificate")
is_(serial("b.example", max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
    0x105, "b.example to an ECDSA-only client: the ECDSA certificate")
in_(serial("b.example"), [0x104, 0x105], "a TLS 1.3 client gets one of them")
# the name's other certificate is not offered to a client that cannot use it: a client
# taking only RSA for a.example (ECDSA only) fails
try:
    serial("a.example", max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    ok(False, "no RSA certificate for a.example: an RSA-only client is refused")
except (ssl.SSLError, ConnectionError):
    ok(True, "no RSA certificate for a.example: an RSA-only client is refused")

# --- -t: the same name twice with the same key type --------------------------------------------
a2 = ca.issue("a-again", sans=["www.a.example"], serial=0x108)
bad = Portico(tls_config([default, a, a2]), start=False)
cp = run_bin(["-t", "-c", bad.conf_path])
is_(cp.returncode, 1, "-t: two ECDSA certificates for www.a.example fail")
like(cp.stderr, r"portico\.conf:\d+: listeners\[0\]\.tls\.certificates\[2\]: %s: "
     r"www\.a\.example is already served by certificates\[1\] \(%s\), of the same key type "
     r"\(ECDSA\)" % (re.escape(a2.cert), re.escape(a.cert)), "naming both files and the name")
cp = run_bin(["-t", "-c", Portico(tls_config([default, b_rsa, b_ec]), start=False).conf_path])
is_(cp.returncode, 0, "-t: an RSA and an ECDSA certificate for one name are fine")

p.stop()
done_testing()
