#!/usr/bin/env python3
# TLS configuration errors, as -t reports them (FILE:LINE, the key, and the file at
# fault): a key that does not match its certificate, an expired or unreadable
# certificate, a file with no PEM in it, an encrypted key, bad cipher lists, versions and
# ALPN names, and the upstream tls keys. A good file passes.
import os, re, shutil, subprocess, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

ca = CA()
good = ca.issue("good", sans=["a.example"])
other = ca.issue("other", sans=["b.example"])
expired = ca.issue("expired", sans=["a.example"], days=-1)
encrypted_key = os.path.join(ca.dir, "encrypted.key")
subprocess.run(["openssl", "pkey", "-in", good.key, "-aes256", "-passout", "pass:secret",
                "-out", encrypted_key], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
not_pem = os.path.join(ca.dir, "not.pem")
with open(not_pem, "w") as f:
    f.write("this is not a certificate\n")


class C:
    def __init__(self, cert, key):
        self.cert, self.key = cert, key


def check(label, conf, want=None):
    q = Portico(conf, start=False)
    cp = run_bin(["-t", "-c", q.conf_path])
    if want is None:
        is_(cp.returncode, 0, "-t: %s passes" % label)
        like(cp.stderr, r"test is successful", "-t: %s: successful" % label)
        return
    is_(cp.returncode, 1, "-t: %s fails" % label)
    like(cp.stderr, r"portico\.conf:\d+: " + want, "-t: %s: names the key and the file" % label)


CERT0 = r"key 'listeners\[0\]\.tls\.certificates\[0\]\.cert': "
KEY0 = r"key 'listeners\[0\]\.tls\.certificates\[0\]\.key': "
E = re.escape

check("a good certificate", tls_config([good]))
check("a key that does not match its certificate", tls_config([C(good.cert, other.key)]),
      KEY0 + r"%s: the key does not match the certificate %s" % (E(other.key), E(good.cert)))
check("an expired certificate", tls_config([expired]),
      CERT0 + r"%s: the certificate has expired \(not after .+ GMT\)" % E(expired.cert))
check("a missing certificate file", tls_config([C("/nonexistent/c.pem", good.key)]),
      CERT0 + r"/nonexistent/c\.pem: cannot open: No such file or directory")
check("a missing key file", tls_config([C(good.cert, "/nonexistent/k.pem")]),
      KEY0 + r"/nonexistent/k\.pem: cannot open: No such file or directory")
check("a certificate file without PEM", tls_config([C(not_pem, good.key)]),
      CERT0 + r"%s: no PEM certificate in it" % E(not_pem))
check("a key file without PEM", tls_config([C(good.cert, not_pem)]),
      KEY0 + r"%s: no PEM private key in it, or an encrypted one" % E(not_pem))
check("an encrypted key", tls_config([C(good.cert, encrypted_key)]),
      KEY0 + r"%s: no PEM private key in it, or an encrypted one \(portico reads no passphrase\)"
      % E(encrypted_key))
check("the second certificate's key", tls_config([good, C(other.cert, good.key)]),
      r"key 'listeners\[0\]\.tls\.certificates\[1\]\.key': %s: the key does not match" % E(good.key))
check("a directory as the certificate", tls_config([C(ca.dir, good.key)]),
      CERT0 + r"%s: no PEM certificate in it" % E(ca.dir))

check("no certificates key", tls_config([good]).replace(
      'certificates = ( { cert = "%s"; key = "%s"; } );' % (good.cert, good.key), ""),
      r"key 'listeners\[0\]\.tls': missing key 'certificates'")
check("an empty certificates list", tls_config([good]).replace(
      'certificates = ( { cert = "%s"; key = "%s"; } );' % (good.cert, good.key), "certificates = ( );"),
      r"key 'listeners\[0\]\.tls\.certificates': empty: a TLS listener needs a certificate")
check("a certificate without key", tls_config([good]).replace('key = "%s"; ' % good.key, ""),
      r"listeners\[0\]\.tls\.certificates\[0\]: missing key 'key'")
check("an unknown key", tls_config([good], session_ticket=True),
      r"key 'listeners\[0\]\.tls\.session_ticket': unknown key \(did you mean 'session_tickets'\?\)")
check("min_version SSLv3", tls_config([good], min_version="SSLv3"),
      r"key 'listeners\[0\]\.tls\.min_version': \"SSLv3\" is not one of TLSv1, TLSv1\.1, TLSv1\.2, TLSv1\.3")
check("ciphers that match nothing", tls_config([good], ciphers="NOPE"),
      r"key 'listeners\[0\]\.tls\.ciphers': \"NOPE\": no cipher match")
check("ciphersuites that match nothing", tls_config([good], ciphersuites="TLS_NOPE"),
      r"key 'listeners\[0\]\.tls\.ciphersuites': \"TLS_NOPE\": no cipher match")
check("alpn h3", tls_config([good], alpn='[ "h3", "http/1.1" ]'),
      r"key 'listeners\[0\]\.tls\.alpn\[0\]': \"h3\": not a protocol portico speaks \(h2, http/1\.1\)")
check("ticket_key_rotation_s 0", tls_config([good], ticket_key_rotation_s=0),
      r"key 'listeners\[0\]\.tls\.ticket_key_rotation_s': 0 is out of range 1\.\.604800")
check("session_cache_size too big", tls_config([good], session_cache_size=2000000),
      r"key 'listeners\[0\]\.tls\.session_cache_size': 2000000 is out of range 0\.\.1000000")
check("every key set", tls_config([good], min_version="TLSv1.3", ciphers="HIGH",
      ciphersuites="TLS_AES_128_GCM_SHA256", alpn='[ "http/1.1" ]', session_tickets=False,
      ticket_key_rotation_s=60, session_cache_size=100, session_timeout_s=60,
      handshake_timeout_ms=500, client_ca=ca.cert, verify_client="optional"))

# --- upstream tls ----------------------------------------------------------------------------
def up_conf(tls):
    return tls_config([good], routes=['{ path_prefix = "/"; upstream = "o"; }'],
                      upstreams=['{ name = "o"; servers = ( { address = "127.0.0.1:9"; } ); '
                                 'tls = %s; }' % tls])

check("upstream tls", up_conf('{ verify = true; ca = "%s"; sni = "o.example"; }' % ca.cert))
check("upstream tls with the system CAs", up_conf('{ }'))
check("upstream tls without verification", up_conf('{ verify = false; }'))
check("upstream ca missing", up_conf('{ ca = "/nonexistent/ca.pem"; }'),
      r"key 'upstreams\[0\]\.tls\.ca': /nonexistent/ca\.pem: cannot open: No such file or directory")
check("upstream ca without a certificate", up_conf('{ ca = "%s"; }' % not_pem),
      r"key 'upstreams\[0\]\.tls\.ca': %s: cannot load CA certificates" % E(not_pem))
check("upstream sni not a name", up_conf('{ sni = "not a name"; }'),
      r"key 'upstreams\[0\]\.tls\.sni': \"not a name\" is not a host name")
check("upstream ca with verify = false", up_conf('{ verify = false; ca = "%s"; }' % ca.cert),
      r"key 'upstreams\[0\]\.tls\.ca': origin certificates are not verified \(verify = false\)")
check("upstream tls unknown key", up_conf('{ verify_depth = 3; }'),
      r"key 'upstreams\[0\]\.tls\.verify_depth': unknown key")

done_testing()
