#!/usr/bin/env python3
# @include: only regular files are read. A directory, a FIFO, /dev/zero, a socket, an
# unreadable file, a symlink loop, a file including itself (directly or through another),
# a missing file, nesting past 10 levels, over 16 MiB, a NUL byte, an unclosed comment:
# each is refused with FILE:LINE: @include "target": why, by -t (exit 1), at start-up
# (exit 1) and by a HUP to a running instance, after which the old configuration serves
# on, from the same master, which still supervises (a killed worker is replaced) and
# stops on TERM. Good includes: relative names start from the main file's directory
# (not the working directory), errors inside an included file name that file and line.
import os, re, shutil, signal, socket, subprocess, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 180)


def conf(body, include=None):
    c = standard_config(workers=2, routes="""routes = (
  { path_prefix = "/"; return = { status = 200; body = "%s\\n"; }; }
);""" % body)
    return c + ('@include "%s"\n' % include if include is not None else "")


def line_of(text, needle):
    return [i for i, l in enumerate(text.split("\n"), 1) if needle in l][-1]


def body(q):
    try:
        return q.get("/", host="x", timeout=3).body
    except (OSError, HTTPError) as e:
        return "%s: %s" % (type(e).__name__, e)


def write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


p = Portico(conf("v1"))
tmp = p.tmp
workers = p.wait_workers(2)
is_(body(p), b"v1\n", "v1 answers")


def shown(target):
    """How a message names an @include: as written, and where a relative name led."""
    if target.startswith("/"):
        return '@include "%s"' % target
    return '@include "%s" (%s)' % (target, os.path.join(tmp, target))


def refused(q, name, target, want, run=run_bin):
    """q's configuration, with `@include "target"` as its last line, is refused with the
    message want: by -t, at start-up, and by a HUP to q, which serves on unchanged."""
    text = conf("v2", target)
    q.write_config(text)
    # -t
    cp = run(["-t", "-c", q.conf_path])
    is_(cp.returncode, 1, "%s: -t exits 1" % name)
    like(cp.stderr, r"(?m)^portico: %s$" % re.escape(want), "%s: -t says %s" % (name, want))
    like(cp.stderr, r"(?m)^portico: configuration file %s test failed$" % re.escape(q.conf_path),
         "%s: -t: test failed" % name)
    unlike(cp.stderr, r"Sanitizer", "%s: -t: no sanitizer report (sanitizer builds)" % name)
    # start-up: the same message, before the pid file or a port is touched
    cp = run(["-c", q.conf_path])
    is_(cp.returncode, 1, "%s: start-up exits 1" % name)
    like(cp.stderr, r"(?m)^portico: %s$" % re.escape(want), "%s: start-up says it" % name)
    # HUP to the running instance
    before = q.wait_workers(2)
    mark = q.log_mark()
    q.signal(signal.SIGHUP)
    ok(q.wait_log(r"\[error\] %d#master: reload failed, keeping the running configuration: %s$"
                  % (q.pid, re.escape(want)), 5, start=mark),
       "%s: HUP: the error log says it, with FILE:LINE" % name)
    ok(q.wait_log(r"reload: checking", 1, start=mark), "%s: HUP: the file was checked" % name)
    is_(body(q), b"v1\n", "%s: HUP: the old configuration serves" % name)
    ok(q.running() and open(q.pid_path).read().strip() == str(q.pid),
       "%s: HUP: the same master (pid %d) runs and holds the pid file" % (name, q.pid))
    is_(q.wait_workers(2), before, "%s: HUP: the same workers" % name)


def refused_why(name, target, why, setup=None):
    if setup:
        setup()
    text = conf("v2", target)
    want = "%s:%d: %s: %s" % (p.conf_path, line_of(text, "@include"), shown(target), why)
    refused(p, name, target, want)


# --- what is not a regular file, or cannot be read -------------------------------------------
os.mkdir(os.path.join(tmp, "conf.d"))
refused_why("a directory", "conf.d", "is a directory, not a regular file")

os.mkfifo(os.path.join(tmp, "fifo"))
refused_why("a FIFO", "fifo", "is a FIFO, not a regular file")

refused_why("/dev/zero", "/dev/zero", "is a character device, not a regular file")

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(os.path.join(tmp, "sock"))
refused_why("a socket", "sock", "is a socket, not a regular file")

os.symlink("loop2", os.path.join(tmp, "loop1"))
os.symlink("loop1", os.path.join(tmp, "loop2"))
refused_why("a symlink loop", "loop1", "Too many levels of symbolic links")

refused_why("a missing file", "missing.conf", "No such file or directory")

text = conf("v2", "")
refused(p, "an empty name", "", '%s:%d: @include "": no file name' % (p.conf_path, line_of(text, "@include")))

# Too large: 16 MiB for the file with its includes (a sparse file: st_size says it).
with open(os.path.join(tmp, "huge.conf"), "w") as f:
    f.truncate(16 * 1024 * 1024 + 1)
