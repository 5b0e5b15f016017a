"""Integration-test harness for portico: start the real binary on a temporary config and
loopback ports, talk to it, look at its processes and logs. See t/README.

    from portico_test import *
    p = Portico(CONF)                 # CONF uses {tmp}, {port}, {port2}, ... placeholders
    r = p.get("/", host="a.example")  # fresh connection, one request, one response
    with p.connect() as c: ...        # raw Client on the main port
    p.stop()                          # SIGQUIT, wait, SIGKILL; also run at exit whatever happens
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import tap
from tap import (plan, ok, is_, isnt, in_, like, unlike, cmp_ok, diag, note, skip, skip_all,
                 done_testing, todo_ok, bail_out, add_cleanup, watchdog)
from httpclient import (Client, Response, Headers, HTTPError, ProtocolError, ResponseTimeout,
                        ConnectionClosed, build_request, chunked, error_body, REASONS,
                        IMF_FIXDATE)

START_TIMEOUT = float(os.environ.get("PORTICO_START_TIMEOUT", "10"))

__all__ = [
    "plan", "ok", "is_", "isnt", "in_", "like", "unlike", "cmp_ok", "diag", "note", "skip",
    "skip_all", "done_testing", "todo_ok", "bail_out", "add_cleanup", "watchdog", "tap",
    "Client", "Response", "Headers", "HTTPError", "ProtocolError", "ResponseTimeout",
    "ConnectionClosed", "build_request", "chunked", "error_body", "REASONS", "IMF_FIXDATE",
    "Portico", "PorticoError", "portico_bin", "srcdir", "run_bin", "free_port", "closed_port",
    "wait_for", "Pid", "proc_start", "proc_children", "proc_ppid", "proc_alive", "proc_uid", "proc_gid", "fd_count", "pipe_count", "rss_kb",
    "refused_re", "BASE_LIMITS", "STANDARD_ROUTES", "standard_config", "is_root",
    "ipv6_available", "portico_version", "proc_limit",
]


# ---------------------------------------------------------------------------------------
# Environment

def srcdir():
    """Top of the source tree: $PORTICO_SRCDIR, else two levels above t/lib."""
    d = os.environ.get("PORTICO_SRCDIR")
    if d:
        return d
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _lsan_suppressions():
    """Sanitizer builds: LeakSanitizer leaves out libconfig's own leak (t/lsan.supp), also
    for a script run without make check, which already passes the file."""
    supp = os.path.join(srcdir(), "t", "lsan.supp")
    opts = os.environ.get("LSAN_OPTIONS", "")
    if "suppressions=" not in opts and os.path.isfile(supp):
        os.environ["LSAN_OPTIONS"] = "suppressions=%s%s" % (supp, ":" + opts if opts else "")


_lsan_suppressions()


def portico_bin(required=True):
    """$PORTICO_BIN, else <srcdir>/server/portico. Skips the script when there is none."""
    b = os.environ.get("PORTICO_BIN") or os.path.join(srcdir(), "server", "portico")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        if required:
            skip_all("no portico binary (set PORTICO_BIN; tried %s)" % b)
        return None
    return os.path.abspath(b)


def is_root():
    return os.geteuid() == 0


def ipv6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


_version = None


def portico_version():
    """PACKAGE_VERSION from configure.ac (AC_INIT), else what `portico -v` prints."""
    global _version
    if _version is None:
        try:
            with open(os.path.join(srcdir(), "configure.ac")) as f:
                m = re.search(r"AC_INIT\(\[portico\],\s*\[([^\]]+)\]", f.read())
                _version = m.group(1) if m else None
        except OSError:
            pass
        if _version is None:
            try:
                cp = run_bin(["-v"])
                m = re.search(r"portico/([0-9][^\s]*)", cp.stdout + cp.stderr)
                _version = m.group(1) if m else ""
            except Exception:
                _version = ""
    return _version


def run_bin(args, timeout=10, cwd=None, env=None):
    """Run the binary to completion: CompletedProcess with text stdout/stderr. It runs in
    its own session; on timeout the whole process group is killed (workers included) and
    subprocess.TimeoutExpired is raised."""
    proc = subprocess.Popen([portico_bin()] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                            text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ---------------------------------------------------------------------------------------
# Ports

_given_ports = set()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A loopback port nothing listens on right now (bind :0, read it, close)."""
    while True:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _given_ports:   # never hand out the same port twice in one script
            _given_ports.add(port)
            return port


