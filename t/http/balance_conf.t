#!/usr/bin/env python3
# Balancing and health keys: `-t` names FILE:LINE, the key and what is wrong for each
# mistake; a configuration using every key is accepted; a bad reload keeps the old one.
import os, re, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

tmp = tempfile.mkdtemp(prefix="portico-t-bconf-")
add_cleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
LISTEN = 'listeners = ( { address = "127.0.0.1:8080"; } );\nroutes = ( { upstream = "app"; } );\n'
SV = 'servers = ( { address = "127.0.0.1:9"; }, { address = "127.0.0.1:10"; } );'


def up(body):
    """An upstream "app" whose keys start on line 4."""
    return LISTEN + 'upstreams = ( { name = "app";\n  %s\n  %s } );\n' % (SV, body)


def check(text, name):
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    cp = run_bin(["-t", "-c", path], timeout=30)
    return path, cp.returncode, cp.stdout + cp.stderr


K = r"key 'upstreams\[0\]\."
BAD = [
    ("balance", up('balance = "fastest";'), 5,
     K + r"balance': \"fastest\" is not a balancing method \(round_robin, least_conn, least_time, hash, "
         r"ip_hash, random_two\)", "an unknown balance"),
    ("hash-nokey", up('balance = "hash";'), 5, K + r"balance': balance = \"hash\" needs hash_key \(such as \"\$uri\"\)",
     "hash without hash_key"),
    ("hashkey-rr", up('hash_key = "$uri";'), 5, K + r"hash_key': hash_key is only used with balance = \"hash\"",
     "hash_key without balance = hash"),
    ("hashkey-var", up('balance = "hash"; hash_key = "$host$foo";'), 5,
     K + r"hash_key': \"\$host\$foo\": unknown variable \$foo \(known: \$remote_addr, \$listener, \$host, "
         r"\$method, \$uri, \$request_uri, \$args, \$http_NAME, \$arg_NAME, \$cookie_NAME\)", "an unknown variable"),
    ("hashkey-const", up('balance = "hash"; hash_key = "static";'), 5,
     K + r"hash_key': \"static\" has no variable: every request would go to the same server", "a constant key"),
    ("hashkey-brace", up('balance = "hash"; hash_key = "${uri";'), 5,
     K + r"hash_key': \"\$\{uri\": '\$\{' without '\}'", "an unclosed ${"),
    ("hashkey-dollar", up('balance = "hash"; hash_key = "x$";'), 5,
     K + r"hash_key': \"x\$\": '\$' without a variable name \(\"\$\$\" is a '\$'\)", "a lone $"),
    ("hashkey-type", up('balance = "hash"; hash_key = 3;'), 5, K + r"hash_key': expected a string",
     "hash_key not a string"),
    ("hash-slowstart", LISTEN + 'upstreams = ( { name = "app"; balance = "ip_hash";\n  servers = (\n'
     '    { address = "127.0.0.1:9";\n      slow_start_ms = 1000; } ); } );\n', 6,
     K + r"servers\[0\]\.slow_start_ms': slow_start_ms cannot be used with balance = \"ip_hash\"",
     "slow_start_ms with ip_hash"),
    ("weight", LISTEN + 'upstreams = ( { name = "app";\n  servers = ( { address = "127.0.0.1:9"; weight = 0; } ); } );\n',
     4, K + r"servers\[0\]\.weight': 0 is out of range 1\.\.1000", "weight 0"),
    ("max-conns", LISTEN + 'upstreams = ( { name = "app";\n  servers = ( { address = "127.0.0.1:9"; max_conns = -1; } ); } );\n',
     4, K + r"servers\[0\]\.max_conns': -1 is out of range 0\.\.1000000", "negative max_conns"),
    ("slow-start", LISTEN + 'upstreams = ( { name = "app";\n  servers = ( { address = "127.0.0.1:9"; slow_start_ms = 3600001; } ); } );\n',
     4, K + r"servers\[0\]\.slow_start_ms': 3600001 is out of range 0\.\.3600000", "slow_start_ms over an hour"),
    ("backup-type", LISTEN + 'upstreams = ( { name = "app";\n  servers = ( { address = "127.0.0.1:9"; backup = 1; } ); } );\n',
     4, K + r"servers\[0\]\.backup': expected a boolean", "backup not a boolean"),
    ("all-backup", LISTEN + 'upstreams = ( { name = "app";\n  servers = ( { address = "127.0.0.1:9"; backup = true; } ); } );\n',
     4, K + r"servers': every server is a backup: at least one must not be", "every server a backup"),
    ("max-fails", up('max_fails = 1001;'), 5, K + r"max_fails': 1001 is out of range 0\.\.1000", "max_fails too big"),
    ("fail-timeout", up('fail_timeout_ms = 0;'), 5, K + r"fail_timeout_ms': 0 is out of range 1\.\.86400000",
     "fail_timeout_ms 0"),
    ("queue-timeout", up('queue_timeout_ms = -1;'), 5, K + r"queue_timeout_ms': -1 is out of range 0\.\.86400000",
     "negative queue_timeout_ms"),
    ("fail-status", up('fail_on_status = [ 500,\n    200 ];'), 6, K + r"fail_on_status\[1\]': 200: a status from 400 to 599",
     "fail_on_status with 200"),
    ("fail-status-type", up('fail_on_status = "500";'), 5, K + r"fail_on_status': expected an array of statuses",
     "fail_on_status not an array"),
    ("health-type", up('health = { type = "udp"; };'), 5, K + r"health\.type': \"udp\": the type is \"http\" or \"tcp\"",
     "health type udp"),
    ("health-group", up('health = "yes";'), 5, K + r"health': expected a group", "health not a group"),
    ("health-timeout", up('health = { interval_ms = 1000;\n    timeout_ms = 3000; };'), 6,
     K + r"health\.timeout_ms': 3000 ms: more than interval_ms \(1000\): a probe must end before the next is due",
     "timeout_ms over interval_ms"),
    ("health-tcp-path", up('health = { type = "tcp";\n    path = "/x"; };'), 6,
     K + r"health\.path': only for type = \"http\" \(a tcp check only connects\)", "a path on a tcp check"),
    ("health-status", up('health = { expect_status = "300-200"; };'), 5,
     K + r"health\.expect_status': statuses from 100 to 599, the first not above the last", "a backwards range"),
    ("health-status-text", up('health = { expect_status = "ok"; };'), 5,
     K + r"health\.expect_status': \"ok\": a status \(200\) or a range \(\"200-399\"\)", "a status that is no number"),
    ("health-status-600", up('health = { expect_status = 600; };'), 5,
     K + r"health\.expect_status': statuses from 100 to 599", "status 600"),
    ("health-regex", up('health = { expect_body_regex = "(ok"; };'), 5,
     K + r"health\.expect_body_regex': missing closing parenthesis at offset 3", "an invalid regex"),
    ("health-path", up('health = { path = "health"; };'), 5,
     K + r"health\.path': \"health\": a path starting with '/'", "a path without '/'"),
    ("health-path-space", up('health = { path = "/a b"; };'), 5,
     K + r"health\.path': \"/a b\": a path starting with '/' \(printable ASCII, no spaces\)", "a path with a space"),
    ("health-fall", up('health = { fall = 0; };'), 5, K + r"health\.fall': 0 is out of range 1\.\.1000", "fall 0"),
    ("health-interval", up('health = { interval_ms = 5; };'), 5, K + r"health\.interval_ms': 5 is out of range 10\.\.86400000",
     "interval_ms 5"),
    ("health-unknown", up('health = { every = 3; };'), 5, K + r"health\.every': unknown key", "an unknown health key"),
    ("name-long", LISTEN.replace('"app"', '"' + "a" * 65 + '"') + 'upstreams = ( { name = "%s";\n  %s } );\n' % ("a" * 65, SV),
     3, K + r"name': longer than 64 bytes", "a name over 64 bytes"),
]
many = ", ".join('{ address = "127.0.0.1:%d"; }' % (1000 + i) for i in range(1025))
BAD.append(("many", LISTEN + 'upstreams = ( { name = "app";\n  servers = ( %s ); } );\n' % many, 4,
            K + r"servers': at most 1024 servers per upstream", "1025 servers"))

