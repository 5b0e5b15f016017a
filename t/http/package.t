#!/usr/bin/env python3
# The Debian package: `make deb` builds it; its files and conffiles; lintian reports no
# error; installed into a scratch root (dpkg --root, maintainer scripts run chrootless
# with DPKG_ROOT) it has the binary, the configuration, the unit, the logrotate file, the
# man page, /etc/portico/conf.d/, the portico system user, and `portico -t` passes on the
# installed configuration (seen with the scratch root's users, in a mount namespace of
# its own); the installed binary runs, reloads, reopens its logs and stops with only the
# unit's capability bounding set and no_new_privs; purge removes everything. Needs root
# and the Debian tools (skipped otherwise); PORTICO_TEST_DEB=0 skips it (it builds the
# whole package: about a minute).
import glob, os, re, shutil, signal, subprocess, sys, tempfile, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *
import tap

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 900)

if os.environ.get("PORTICO_TEST_DEB") == "0":
    skip_all("PORTICO_TEST_DEB=0")
for tool in ("dpkg-buildpackage", "dh", "dpkg-deb", "lintian", "unshare", "setpriv"):
    if not shutil.which(tool):
        skip_all("%s is not installed" % tool)
if not is_root():
    skip_all("installing into a scratch root and switching users need root")
builddir = os.path.dirname(os.path.dirname(portico_bin()))
if not os.path.exists(os.path.join(builddir, "Makefile")):
    skip_all("no configured build tree next to %s" % portico_bin())

env = dict(os.environ)
for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
    env.pop(k, None)

# -- make deb
r = subprocess.run(["make", "-s", "-C", builddir, "deb"], capture_output=True, text=True, env=env,
                   timeout=800)
is_(r.returncode, 0, "make deb succeeds")
if r.returncode:
    diag(r.stdout[-3000:] + r.stderr[-3000:])
    done_testing()
    sys.exit(1)
debs = [d for d in glob.glob(os.path.join(builddir, "deb", "portico_*.deb"))]
is_(len(debs), 1, "one package: %s" % [os.path.basename(d) for d in debs])
deb = debs[0]

files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
listed = set(re.findall(r"\./(\S*)", files))
for path in ("usr/sbin/portico", "etc/portico/portico.conf", "etc/portico/conf.d/",
             "lib/systemd/system/portico.service", "etc/logrotate.d/portico",
             "usr/share/man/man8/portico.8.gz", "var/log/portico/", "usr/share/doc/portico/copyright"):
    ok(path in listed, "the package has /%s" % path)
ctrl = tempfile.mkdtemp(prefix="portico-deb-ctrl-")
add_cleanup(lambda: shutil.rmtree(ctrl, ignore_errors=True))
subprocess.run(["dpkg-deb", "-e", deb, ctrl], check=True)
conffiles = open(os.path.join(ctrl, "conffiles")).read().split()
ok("/etc/portico/portico.conf" in conffiles and "/etc/logrotate.d/portico" in conffiles,
   "the configuration and the logrotate file are conffiles")

lint = subprocess.run(["lintian", "--fail-on", "error", "--allow-root", deb], capture_output=True,
                      text=True, timeout=300)
errors = [l for l in lint.stdout.splitlines() if l.startswith("E:")]
is_((lint.returncode, errors), (0, []), "lintian: no error")
for l in lint.stdout.splitlines():
    diag("lintian: " + l)