def closed_port():
    """A port with nothing listening (connections to it are refused)."""
    return free_port()


# ---------------------------------------------------------------------------------------
# /proc helpers

def _stat_fields(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    # comm may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return rest   # rest[0] = state, rest[1] = ppid


class Pid(int):
    """A process id that remembers which process it named (its start time, in clock ticks
    since boot). pid_max may be 32768 and a test run forks thousands of processes: a pid
    seen earlier in a script may name another process by now, which proc_alive() must not
    count as ours and a cleanup must never kill. Compares and hashes like the int, except
    that two Pids of different processes with the same number differ."""

    def __new__(cls, pid, start=None):
        self = int.__new__(cls, pid)
        self.start = start
        return self

    @classmethod
    def of(cls, pid):
        """The process that has this pid now (start None if there is none)."""
        return cls(pid, proc_start(pid))

    def __eq__(self, other):
        r = int.__eq__(self, other)
        if r is True and isinstance(other, Pid) and None not in (self.start, other.start):
            return self.start == other.start
        return r

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = int.__hash__


def proc_start(pid):
    """Start time of pid (clock ticks since boot), None if there is no such process."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def proc_ppid(pid):
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def proc_alive(pid):
    """True if pid exists and is not a zombie (for a Pid: and is still that process)."""
    try:
        f = _stat_fields(pid)
        start = getattr(pid, "start", None)
        return f[0] not in (b"Z", b"X") and (start is None or int(f[19]) == start)
    except (OSError, ValueError, IndexError):
        return False


def proc_children(pid):
    """Live children of pid (any thread), by scanning /proc/*/stat, as Pids. None for a
    Pid whose process is gone (its number may be another process's now)."""
    if isinstance(pid, Pid) and not proc_alive(pid):
        return []
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = _stat_fields(int(name))
            if int(f[1]) == pid and f[0] not in (b"Z", b"X"):
                out.append(Pid(int(name), int(f[19])))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(out)


def _is_config_check(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().startswith(b"portico: configuration check")
    except OSError:
        return False


def proc_uid(pid):
    """(real, effective) uid of pid."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                v = line.split()
                return int(v[1]), int(v[2])
    return None


def proc_gid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Gid:"):
                v = line.split()
                return int(v[1]), int(v[2])
    return None


def _fd_targets(pid):
    d = "/proc/%d/fd" % pid
    out = []
    for name in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, name)))
        except OSError:
            pass
    return out


def fd_count(pid):
    """Open descriptors other than pipes: a worker keeps up to 16 emptied splice(2) pipe
    pairs for reuse, so their number depends on history; pipe_count() checks them."""
    return sum(1 for t in _fd_targets(pid) if not t.startswith("pipe:"))


def pipe_count(pid):
    return sum(1 for t in _fd_targets(pid) if t.startswith("pipe:"))


def proc_limit(pid, name="Max open files"):
    """(soft, hard) of a limit in /proc/PID/limits, as ints (None for "unlimited")."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith(name):
                v = line[len(name):].split()
                return tuple(None if x == "unlimited" else int(x) for x in v[:2])
    return None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def wait_for(cond, timeout=5.0, interval=0.02):
    """Poll cond() until it returns something true; returns that value, or the last
    (false) value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def refused_re(code):
    """The error-log line of a refused request: `refused request from 127.0.0.1: 400 Bad
    Request (why)`."""
    return r"refused request from 127\.0\.0\.1: %d %s \(.+\)" % (code, re.escape(REASONS[code]))


# ---------------------------------------------------------------------------------------
# Standard config pieces (the spec's example config)

BASE_LIMITS = ("limits = { client_header_timeout_ms = 1000; client_body_timeout_ms = 1000; "
               "keepalive_timeout_ms = 2000; max_header_size = 4096; max_target_size = 1024; "
               "max_headers = 50; max_body_size = 1000; send_timeout_ms = 2000; "
               "drain_timeout_ms = 5000; };")

STANDARD_ROUTES = """routes = (
  { host = "a.example"; path_prefix = "/"; return = { status = 200; body = "A\\n"; }; },
  { host = "*.wild.example"; return = { status = 200; body = "W\\n"; }; },
  { path_regex = "^/re/[0-9]+$"; return = { status = 201; body = "RE\\n"; }; },
  { path_prefix = "/only-get"; methods = ["GET"]; return = { status = 200; body = "G\\n"; }; },
  { listener = "other"; path_prefix = "/"; return = { status = 200; body = "OTHER\\n"; }; },
  { path_prefix = "/redir"; return = { status = 301; location = "http://a.example/"; }; },
  { path_prefix = "/h"; return = { status = 200; body = "H\\n";
      headers = ( { name = "X-Test"; value = "yes"; } ); }; }
);"""


def standard_config(workers=2, limits=BASE_LIMITS, routes=STANDARD_ROUTES, extra="",
                    access_log='access_log = { path = "{tmp}/access.log"; format = "main"; '
                               'enabled = true; flush_ms = 100; };'):
    return """workers = %s;
pid_file = "{tmp}/portico.pid";
error_log = { path = "{tmp}/error.log"; level = "debug"; };
%s
%s
listeners = (
  { name = "main"; address = "127.0.0.1:{port}"; },
  { name = "other"; address = "127.0.0.1:{port2}"; }
);
%s
%s
""" % (workers, access_log, limits, routes, extra)


# ---------------------------------------------------------------------------------------
# The fixture

class PorticoError(Exception):
    pass


_placeholder = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Portico:
    """One running portico (master + workers) on a temporary config.

    conf: config text. `{name}` placeholders (identifiers only, so libconfig's own braces
    are left alone) are filled from vars; `{tmp}` is the temp dir and any name starting with
    `port` is a fresh loopback port (p.ports["port2"]). pid_file and error_log are added
    when the text has none, pointing into the temp dir.
    """

    def __init__(self, conf, vars=None, start=True, wait_ports=None, args=(), env=None,
                 start_timeout=START_TIMEOUT, bin=None, pass_fds=(), preexec_fn=None):
        self.bin = bin or portico_bin()
        self.tmp = tempfile.mkdtemp(prefix="portico-t-")
        os.chmod(self.tmp, 0o755)   # workers may run as another user
        self.vars = {"tmp": self.tmp}
        self.vars.update(vars or {})
        self.ports = {}
        self.conf_path = os.path.join(self.tmp, "portico.conf")
        self.pid_path = os.path.join(self.tmp, "portico.pid")
        self.error_log_path = os.path.join(self.tmp, "error.log")
        self.access_log_path = os.path.join(self.tmp, "access.log")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.proc = None
        self.pid = None
        self.exit_status = None
        self.args = list(args)
        self.env = env
        self.pass_fds = tuple(pass_fds)     # descriptors the master inherits
        self.preexec_fn = preexec_fn        # runs in the child before exec (setrlimit...)
        self.start_timeout = start_timeout
        self._known_workers = set()
        self._ready_workers = set()
        self.write_config(conf)
        self.wait_ports = wait_ports
        add_cleanup(self._cleanup)
        if start:
            self.start()

    # -- config --------------------------------------------------------------------------
    def expand(self, text):
        def sub(m):
            name = m.group(1)
            if name in self.vars:
                return str(self.vars[name])
            if name.startswith("port"):
                self.ports[name] = self.vars[name] = free_port()
                return str(self.vars[name])
            raise KeyError("config placeholder {%s} has no value" % name)
        return _placeholder.sub(sub, text)

    def write_config(self, conf, path=None):
        """Expand and write conf (to the fixture's config file unless path is given)."""
        text = self.expand(conf)
        if not re.search(r"(?m)^\s*pid_file\s*[=:]", text):
            text = 'pid_file = "%s";\n' % self.pid_path + text
        if not re.search(r"(?m)^\s*error_log\s*[=:]", text):
            text = ('error_log = { path = "%s"; level = "debug"; };\n'
                    % self.error_log_path) + text
        if path is None:
            self.conf_text = text
            path = self.conf_path
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)   # a reload never sees half a file
        return path

    def port(self, name="port"):
        return self.ports[name]

    def listener_ports(self):
        """Ports of the listeners = ( ... ) section of the current config."""
        m = re.search(r"(?m)^\s*listeners\s*[=:]\s*\(", self.conf_text)
        if not m:
            return []
        depth, i = 0, m.end() - 1
        text = self.conf_text
        while i < len(text):
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        section = text[m.end():i]
        out = []
        for addr in re.findall(r'address\s*[=:]\s*"([^"]*)"', section):
            mm = re.match(r"^(?:\[([^\]]+)\]|([^:]+)):([0-9]+)$", addr)
            if mm:
                out.append((mm.group(1) or mm.group(2), int(mm.group(3))))
        return out

    # -- process -------------------------------------------------------------------------
    def start(self):
        self.exit_status = None
        self._crash_checked = False
        self._fail_mark = tap.failed_count()
        self._dumped = False
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf_path] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, cwd=self.tmp, env=self.env,
                                     pass_fds=self.pass_fds, preexec_fn=self.preexec_fn)
        self.pid = Pid.of(self.proc.pid)
        self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        """Wait until every listener accepts connections; PorticoError (with the logs) if
        the process exits or the time runs out."""
        timeout = self.start_timeout if timeout is None else timeout
        targets = self.wait_ports if self.wait_ports is not None else self.listener_ports()
        deadline = time.monotonic() + timeout
        for host, port in targets:
            while True:
                if self.proc.poll() is not None:
                    raise PorticoError("portico exited with status %s during start-up\n%s"
                                       % (self.proc.returncode, self.logs_text()))
                try:
                    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    s.settimeout(1)
                    s.connect((host, port))
                    s.close()
                    break
                except OSError:
                    s.close()
                    if time.monotonic() > deadline:
                        raise PorticoError("portico does not accept on %s:%d after %.0fs\n%s"
                                           % (host, port, timeout, self.logs_text()))
                    time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def worker_pids(self):
        """The master's children but the short-lived process that checks the file on a
        reload (its title says "configuration check")."""
        if not self.running():
            return []
        w = [c for c in proc_children(self.pid) if not _is_config_check(c)]
        self._known_workers.update(w)
        return w

    def worker_ready(self, pid):
        """Has worker pid finished starting? It has once it waits in its epoll loop
        (/proc/PID/wchan) or has logged "worker started": by then it has dropped root, set
        its limits and opened what it keeps open, so its uid and descriptors are what a
        test may compare. A worker just forked has not, and sampling it then is a race."""
        if pid in self._ready_workers:
            return True
        try:
            with open("/proc/%d/wchan" % pid) as f:
                ready = f.read().strip() in ("do_epoll_wait", "ep_poll")
        except OSError:
            return False
        if not ready:
            ready = re.search(r"\[\w+\] %d(?:#[^:\n]*)?: worker started" % pid, self.error_log()) is not None
        if ready:
            self._ready_workers.add(pid)
        return ready

    def wait_workers(self, n, timeout=10, exclude=(), ready=True):
        """Wait until the master has exactly n live children (none of them in exclude),
        each of them started (worker_ready; ready=False: only forked)."""
        def check():
            w = self.worker_pids()
            if len(w) != n or set(w) & set(exclude):
                return None
            return w if not ready or all(self.worker_ready(x) for x in w) else None
        return wait_for(check, timeout, 0.05) or self.worker_pids()

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=10):
        """Wait for the master to exit; its status, or None if it is still running."""
        try:
            self.exit_status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_status

    def stop(self, sig=None, timeout=15):
        """Signal the master (default SIGQUIT: graceful), wait, then SIGKILL master and
        workers. Returns the master's exit status (negative: killed by that signal)."""
        if sig is None:
            sig = signal.SIGQUIT
        if self.proc is None:
            return self.exit_status
        workers = set(self.worker_pids()) | self._known_workers
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                diag("portico master %d did not exit within %ss of signal %d: SIGKILL"
                     % (self.pid, timeout, sig))
                self.proc.kill()
                self.proc.wait()
        self.exit_status = self.proc.returncode
        self._kill_strays(workers, wait=2.0)
        self._check_crashes()
        if tap.failed_count() > getattr(self, "_fail_mark", 0) and not self._dumped:
            self._dumped = True     # something failed while this instance ran: show its logs
            self.dump_logs()
        try:
            self._stderr.close()
        except Exception:
            pass
        return self.exit_status

    _CRASH = re.compile(r"killed by signal (4|6|7|8|11)\b[^\n]*")

    def _check_crashes(self):
        """A sanitizer report on stderr or a worker killed by SIGSEGV/SIGABRT/... in the
        error log is a failed test, whatever the script was looking at."""
        if getattr(self, "_crash_checked", False):
            return
        self._crash_checked = True
        report = self.sanitizer_report()
        if report:
            ok(False, "no sanitizer report from portico")
            diag(report)
        m = self._CRASH.search(self.error_log())
        if m:
            ok(False, "no portico process crashed (%s)" % m.group(0).strip())

    def _kill_strays(self, pids, wait=0.0):
        """Workers left behind by a dead master: wait a little for them, then SIGKILL."""
        pids = [p for p in pids if proc_alive(p)]
        if pids and wait:
            wait_for(lambda: not any(proc_alive(p) for p in pids), wait)
        for p in pids:
            if proc_alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: AddressSanitizer", "ERROR: UndefinedBehaviorSanitizer")

    def sanitizer_report(self):
        """ASan/UBSan/LSan output of the master or a worker (a worker that trips one is
        respawned, so the report is the only trace)."""
        text = self._read(self.stderr_path) + self.error_log()
        for mark in self.SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                return text[max(0, i - 200):i + 4000]
        return None

    def _cleanup(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.stop(signal.SIGQUIT, timeout=5)
            else:
                self._kill_strays(self._known_workers)
                if self.proc is not None:
                    self._check_crashes()
        finally:
            if (tap.failed_count() > getattr(self, "_fail_mark", 0)
                    and not getattr(self, "_dumped", True)):
                self.dump_logs()
            if not os.environ.get("PORTICO_KEEP_TMP"):
                import shutil
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                diag("kept %s" % self.tmp)

    def dump_logs(self, lines=40):
        diag("---- %s (last %d lines) ----" % (self.error_log_path, lines))
        for line in self.error_log().splitlines()[-lines:]:
            diag("  " + line)
        err = self._read(self.stderr_path)
        if err.strip():
            diag("---- stderr ----")
            for line in err.splitlines()[-lines:]:
                diag("  " + line)

    # -- logs ----------------------------------------------------------------------------
    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def error_log(self):
        return self._read(self.error_log_path)

    def logs_text(self):
        return ("---- error log ----\n" + self.error_log() +
                "\n---- stderr ----\n" + self._read(self.stderr_path))

    def log_mark(self):
        """Current length of the error log: pass as start= to wait_log to look only at
        what comes after."""
        try:
            return os.path.getsize(self.error_log_path)
        except OSError:
            return 0

    def wait_log(self, regex, timeout=5.0, start=0, path=None):
        """Wait until the error log (from byte `start`) matches regex; the match or None."""
        path = path or self.error_log_path

        def check():
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                return None
            return re.search(regex, text, re.M)
        return wait_for(check, timeout, 0.05)

    REPEATED = re.compile(r"last message repeated (\d+) times?: (.*)$")

    def log_count(self, regex, start=0):
        """How many times a message matching regex was logged since byte start: its lines,
        plus N for each "last message repeated N times: <it>" (identical messages within
        a second are counted, not written)."""
        rx = re.compile(regex)
        n = 0
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return 0
        for line in text.splitlines():
            m = self.REPEATED.search(line)
            if m and rx.search(m.group(2)):
                n += int(m.group(1))
            elif not m and rx.search(line):
                n += 1
        return n

    def wait_log_count(self, regex, n, timeout=5.0, start=0):
        """Wait until log_count(regex) >= n (a summary comes up to a second after the
        message); the count."""
        return wait_for(lambda: self.log_count(regex, start) >= n and self.log_count(regex, start),
                        timeout, 0.05) or self.log_count(regex, start)

    def access_log_lines(self, path=None):
        return [l for l in self._read(path or self.access_log_path).split("\n") if l]

    def wait_access_log(self, n, timeout=5.0, path=None):
        """Wait until the access log has at least n lines; returns the lines."""
        wait_for(lambda: len(self.access_log_lines(path)) >= n, timeout, 0.05)
        return self.access_log_lines(path)

    # -- reload --------------------------------------------------------------------------
    def reload(self, conf=None):
        """Write a new config (same placeholder values) if given, then SIGHUP."""
        if conf is not None:
            self.write_config(conf)
        self.signal(signal.SIGHUP)

    # -- talking to it -------------------------------------------------------------------
    def connect(self, port="port", **kw):
        """A raw Client on a named port ("port", "port2", ...) or a number."""
        if isinstance(port, str):
            port = self.ports[port]
        return Client(port, **kw)

    def request(self, raw, port="port", method=None, timeout=None, **kw):
        """Send raw bytes on a fresh connection and read one response; the connection stays
        with the response (r.closed_after, r._client)."""
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        if method is None:
            method = raw.split(b" ", 1)[0].decode("latin-1")
        c = self.connect(port, **kw)
        c.send(raw)
        return c.read_response(method, timeout)

    def get(self, target="/", host="a.example", port="port", method="GET", headers=(),
            body=None, version="HTTP/1.1", timeout=None):
        """One well-formed request on a fresh connection."""
        return self.request(build_request(method, target, host, headers, body, version),
                            port=port, method=method, timeout=timeout)