for name, text, line, msg, what in BAD:
    path, rc, out = check(text, name)
    is_(rc, 1, "-t: %s: exit 1" % what)
    like(out, r"(?m)^portico: %s:%d: %s" % (re.escape(path), line, msg), "-t: %s: file:line and why" % what)

GOOD = LISTEN + '''upstreams = (
  { name = "app"; balance = "hash"; hash_key = "${host}-$uri?$args $http_x_user $cookie_sid $arg_id $remote_addr $request_uri";
    servers = ( { address = "127.0.0.1:9"; weight = 3; max_conns = 100; },
                { address = "127.0.0.1:10"; backup = true; },
                { address = "127.0.0.1:11"; down = true; } );
    max_fails = 3; fail_timeout_ms = 5000; fail_on_status = [ 500, 502, 503, 504 ]; queue_timeout_ms = 200;
    health = { type = "http"; path = "/health?full=1"; host = "app.internal"; interval_ms = 2000;
               timeout_ms = 1000; fall = 3; rise = 2; expect_status = 200; expect_body_regex = "ok"; }; },
  { name = "b"; balance = "least_time"; servers = ( { address = "127.0.0.1:12"; slow_start_ms = 30000; } );
    health = { type = "tcp"; interval_ms = 500; timeout_ms = 500; }; },
  { name = "c"; balance = "least_conn"; servers = ( { address = "127.0.0.1:13"; } ); },
  { name = "d"; balance = "random_two"; servers = ( { address = "127.0.0.1:14"; } ); },
  { name = "e"; balance = "ip_hash"; servers = ( { address = "127.0.0.1:15"; } ); },
  { name = "f"; balance = "round_robin"; servers = ( { address = "127.0.0.1:16"; } ); }
);
'''
path, rc, out = check(GOOD, "good")
is_((rc, out.strip()), (0, "portico: configuration file %s test is successful" % path),
    "-t: every balancing and health key: accepted")
path, rc, out = check(LISTEN + 'upstreams = ( { name = "app";\n  servers = ( %s ); } );\n'
                      % ", ".join('{ address = "127.0.0.1:%d"; }' % (1000 + i) for i in range(1024)), "max")
is_(rc, 0, "-t: 1024 servers in a group: accepted")

# a bad reload keeps the old configuration (and the servers' state)
o = named_origins(2)
GOODRUN = proxy_config(upstream("app", [x.address for x in o]), proxy_route("app"), workers=1)
p = Portico(GOODRUN)
is_(p.get("/").status, 200, "running")
mark = p.log_mark()
p.reload(GOODRUN.replace('servers = (', 'balance = "hash"; servers = ('))
ok(p.wait_log(r"portico\.conf:\d+: key 'upstreams\[0\]\.balance': balance = \"hash\" needs hash_key", 10, mark),
   "a bad reload: the error with file:line and the key")
got = load(p, 20, conns=2)
is_((got.errors, got["s0"], got["s1"]), ([], 10, 10), "...and the old configuration (round robin) goes on")
p.stop()
done_testing()
