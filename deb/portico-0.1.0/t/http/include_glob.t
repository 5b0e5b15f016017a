#!/usr/bin/env python3
# include = [ "conf.d/*.conf" ]: files expanded in sorted order, relative to the main
# file's directory; their upstreams and routes appended after the main file's; a site
# added and one removed by a reload; an error in an included file names that file and
# its line (-t, and a reload, which keeps the running configuration).
import os, signal, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 90)

echo = Origin.echo()
MAIN = """workers = 1;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
include = [ "conf.d/*.conf", "extra/one.conf" ];
routes = ( { path_prefix = "/p"; return = { status = 200; body = "main\\n"; }; } );
"""
p = Portico(MAIN, start=False)
cd = os.path.join(p.tmp, "conf.d")
os.makedirs(cd)
os.makedirs(os.path.join(p.tmp, "extra"))


def put(name, text):
    with open(os.path.join(p.tmp, name), "w") as f:
        f.write(text)


# written in reverse order: the glob's order is by name, not by creation
put("conf.d/20-b.conf", """# site b
routes = ( { path_prefix = "/q"; return = { status = 200; body = "b\\n"; }; },
           { path_prefix = "/b"; return = { status = 200; body = "b\\n"; }; } );
""")
put("conf.d/10-a.conf", """upstreams = ( { name = "a"; servers = ( { address = "%s"; } ); } );
routes = ( { path_prefix = "/p"; return = { status = 200; body = "a\\n"; }; },
           { path_prefix = "/q"; return = { status = 200; body = "a\\n"; }; },
           { path_prefix = "/app/"; upstream = "a"; } );
""" % echo.address)
put("conf.d/README", "not matched by *.conf\n")
put("extra/one.conf", 'routes = ( { path_prefix = "/one"; return = { status = 200; body = "one\\n"; }; } );\n')
p.start()

is_(p.get("/p").body, b"main\n", "the main file's routes come first")
is_(p.get("/q").body, b"a\n", "then the included files' in sorted order (10-a before 20-b)")
is_(p.get("/b").body, b"b\n", "20-b's own route")
r = p.get("/app/x")
is_((r.status, r.body.split(b"\r\n")[0]), (200, b"GET /app/x HTTP/1.1"),
    "an upstream defined in an included file serves its route")
is_(p.get("/one").body, b"one\n", "a plain file name in include")

cp = run_bin(["-t", "-c", p.conf_path], cwd="/")
is_(cp.returncode, 0, "-t from another working directory: patterns start from the main "
    "file's directory")

# -- a site added, one removed, by reloads
put("conf.d/30-c.conf", 'routes = ( { path_prefix = "/c"; return = { status = 200; body = "c\\n"; }; } );\n')
p.signal(signal.SIGHUP)
ok(wait_for(lambda: p.get("/c").body == b"c\n", 10), "a reload adds the site of a new file")
os.unlink(os.path.join(cd, "10-a.conf"))
p.signal(signal.SIGHUP)
ok(wait_for(lambda: p.get("/q").body == b"b\n", 10), "a reload without 10-a.conf: /q is 20-b's")
is_(p.get("/app/x").status, 404, "and 10-a's routes are gone")

# -- an error in an included file: -t and reload name the file and its line
put("conf.d/40-bad.conf", """routes = (
  { path_prefix = "/x"; return = { status = 999; }; } );
""")
cp = run_bin(["-t", "-c", "portico.conf"], cwd=p.tmp)
is_(cp.returncode, 1, "-t with an error in an included file fails")
like(cp.stderr, r"^portico: conf\.d/40-bad\.conf:2: key 'routes\[0\]\.return\.status': 999 is "
     r"out of range 200\.\.599", "-t names conf.d/40-bad.conf:2 and the key")
mark = p.log_mark()
p.signal(signal.SIGHUP)
p.wait_log(r"reload failed, keeping the running configuration: .*conf\.d/40-bad\.conf:2: key "
           r"'routes\[0\]\.return\.status'", 10, start=mark)
ok(True, "a reload names the file and line, and keeps the running configuration")
is_(p.get("/c").body, b"c\n", "the running configuration still answers")
os.unlink(os.path.join(cd, "40-bad.conf"))


def include_line():
    with open(p.conf_path) as f:
        return [i for i, l in enumerate(f, 1) if l.startswith("include")][0]


def t_error(text, want, name, main=None):
    put("conf.d/50-x.conf", text)
    if main:
        p.write_config(main)
    cp = run_bin(["-t", "-c", "portico.conf"], cwd=p.tmp)
    is_(cp.returncode, 1, name + ": -t fails")
    like(cp.stderr, want.replace("LINE", str(include_line())), name)
    os.unlink(os.path.join(cd, "50-x.conf"))
    if main:
        p.write_config(MAIN)


t_error('routes = ( { path_prefix = "/y"; return = { status = 200; }; }\n',
        r"conf\.d/50-x\.conf:2: syntax error at the end of the file", "an unclosed list")
t_error('routes = ( { path_prefix = = "/y"; return = { status = 200; }; } );\n',
        r"conf\.d/50-x\.conf:1: syntax error", "a syntax error on its line")
t_error('workers = 2;\n', r"conf\.d/50-x\.conf:1: key 'workers': only upstreams and routes "
        r"may be in a file of include", "another key in an included file")
t_error('\n\nupstreams = ( { name = "b"; servers = ( { address = "127.0.0.1:1"; } ); },\n'
        '              { name = "b"; servers = ( { address = "127.0.0.1:2"; } ); } );\n',
        r"conf\.d/50-x\.conf:4: upstreams\[1\]: upstream \"b\" is already defined at line 3",
        "an upstream twice")
t_error('routes = ( { path_prefix = "/z"; upstream = "nope"; } );\n',
        r"conf\.d/50-x\.conf:1: key 'routes\[0\]\.upstream': no upstream named \"nope\"",
        "an unknown upstream named in an included file")
t_error("", r"portico\.conf:LINE: key 'include\[2\]': \"missing\.conf\" \(.*missing\.conf\): no "
        r"such file", "a plain name that does not exist",
        main=MAIN.replace('"extra/one.conf" ]', '"extra/one.conf", "missing.conf" ]'))
t_error("", r"portico\.conf:LINE: key 'include': expected an array of file patterns",
        "include is not an array", main=MAIN.replace('include = [ "conf.d/*.conf", "extra/one.conf" ];',
                                                      'include = "conf.d/*.conf";'))
p.write_config(MAIN.replace('"conf.d/*.conf"', '"empty.d/*.conf"'))
os.makedirs(os.path.join(p.tmp, "empty.d"))
cp = run_bin(["-t", "-c", "portico.conf"], cwd=p.tmp)
is_(cp.returncode, 0, "a pattern that matches nothing is an empty directory: fine")
p.write_config(MAIN)

done_testing()