# -- install into a scratch root
root = tempfile.mkdtemp(prefix="portico-root-")
add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
for d in ("etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "run"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
for f in ("passwd", "group", "shadow", "gshadow", "login.defs"):
    if os.path.exists("/etc/" + f):
        shutil.copy2("/etc/" + f, os.path.join(root, "etc", f))
R = lambda p: os.path.join(root, p.lstrip("/"))
DPKG = ["dpkg", "--root=" + root, "--force-script-chrootless", "--force-depends",
        "--log=" + R("/var/log/dpkg.log")]
r = subprocess.run(DPKG + ["-i", deb], capture_output=True, text=True, timeout=120)
is_(r.returncode, 0, "dpkg --root installs it (maintainer scripts with DPKG_ROOT)")
if r.returncode:
    diag(r.stdout + r.stderr)

ok(os.access(R("/usr/sbin/portico"), os.X_OK), "/usr/sbin/portico")
conf = open(R("/etc/portico/portico.conf")).read()
like(conf, r'(?m)^include = \[ "conf\.d/\*\.conf" \];', "the configuration includes conf.d/*.conf")
like(conf, r'(?m)^error_log = \{ path = "/var/log/portico/error\.log";', "logs in /var/log/portico")
like(conf, r'(?m)^pid_file = "/run/portico/portico\.pid";', "the pid file in /run/portico")
like(conf, r'(?m)^user = "portico";', "the workers run as portico")
ok(os.path.isdir(R("/etc/portico/conf.d")), "/etc/portico/conf.d/")
unit = open(R("/lib/systemd/system/portico.service")).read()
for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
             "RuntimeDirectory=portico"):
    like(unit, r"(?m)^%s$" % re.escape(line), "the unit has %s" % line)
caps = re.search(r"(?m)^CapabilityBoundingSet=(.*)$", unit)
is_(sorted(caps.group(1).split()) if caps else None,
    ["CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID"],
    "the unit's CapabilityBoundingSet is CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID, no more")
like(unit, r"(?m)^ReadWritePaths=.*/var/log/portico.*/var/cache/portico",
     "the log and cache directories stay writable")
like(open(R("/etc/logrotate.d/portico")).read(), r"postrotate\s+.*portico -s reopen",
     "logrotate: postrotate portico -s reopen")
if shutil.which("systemd-analyze"):
    va = subprocess.run(["systemd-analyze", "verify", "--root=" + root, "portico.service"],
                        capture_output=True, text=True, timeout=60)
    unlike(va.stderr, r"(?i)unknown (key|lvalue)|failed to parse|invalid", "systemd-analyze "
           "verify finds no unknown or invalid setting in the unit")

pw = [l.split(":") for l in open(R("/etc/passwd")) if l.startswith("portico:")]
ok(len(pw) == 1 and int(pw[0][2]) < 1000 and pw[0][6].strip() == "/usr/sbin/nologin"
   and pw[0][5] == "/nonexistent", "postinst created the system user portico (%s)"
   % (":".join(pw[0]).strip() if pw else "none"))
ok(any(l.startswith("portico:") for l in open(R("/etc/group"))), "and its group")
PORTICO_UID = int(pw[0][2]) if pw else -1
st = os.stat(R("/var/log/portico"))
is_((st.st_uid, oct(st.st_mode & 0o7777)), (PORTICO_UID, "0o755"),
    "/var/log/portico: portico's (the workers reopen their logs there), 0755")


def in_root_users(cmd, timeout=30, **kw):
    """cmd with the scratch root's users (its passwd and group bound over the machine's
    in a mount namespace of its own), so getpwnam finds portico."""
    sh = ("mount --bind %s /etc/passwd && mount --bind %s /etc/group && exec \"$@\""
          % (R("/etc/passwd"), R("/etc/group")))
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", sh,
                             "sh"] + cmd, **kw)


