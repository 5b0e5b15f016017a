#!/usr/bin/env python3
# Command line: -t on good and bad configs (FILE:LINE: and the key), -v, -V, -h,
# -s reload|reopen|quit|stop through the pid file, a second instance refused.
import os, re, signal, sys, tempfile, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

tmp = tempfile.mkdtemp(prefix="portico-cli-")
add_cleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))

GOOD = """# a good config
workers = 2;
daemon = false;
pid_file = "%(tmp)s/t.pid";
server_tokens = true;
error_log = { path = "%(tmp)s/error.log"; level = "info"; };
access_log = { path = "%(tmp)s/access.log"; format = "combined"; enabled = true; };
limits = {
  max_connections = 100;
  client_header_timeout_ms = 1000;
  client_body_timeout_ms = 1000;
  keepalive_timeout_ms = 2000;
  drain_timeout_ms = 3000;
  send_timeout_ms = 2000;
  max_header_size = 4096;
  max_target_size = 1024;
  max_headers = 50;
  max_body_size = 0;
};
listeners = (
  { name = "http"; address = "127.0.0.1:%(port)d"; backlog = 64; }
);
routes = (
  { host = "example.com"; path_prefix = "/"; return = { status = 200; body = "hello\\n"; content_type = "text/plain"; }; },
  { path_regex = "^/x/[a-z]+$"; methods = ["GET", "HEAD"]; return = { status = 204; }; },
  { listener = "http"; path_prefix = "/"; return = { status = 404; body = "not here\\n"; headers = ( { name = "X-A"; value = "b"; } ); }; }
);
"""
LINES = GOOD.split("\n")


