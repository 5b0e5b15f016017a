#!/usr/bin/env python3
# make install (into a DESTDIR): the binary in sbindir, the sample configuration in
# sysconfdir/portico with its pid file moved to runstatedir, the man page, the systemd unit
# (Type=notify, graceful stop, reload after a check) with the build's paths; the installed
# binary accepts the installed configuration; make uninstall removes them again.
import os, re, shutil, subprocess, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

builddir = os.path.dirname(os.path.dirname(portico_bin()))
if not os.path.exists(os.path.join(builddir, "Makefile")) or not shutil.which("make"):
    skip_all("no configured build tree next to %s" % portico_bin())


def make_var(name):
    r = subprocess.run(["make", "-s", "-C", builddir, "--no-print-directory", "print-" + name],
                       capture_output=True, text=True, env=env)
    return r.stdout.strip()


env = dict(os.environ)
for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
    env.pop(k, None)
dest = tempfile.mkdtemp(prefix="portico-install-")
tap.add_cleanup(lambda: shutil.rmtree(dest, ignore_errors=True))
r = subprocess.run(["make", "-s", "-C", builddir, "install", "DESTDIR=" + dest], capture_output=True,
                   text=True, env=env, timeout=120)
is_(r.returncode, 0, "make install DESTDIR=... succeeds")
if r.returncode:
    diag(r.stdout[-2000:] + r.stderr[-2000:])

sbindir, sysconfdir, mandir = make_var("sbindir"), make_var("sysconfdir"), make_var("mandir")
runstatedir, unitdir = make_var("runstatedir"), make_var("systemdsystemunitdir")
ok(all(x.startswith("/") for x in (sbindir, sysconfdir, mandir, runstatedir)), "the install paths are known")
D = lambda p: dest + p
ok(os.access(D(sbindir + "/portico"), os.X_OK), "the binary: sbindir/portico")
conf = D(sysconfdir + "/portico/portico.conf")
ok(os.path.isfile(conf), "the sample configuration: sysconfdir/portico/portico.conf")
text = open(conf).read() if os.path.isfile(conf) else ""
like(text, r'(?m)^pid_file = "%s/portico\.pid";$' % re.escape(runstatedir), "...its pid file in runstatedir")
ok(os.path.isfile(D(mandir + "/man8/portico.8")), "the man page: portico(8)")
unit = D(unitdir + "/portico.service")
ok(os.path.isfile(unit), "the systemd unit: %s/portico.service" % unitdir)
u = open(unit).read() if os.path.isfile(unit) else ""
like(u, r"(?m)^ExecStart=%s/portico -c %s/portico/portico\.conf$" % (re.escape(sbindir), re.escape(sysconfdir)),
     "...starting the installed binary on the installed configuration")
ok(all(re.search(r"(?m)^%s$" % l, u) for l in (r"Type=notify", r"NotifyAccess=all", r"KillSignal=SIGQUIT",
                                                r"ExecReload=/bin/kill -HUP \$MAINPID")),
   "...Type=notify (NotifyAccess=all for upgrades), QUIT to stop, HUP to reload")
ok("@" not in u.replace("@.", ""), "...every @placeholder@ filled in")

r = subprocess.run([D(sbindir + "/portico"), "-t", "-c", conf], capture_output=True, text=True)
is_((r.returncode, r.stderr.strip() or r.stdout.strip()),
    (0, "portico: configuration file %s test is successful" % conf), "the installed binary accepts the installed configuration")

r = subprocess.run(["make", "-s", "-C", builddir, "uninstall", "DESTDIR=" + dest], capture_output=True,
                   text=True, env=env, timeout=60)
left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
is_((r.returncode, left), (0, []), "make uninstall removes every file again")
done_testing()
