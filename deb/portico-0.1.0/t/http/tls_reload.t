#!/usr/bin/env python3
# Certificates and keys on reload: a HUP after the files were replaced (a renewal) serves
# the new certificate to new handshakes (checked by its serial) while an established
# connection carries on; a HUP with a key that does not match, or an expired
# certificate, keeps the running configuration and says why. Keys are read by the master:
# workers (not root) never open them, so a key only root can read works.
import os, re, shutil, stat, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from tlstest import *

if not openssl_available():
    skip_all("no openssl command")

ca = CA()
v1 = ca.issue("v1", sans=["a.example"], serial=0x1111)
v2 = ca.issue("v2", sans=["a.example"], serial=0x2222)
v3 = ca.issue("v3", sans=["a.example"], serial=0x3333)
expired = ca.issue("expired", sans=["a.example"], serial=0x4444, days=-1)

# the listener's files, replaced in place as a renewal does
live = os.path.join(ca.dir, "live")
os.mkdir(live, 0o700)               # only root (the master) can even look inside
CERT, KEY = os.path.join(live, "cert.pem"), os.path.join(live, "key.pem")


def install(c, key=None):
    for src, dst in ((c.cert, CERT), (key or c.key, KEY)):
        shutil.copyfile(src, dst + ".new")
        os.chmod(dst + ".new", 0o600)
        os.rename(dst + ".new", dst)


class Live:
    cert, key = CERT, KEY


install(v1)
LIMITS = ("limits = { keepalive_timeout_ms = 10000; drain_timeout_ms = 8000; "
          "drain_idle_grace_ms = 5000; };")
p = Portico(tls_config([Live], workers=2, limits=LIMITS))
port = p.port()


def serial():
    r, info = tls_get(port, ca, sni="a.example")
    return info.serial if r.status == 200 else "status %d" % r.status


is_(serial(), 0x1111, "the first certificate is served")

if is_root():
    workers = p.wait_workers(2)
    ok(all(proc_uid(w)[1] != 0 for w in workers), "workers do not run as root")
    st = os.stat(KEY)
    ok(st.st_uid == 0 and not st.st_mode & 0o077 and not os.stat(live).st_mode & 0o077,
       "the key is readable by root alone (0600 in a 0700 directory)")
    ok(True, "yet the workers serve with it: the master read it")
else:
    skip("not root: workers run as the test's user", 3)

# an established connection
c = tls_client(port, ca, sni="a.example")
c.send(build_request("GET", "/before", "a.example"))
is_(c.read_response().status, 200, "a keep-alive connection, before the HUP")

# --- a renewal -------------------------------------------------------------------------------
install(v2)
old = p.worker_pids()
mark = p.log_mark()
p.reload()
ok(p.wait_log(r"reload finished: generation 2", start=mark), "HUP with a new certificate: reloaded")
# the old workers stop accepting as they start draining; the connection above stays open
# for drain_idle_grace_ms
is_(p.wait_log_count(r"gracefully stopping", 2, start=mark), 2, "the old workers drain")
is_(serial(), 0x2222, "new handshakes get the new certificate (its serial)")
c.send(build_request("GET", "/after", "a.example"))
r = c.read_response()
is_(r.status, 200, "the connection established before the HUP carries on")
is_(r.header("Connection"), "close", "(and is closed after that request: its worker drains)")
c.close()
p.wait_workers(2, exclude=old, timeout=15)

# --- a bad HUP: the key does not match -------------------------------------------------------
install(v3, key=v1.key)
mark = p.log_mark()
p.reload()
ok(p.wait_log(r"reload failed, keeping the running configuration: .*portico\.conf:\d+: key "
              r"'listeners\[0\]\.tls\.certificates\[0\]\.key': %s: the key does not match the "
              r"certificate %s" % (re.escape(KEY), re.escape(CERT)), start=mark),
   "HUP with a key that does not match: refused, naming the files")
is_(serial(), 0x2222, "the running certificate is still served")

install(expired)
mark = p.log_mark()
p.reload()
ok(p.wait_log(r"reload failed, keeping the running configuration: .*%s: the certificate has "
              r"expired" % re.escape(CERT), start=mark), "HUP with an expired certificate: refused")
is_(serial(), 0x2222, "still the running certificate")

install(v3)
mark = p.log_mark()
p.reload()
ok(p.wait_log(r"reload finished: generation 3", start=mark), "fixed: the next HUP reloads")
p.wait_log_count(r"gracefully stopping", 2, start=mark)
is_(serial(), 0x3333, "and serves the third certificate")
is_(p.log_count(r"killed by signal"), 0, "no worker died")
p.stop()
done_testing()