def conf_file(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def good_text():
    return GOOD % {"tmp": tmp, "port": free_port()}


def line_of(text, needle):
    """1-based line number of the first line containing needle."""
    for i, l in enumerate(text.split("\n"), 1):
        if needle in l:
            return i
    raise ValueError(needle)


# --- -t on a good config -----------------------------------------------------------------------
path = conf_file("good.conf", good_text())
cp = run_bin(["-t", "-c", path])
is_(cp.returncode, 0, "-t good config: exit 0")
like(cp.stderr, r"configuration file %s test is successful" % re.escape(path), "-t: 'configuration file FILE test is successful' on stderr")
ok(not os.path.exists(os.path.join(tmp, "t.pid")), "-t starts nothing (no pid file)")

cp = run_bin(["-t", "-c", os.path.join(srcdir(), "etc", "portico.conf")])
is_(cp.returncode, 0, "-t etc/portico.conf (the sample config): exit 0")

cp = run_bin(["-t", "-c", os.path.join(tmp, "missing.conf")])
is_(cp.returncode, 1, "-t missing file: exit 1")
like(cp.stderr, re.escape(os.path.join(tmp, "missing.conf")), "-t missing file: names the file")

# workers = "auto" is valid; other strings are not.
path = conf_file("auto.conf", good_text().replace("workers = 2;", 'workers = "auto";'))
is_(run_bin(["-t", "-c", path]).returncode, 0, '-t workers = "auto": exit 0')

# --- -t on bad configs: exit 1, FILE:LINE:, the key -------------------------------------------
# (name, edit(text) -> text, needle for the line, key name expected in the message)
def replace(old, new):
    return lambda t: t.replace(old, new, 1)


BAD = [
    ("unknown top-level key", replace("server_tokens = true;", "server_tokens = true;\nbogus_key = 1;"),
     "bogus_key", "bogus_key"),
    ("unknown key in limits", replace("  max_headers = 50;", "  max_headers = 50;\n  max_bogus = 5;"),
     "max_bogus", "max_bogus"),
    ("unknown key in a listener", replace("backlog = 64;", "backlog = 64; colour = \"red\";"),
     "colour", "colour"),
    ("unknown key in a route", replace('{ host = "example.com";', '{ hots = "example.com";'),
     "hots", "hots"),
    ("unknown key in return", replace('body = "hello\\n";', 'body = "hello\\n"; bodey = "x";'),
     "bodey", "bodey"),
    ("wrong type: daemon string", replace("daemon = false;", 'daemon = "yes";'), "daemon =", "daemon"),
    ("wrong type: timeout string", replace("keepalive_timeout_ms = 2000;", 'keepalive_timeout_ms = "2s";'),
     "keepalive_timeout_ms", "keepalive_timeout_ms"),
    ("wrong type: workers float", replace("workers = 2;", "workers = 2.5;"), "workers =", "workers"),
    ("wrong string for workers", replace("workers = 2;", 'workers = "many";'), "workers =", "workers"),
    ("out of range: negative timeout", replace("client_header_timeout_ms = 1000;", "client_header_timeout_ms = -5;"),
     "client_header_timeout_ms", "client_header_timeout_ms"),
    ("out of range: workers -1", replace("workers = 2;", "workers = -1;"), "workers =", "workers"),
    ("out of range: status 999", replace("return = { status = 204; }", "return = { status = 999; }"),
     "status = 999", "status"),
    ("unknown log level", replace('level = "info";', 'level = "loud";'), "level =", "level"),
    ("unknown access log format", replace('format = "combined";', 'format = "fancy";'), "format =", "format"),
    ("bad listen address", replace('address = "127.0.0.1:', 'address = "not-an-address:'),
     "address =", "address"),
    ("listen port out of range", lambda t: re.sub(r'"127\.0\.0\.1:\d+"', '"127.0.0.1:99999"', t),
     "address =", "address"),
    ("unknown listener in a route", replace('listener = "http";', 'listener = "nope";'), 'listener = "nope"', "listener"),
    ("invalid regex", replace('path_regex = "^/x/[a-z]+$";', 'path_regex = "^/x/([a-z]+$";'), "path_regex", "path_regex"),
    ("wrong type: methods a string", replace('methods = ["GET", "HEAD"];', 'methods = "GET";'), "methods =", "methods"),
]

for name, edit, needle, key in BAD:
    base = good_text()
    text = edit(base)
    if text == base or needle not in text:
        raise AssertionError("test table: the edit for %r does not apply" % name)
    path = conf_file("bad.conf", text)
    line = line_of(text, needle)
    cp = run_bin(["-t", "-c", path])
    is_(cp.returncode, 1, "-t %s: exit 1" % name)
    like(cp.stderr, r"%s:%d:" % (re.escape(path), line), "-t %s: %s:%d:" % (name, os.path.basename(path), line))
    like(cp.stderr, re.escape(key), "-t %s: names '%s'" % (name, key))

# libconfig syntax errors: the line of the error.
text = good_text().replace("max_connections = 100;", "max_connections = = 100;")
path = conf_file("syntax.conf", text)
cp = run_bin(["-t", "-c", path])
is_(cp.returncode, 1, "-t syntax error: exit 1")
like(cp.stderr, r"%s:%d:" % (re.escape(path), line_of(text, "= = 100")), "-t syntax error: FILE:LINE of the error")
text = good_text().replace("server_tokens = true;", "server_tokens = true true;")
path = conf_file("syntax2.conf", text)
cp = run_bin(["-t", "-c", path])
is_(cp.returncode, 1, "-t two values: exit 1")
like(cp.stderr, r"%s:%d:" % (re.escape(path), line_of(text, "true true")), "-t two values: FILE:LINE of the error")

# A string where the parser stops: libconfig leaks that token (t/lsan.supp leaves it out
# of sanitizer reports, which would fail here otherwise); portico itself leaks nothing.
text = good_text().replace("server_tokens = true;", 'server_tokens = true "yes";')
path = conf_file("string.conf", text)
for args, what in ((["-t"], "-t"), ([], "start")):
    cp = run_bin(args + ["-c", path])
    is_(cp.returncode, 1, "%s, a string token after a value: exit 1" % what)
    like(cp.stderr, r'(?m)^portico: %s:%d: syntax error in "server_tokens = true "yes";"$'
         % (re.escape(path), line_of(text, '"yes"')), "%s, a string token after a value: FILE:LINE" % what)
    unlike(cp.stderr, r"Sanitizer", "%s, a string token after a value: no sanitizer report" % what)

# A bad config also refuses to start (same message, exit 1, nothing left running).
text = good_text().replace("server_tokens = true;", "server_tokens = true;\nbogus_key = 1;")
path = conf_file("bad.conf", text)
cp = run_bin(["-c", path])
is_(cp.returncode, 1, "start with a bad config: exit 1")
like(cp.stderr, r"%s:%d:.*bogus_key" % (re.escape(path), line_of(text, "bogus_key")),
     "start with a bad config: FILE:LINE: key on stderr")
ok(not os.path.exists(os.path.join(tmp, "t.pid")), "start with a bad config: no pid file")

# --- -v, -V, -h ----------------------------------------------------------------------------------
cp = run_bin(["-v"])
is_(cp.returncode, 0, "-v: exit 0")
like(cp.stdout + cp.stderr, r"portico version", "-v: 'portico version'")
like(cp.stdout + cp.stderr, r"portico/%s\b" % re.escape(portico_version()), "-v: portico/%s" % portico_version())
cp = run_bin(["-V"])
out = cp.stdout + cp.stderr
is_(cp.returncode, 0, "-V: exit 0")
like(out, r"portico version", "-V: version")
like(out, r"configure arguments", "-V: configure arguments")
for lib in ("OpenSSL", "PCRE2", "libconfig"):
    like(out, lib, "-V: names %s" % lib)
cp = run_bin(["-h"])
is_(cp.returncode, 0, "-h: exit 0")
like(cp.stdout + cp.stderr, r"(?i)usage", "-h: usage")
for opt in ("-c", "-t", "-s", "-v", "-V"):
    like(cp.stdout + cp.stderr, r"%s\b" % re.escape(opt), "-h mentions %s" % opt)
cp = run_bin(["-Q"])
isnt(cp.returncode, 0, "unknown option: non-zero exit")

# --- -s with no master ---------------------------------------------------------------------------
path = conf_file("good.conf", good_text())
cp = run_bin(["-s", "reload", "-c", path])
is_(cp.returncode, 1, "-s reload with no pid file: exit 1")
with open(os.path.join(tmp, "t.pid"), "w") as f:
    f.write("999999\n")     # above the default pid_max: nobody
cp = run_bin(["-s", "quit", "-c", path])
is_(cp.returncode, 1, "-s quit with a stale pid file: exit 1")
os.unlink(os.path.join(tmp, "t.pid"))
cp = run_bin(["-s", "bogus", "-c", path])
isnt(cp.returncode, 0, "-s bogus: non-zero exit")

# --- -s against a running master -------------------------------------------------------------
CONF = standard_config(routes="""routes = ( { path_prefix = "/"; return = { status = 200; body = "%s"; }; } );""")
p = Portico(CONF % "v1\\n")
is_(p.get("/").body, b"v1\n", "running: v1")

# A second instance with the same pid file refuses to start.
second = os.path.join(p.tmp, "second.conf")
p.write_config(CONF.replace("{port}", "{port3}").replace("{port2}", "{port4}") % "x\\n", path=second)
cp = run_bin(["-c", second], timeout=10)
is_(cp.returncode, 1, "second instance on the same pid file: exit 1")
like(cp.stderr + p.error_log(), r"already running", "second instance: 'already running'")
with open(p.pid_path) as f:
    is_(f.read().strip(), str(p.pid), "the pid file still names the first master")
is_(p.get("/").body, b"v1\n", "the first instance still serves")

p.write_config(CONF % "v2\\n")
cp = run_bin(["-s", "reload", "-c", p.conf_path])
is_(cp.returncode, 0, "-s reload: exit 0")
ok(wait_for(lambda: p.get("/").body == b"v2\n", 3.0), "-s reload: the new config answers")

p.get("/")
p.wait_access_log(1)
os.rename(p.access_log_path, p.access_log_path + ".old")
cp = run_bin(["-s", "reopen", "-c", p.conf_path])
is_(cp.returncode, 0, "-s reopen: exit 0")
ok(wait_for(lambda: os.path.exists(p.access_log_path), 3.0), "-s reopen: access.log reopened")

cp = run_bin(["-s", "quit", "-c", p.conf_path])
is_(cp.returncode, 0, "-s quit: exit 0")
is_(p.wait_exit(10), 0, "-s quit: master exits 0")
ok(not os.path.exists(p.pid_path), "-s quit: pid file removed")

p = Portico(CONF % "v1\\n")
p.wait_workers(2)
cp = run_bin(["-s", "stop", "-c", p.conf_path])
is_(cp.returncode, 0, "-s stop: exit 0")
ok(p.wait_exit(5) is not None, "-s stop: master exits")
ok(wait_for(lambda: not any(proc_alive(w) for w in p._known_workers), 5.0), "-s stop: workers gone")

done_testing()