p = in_root_users([R("/usr/sbin/portico"), "-t", "-c", R("/etc/portico/portico.conf")],
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
out = p.communicate(timeout=30)[0]
is_((p.returncode, out.strip()), (0, "portico: configuration file %s test is successful"
                                   % R("/etc/portico/portico.conf")),
    "portico -t passes on the installed configuration")

# -- the installed binary under the unit's bounding set and no_new_privs
work = tempfile.mkdtemp(prefix="portico-caps-")
os.chmod(work, 0o755)
logs = os.path.join(work, "log")    # as /var/log/portico: the workers' user's; the pid
os.mkdir(logs, 0o755)               # file stays in root's directory, as /run/portico
os.chown(logs, PORTICO_UID, -1)
add_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
port = free_port()
with open(os.path.join(work, "p.conf"), "w") as f:
    f.write("""workers = 2;
user = "portico";
pid_file = "%(w)s/p.pid";
error_log = { path = "%(w)s/log/error.log"; level = "info"; };
access_log = { path = "%(w)s/log/access.log"; format = "main"; buffer_size = 0; };
listeners = ( { name = "main"; address = "127.0.0.1:%(port)d"; } );
routes = ( { path_prefix = "/"; return = { status = 200; body = "caps\\n"; }; } );
""" % {"w": work, "port": port})
bset = ",".join("+" + c[4:].lower() for c in caps.group(1).split())
proc = in_root_users(["setpriv", "--bounding-set=-all," + bset, "--no-new-privs",
                      R("/usr/sbin/portico"), "-c", os.path.join(work, "p.conf")],
                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "stderr"), "w"))
add_cleanup(lambda: proc.poll() is None and proc.kill())
elog = lambda: open(os.path.join(logs, "error.log")).read() if os.path.exists(os.path.join(logs, "error.log")) else ""


def get():
    try:
        with Client(port, timeout=3) as c:
            c.send(build_request("GET", "/", headers=[("Connection", "close")]))
            return c.read_response().body
    except OSError:
        return None


ok(wait_for(lambda: get() == b"caps\n", 15), "under the unit's capabilities it starts and serves")
ok(wait_for(lambda: elog().count("worker started") >= 2, 10), "both workers started")
like(elog(), r'workers run as user "portico"', "its workers run as portico")
proc.send_signal(signal.SIGHUP)
ok(wait_for(lambda: "reload finished: generation 2" in elog() and
            re.search(r"worker \d \(pid \d+, generation 1\) exited with code 0", elog()), 15),
   "a reload (the master signals workers of another user, as that user: no CAP_KILL)")
is_([os.stat(os.path.join(logs, f)).st_uid for f in ("error.log", "access.log")],
    [PORTICO_UID] * 2, "the logs are portico's: created as that user (no CAP_CHOWN)")
os.rename(os.path.join(logs, "access.log"), os.path.join(logs, "access.log.1"))
proc.send_signal(signal.SIGUSR1)
ok(wait_for(lambda: os.path.exists(os.path.join(logs, "access.log")), 10), "SIGUSR1 re-creates the log")
ok(wait_for(lambda: get() == b"caps\n" and os.path.getsize(os.path.join(logs, "access.log")) > 0, 10),
   "and the workers write to it (created as their user: no CAP_CHOWN)")
proc.send_signal(signal.SIGUSR1)
ok(wait_for(lambda: elog().count("reopening log files") >= 2, 10),
   "a second reopen: the master opens portico's error log again (no CAP_DAC_OVERRIDE)")
unlike(elog(), r"\[(error|alert|crit|emerg)\]", "no error in its log")
if tap.failed_count():
    diag(elog()[-3000:])
proc.send_signal(signal.SIGQUIT)
try:
    proc.wait(15)
except subprocess.TimeoutExpired:
    proc.kill()
is_(proc.returncode, 0, "it stops cleanly")
diag(open(os.path.join(work, "stderr")).read()[-2000:])

# -- purge
r = subprocess.run(DPKG + ["--purge", "portico"], capture_output=True, text=True, timeout=120)
is_(r.returncode, 0, "dpkg --purge")
left = [p for p in ("/usr/sbin/portico", "/etc/portico", "/var/log/portico", "/var/cache/portico",
                    "/lib/systemd/system/portico.service", "/etc/logrotate.d/portico")
        if os.path.exists(R(p))]
is_(left, [], "purge leaves nothing of the package behind")
done_testing()