refused_why("a file over 16 MiB", "huge.conf",
            "too large: the configuration with its @include files is limited to 16777216 bytes")

# --- loops, depth, and what a file may hold --------------------------------------------------
write(os.path.join(tmp, "self.conf"), "# includes itself\n@include \"self.conf\"\n")
self_path = os.path.join(tmp, "self.conf")
refused(p, "a file including itself", "self.conf",
        '%s:2: @include "self.conf" (%s): include loop: %s -> %s'
        % (self_path, self_path, self_path, self_path))

a, b = os.path.join(tmp, "a.conf"), os.path.join(tmp, "b.conf")
write(a, "workers = 2;\n@include \"b.conf\"\n")
write(b, "\n\n@include \"a.conf\"\n")
refused(p, "a loop through another file", "a.conf",
        '%s:3: @include "a.conf" (%s): include loop: %s -> %s -> %s' % (b, a, a, b, a))

# the main file is part of the chain too
write(os.path.join(tmp, "back.conf"), "@include \"portico.conf\"\n")
back = os.path.join(tmp, "back.conf")
refused(p, "a loop back to the main file", "back.conf",
        '%s:1: @include "portico.conf" (%s): include loop: %s -> %s -> %s'
        % (back, p.conf_path, p.conf_path, back, p.conf_path))

# 10 nested levels are fine (libconfig 1.5 allowed as many), 11 are not
for i in range(12):
    write(os.path.join(tmp, "deep", "d%d.conf" % i), '@include "deep/d%d.conf"\n' % (i + 1)
          if i < 11 else "# the bottom\n")
cp = run_bin(["-t", "-c", p.write_config(conf("v2", "deep/d2.conf"), path=os.path.join(tmp, "ten.conf"))])
is_(cp.returncode, 0, "10 levels of @include: -t exits 0 (%s)" % cp.stderr.strip())
d10 = os.path.join(tmp, "deep", "d10.conf")
refused(p, "11 levels of @include", "deep/d1.conf",
        '%s:1: @include "deep/d11.conf" (%s): more than 10 levels of nested @include'
        % (d10, os.path.join(tmp, "deep", "d11.conf")))

write(os.path.join(tmp, "nul.conf"), "workers = 2;\n\nworkers\0 = 3;\n")
refused(p, "a NUL byte", "nul.conf", "%s:3: a NUL byte: not a text file"
        % os.path.join(tmp, "nul.conf"))

# An unclosed comment would run on into the including file (libconfig's scanner keeps its
# state across the end of an included file): it is refused where it starts.
write(os.path.join(tmp, "comment.conf"), "workers = 2;\n/* the rest is off\nworkers = 3;\n")
refused(p, "an unclosed comment", "comment.conf",
        '%s:2: comment not closed: no "*/" before the end of the file'
        % os.path.join(tmp, "comment.conf"))
write(os.path.join(tmp, "string.conf"), 'workers = 2;\nserver_tokens = "off;\n')
refused(p, "an unclosed string", "string.conf",
        "%s:2: string not closed: no closing quote before the end of the file"
        % os.path.join(tmp, "string.conf"))

# --- unreadable ----------------------------------------------------------------------------------
# Permissions do not stop root: an instance started as root reads a mode 000 file (the
# configuration is the master's, not the workers'). The refusal is checked where they do
# apply, with a master that is not root (uid 65534 when the tests run as root).
write(os.path.join(tmp, "secret.conf"), "# nothing to say\n", mode=0o000)
if is_root():
    cp = run_bin(["-t", "-c", p.write_config(conf("v2", "secret.conf"), path=os.path.join(tmp, "secret-main.conf"))])
    is_(cp.returncode, 0, "as root, a mode 000 file is read: -t exits 0 (%s)" % cp.stderr.strip())

    nobody = tempfile.mkdtemp(prefix="portico-nobody-")
    add_cleanup(lambda: shutil.rmtree(nobody, ignore_errors=True))
    wrapper = os.path.join(nobody, "as-nobody")
    write(wrapper, "#!%s\nimport os, sys\nos.setgroups([])\nos.setgid(65534)\nos.setuid(65534)\n"
          "os.execv(%r, [%r] + sys.argv[1:])\n" % (sys.executable, portico_bin(), portico_bin()),
          mode=0o755)
    os.chmod(nobody, 0o755)

    def run_nobody(args, timeout=10):
        return subprocess.run([wrapper] + args, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, start_new_session=True)

    q = Portico(conf("v1"), start=False, bin=wrapper)
    os.chown(q.tmp, 65534, 65534)
    q.start()
    is_(proc_uid(q.pid)[1], 65534, "the master of the unreadable case runs as uid 65534")
    is_(body(q), b"v1\n", "...and serves v1")
    write(os.path.join(q.tmp, "secret.conf"), "# nothing to say\n", mode=0o000)
    text = conf("v2", "secret.conf")
    refused(q, "an unreadable file", "secret.conf", '%s:%d: @include "secret.conf" (%s): '
            'Permission denied' % (q.conf_path, line_of(text, "@include"),
                                   os.path.join(q.tmp, "secret.conf")), run=run_nobody)
    q.stop()
