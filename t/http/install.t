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


def user_exists(name):
    return subprocess.run(["id", "-u", name], capture_output=True).returncode == 0


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
like(text, r'(?m)^user = "portico";', "...its workers run as the system user portico")
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
ok(not re.search(r"(?m)^User=", u), "...no User=: the master stays root, the workers switch to the configuration's user")

r = subprocess.run([D(sbindir + "/portico"), "-t", "-c", conf], capture_output=True, text=True)
if is_root() and not user_exists("portico"):
    # a DESTDIR install creates no user (a package's scripts do): as root, -t says so
    is_((r.returncode, r.stderr.strip().splitlines()[:1]), (1, ['portico: %s: user "portico" does not exist' % conf]),
        "as root without a portico user, -t of the installed configuration names the missing user")
    with open(conf + ".nobody", "w") as f:
        f.write(text.replace('user = "portico";', 'user = "nobody";'))
    r = subprocess.run([D(sbindir + "/portico"), "-t", "-c", conf + ".nobody"], capture_output=True, text=True)
    os.unlink(conf + ".nobody")
    is_((r.returncode, r.stderr.strip() or r.stdout.strip()),
        (0, "portico: configuration file %s.nobody test is successful" % conf),
        "...otherwise the installed binary accepts the installed configuration")
else:
    is_((r.returncode, r.stderr.strip() or r.stdout.strip()),
        (0, "portico: configuration file %s test is successful" % conf), "the installed binary accepts the installed configuration")

rules = D(sysconfdir + "/portico/rules/portico-rules.conf")
ok(os.path.isfile(rules), "the rule set: sysconfdir/portico/rules/portico-rules.conf")
with_rules = D(sysconfdir + "/portico/with-rules.conf")
with open(with_rules, "w") as f:
    f.write('listeners = ( { address = "127.0.0.1:1"; } );\nuser = "nobody";\n'
            'filters = {\n  rules = (\n@include "rules/portico-rules.conf"\n  );\n'
            '  global = { rules = [ "sqli", "xss", "traversal", "cmdi", "scanner" ]; };\n};\n'
            'routes = ( { return = { status = 204; }; } );\n')
r = subprocess.run([D(sbindir + "/portico"), "-t", "-c", with_rules], capture_output=True, text=True)
is_((r.returncode, r.stderr.strip() or r.stdout.strip()),
    (0, "portico: configuration file %s test is successful" % with_rules),
    "...which the installed binary loads, included from next to the configuration")
os.unlink(with_rules)

r = subprocess.run(["make", "-s", "-C", builddir, "uninstall", "DESTDIR=" + dest], capture_output=True,
                   text=True, env=env, timeout=60)
left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
is_((r.returncode, left), (0, []), "make uninstall removes every file again")

# --- the system user: created by an install into the system itself (root, no DESTDIR) -----
# Everything goes under a temporary prefix and useradd is a stand-in that records its
# arguments, so the test changes nothing on the machine.
if not is_root():
    skip("the system user is created only by root", 5)
else:
    top = tempfile.mkdtemp(prefix="portico-prefix-")
    tap.add_cleanup(lambda: shutil.rmtree(top, ignore_errors=True))
    calls = os.path.join(top, "useradd.calls")
    fake = os.path.join(top, "fake-useradd")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\nfor a in "$@"; do printf "%%s\\n" "$a"; done >> %s\necho --- >> %s\n' % (calls, calls))
    os.chmod(fake, 0o755)
    dirs = ["prefix=%s" % top, "exec_prefix=%s" % top, "sbindir=%s/sbin" % top, "sysconfdir=%s/etc" % top,
            "localstatedir=%s/var" % top, "runstatedir=%s/var/run" % top, "mandir=%s/man" % top,
            "systemdsystemunitdir=%s/unit" % top, "USERADD=" + fake]

    def install(user, destdir=""):
        if os.path.exists(calls):
            os.unlink(calls)
        r = subprocess.run(["make", "-s", "-C", builddir, "install", "DESTDIR=" + destdir, "PORTICO_USER=" + user] + dirs,
                           capture_output=True, text=True, env=env, timeout=120)
        made = open(calls).read().split("---\n")[:-1] if os.path.exists(calls) else []
        subprocess.run(["make", "-s", "-C", builddir, "uninstall", "DESTDIR=" + destdir] + dirs,
                       capture_output=True, text=True, env=env, timeout=60)
        return r, [m.split("\n")[:-1] for m in made]

    missing = "portico-t%d" % os.getpid()
    ok(not user_exists(missing), "(no user %s on this machine)" % missing)
    r, made = install(missing)
    is_((r.returncode, made), (0, [["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                                    "--shell", "/usr/sbin/nologin", "--comment", "portico reverse proxy", missing]]),
        "make install as root, no DESTDIR: a missing user is created as a system user without home or shell")
    like(r.stdout, r"creating the system user %s" % missing, "...and make says so")
    r, made = install("nobody")
    is_((r.returncode, made), (0, []), "...an existing user is left alone")
    r, made = install(missing, destdir=os.path.join(top, "dest"))
    is_((r.returncode, made), (0, []), "...and with DESTDIR (a package build) no user is created")
done_testing()