else:
    refused_why("an unreadable file", "secret.conf", "Permission denied")

# --- the master still supervises and stops after all that --------------------------------------
before = p.wait_workers(2)
os.kill(before[0], signal.SIGKILL)
after = p.wait_workers(2, exclude=[before[0]])
ok(len(after) == 2 and before[0] not in after and before[1] in after,
   "a worker killed with -9 after the refused reloads is replaced")
is_(body(p), b"v1\n", "...and v1 still answers")

# --- good includes ------------------------------------------------------------------------------
# Relative names start from the main file's directory, at any depth, whatever the working
# directory; an absolute name is used as it is.
write(os.path.join(tmp, "conf.d", "routes.inc"), """# routes, included
@include "conf.d/body.inc"
""")
write(os.path.join(tmp, "conf.d", "body.inc"), """routes = (
  { path_prefix = "/"; return = { status = 200; body = "from an include\\n"; }; }
);
""")
abs_inc = os.path.join(tmp, "abs.inc")
write(abs_inc, "server_tokens = false;\n")
good = standard_config(workers=2, routes='@include "conf.d/routes.inc"') + '@include "%s"\n' % abs_inc
p.write_config(good)
cp = run_bin(["-t", "-c", p.conf_path], cwd="/")
is_(cp.returncode, 0, "-t in another working directory: relative includes start from the "
    "main file's directory (%s)" % cp.stderr.strip())
cp = run_bin(["-t", "-c", os.path.relpath(p.conf_path, "/tmp")], cwd="/tmp")
is_(cp.returncode, 0, "...also when the main file is named relative to it (%s)" % cp.stderr.strip())
mark = p.log_mark()
p.signal(signal.SIGHUP)
ok(wait_for(lambda: body(p) == b"from an include\n", 5), "HUP: a good @include is loaded")
r = p.get("/", host="x")
is_(r.header("Server"), "portico", "...and the absolute one too (server_tokens = false)")

# Changing only an included file and HUP: the new text is read.
write(os.path.join(tmp, "conf.d", "body.inc"), """routes = (
  { path_prefix = "/"; return = { status = 200; body = "changed\\n"; }; }
);
""")
p.signal(signal.SIGHUP)
ok(wait_for(lambda: body(p) == b"changed\n", 5), "HUP: a changed included file is read again")

# --- errors inside included files: their file and line ------------------------------------------
body_inc = os.path.join(tmp, "conf.d", "body.inc")
cases = [
    ("an unknown key", 'routes = (\n  { path_prefix = "/"; colour = 1; return = { status = 200; }; }\n);\n',
     '%s:2: key \'routes[0].colour\': unknown key' % body_inc),
    ("a syntax error", 'routes = (\n\n  { path_prefix = = "/"; return = { status = 200; }; }\n);\n',
     '%s:3: syntax error in "{ path_prefix = = "/"; return = { status = 200; }; }"' % body_inc),
    ("an integer past 32 bits",
     'routes = (\n  { return = {\n      status = 4294967296; }; }\n);\n',
     "%s:3: key 'routes[0].return.status': 4294967296 does not fit in 32 bits: write "
     "4294967296L for a 64-bit integer" % body_inc),
]
for name, text, want in cases:
    write(body_inc, text)
    cp = run_bin(["-t", "-c", p.conf_path])
    is_(cp.returncode, 1, "%s in an included file: -t exits 1" % name)
    like(cp.stderr, r"(?m)^portico: %s$" % re.escape(want), "%s in an included file: %s" % (name, want))

# A key after an @include keeps the main file's own line number.
write(body_inc, 'routes = ( { return = { status = 200; body = "changed\\n"; }; } );\n')
text = standard_config(workers=2, routes='@include "conf.d/routes.inc"') + "bogus_key = 1;\n"
p.write_config(text)
cp = run_bin(["-t", "-c", p.conf_path])
like(cp.stderr, r"(?m)^portico: %s:%d: key 'bogus_key': unknown key$"
     % (re.escape(p.conf_path), line_of(p.conf_text, "bogus_key")),
     "a key after an @include: the main file's line")

# --- a FIFO, then TERM: the master never blocked ---------------------------------------------
p.write_config(conf("v1", "fifo"))
mark = p.log_mark()
p.signal(signal.SIGHUP)
ok(p.wait_log(r"reload failed.*is a FIFO", 5, start=mark), "HUP with a FIFO included: refused")
p.signal(signal.SIGTERM)
ok(p.wait_exit(10) is not None, "...and TERM then stops the master")
sock.close()
done_testing()
