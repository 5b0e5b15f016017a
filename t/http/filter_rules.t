#!/usr/bin/env python3
# Rules (modules/rules.c): PCRE2 patterns on every input (the normalised path, the raw
# query, the decoded args and one argument, the target, the method, every or one named
# header, the first body_inspect_size bytes of the body), encoded traversal and mixed case,
# the three actions (deny with its status, log, tag), groups, filters.global before
# routing, the combined patterns giving the same answers as the rules one by one, a body
# rule on the first bytes of a chunked body that waits only for that prefix, counters,
# and -t errors with file:line.
import hashlib, os, re, socket, subprocess, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from filtertest import *

if not os.path.exists(TEST_BIN):
    skip_all("no test binary (t/portico-test; make check builds it)")

echo = Origin.echo()

# An origin that answers as soon as it has the head, then reads the body: shows when the
# request went on.
heads = []
head_seen = threading.Event()


def early(o, c):
    while True:
        req = c.read_head()
        if req is None:
            return
        heads.append(req)
        head_seen.set()
        c.read_body(req)
        with o.lock:
            o.requests += 1
            o.received.append(req)
        body = req.body
        c.sendall(response_bytes(200, [("X-Body-Len", str(len(body))),
                                       ("X-Body-Sha", hashlib.sha256(body).hexdigest())], b"got\n"))


early_origin = Origin(early, raw=True)

RULES = r'''
  body_inspect_size = 64;
  global = { rules = [ "scanner", "global-block" ]; };
  rules = (
    { name = "sqli-union"; match = "(?i)union[\\s/*]+select"; in = [ "path", "args", "header:User-Agent", "body" ];
      action = "deny"; status = 403; group = "sqli"; },
    { name = "sqli-comment"; match = "(?i)'\\s*(--|#)"; in = [ "args", "body" ]; group = "sqli"; },
    { name = "dots"; match = "\\.\\./"; in = [ "args", "arg:file", "headers" ]; group = "traversal"; },
    { name = "etc-passwd"; match = "(?i)/etc/passwd"; in = [ "path", "args" ]; status = 404; group = "traversal"; },
    { name = "raw-dots"; match = "\\.\\./"; in = [ "query" ]; action = "log"; },
    { name = "script-uri"; match = "(?i)%3cscript"; in = [ "uri" ]; status = 406; },
    { name = "no-trace"; match = "^TRACK$"; in = [ "method" ]; status = 405; },
    { name = "token"; match = "^secret-"; in = [ "arg:token" ]; },
    { name = "scanner"; match = "(?i)(nikto|sqlmap)"; in = [ "header:User-Agent" ]; action = "log"; },
    { name = "curl-tag"; match = "(?i)^curl/"; in = [ "header:User-Agent" ]; action = "tag"; tag = "cli"; },
    { name = "mobile-tag"; match = "(?i)mobile"; in = [ "headers" ]; action = "tag"; },
    { name = "global-block"; match = "^/blocked-everywhere"; in = [ "path" ]; status = 451; },
    { name = "backref"; match = "(ab)\\1x"; in = [ "args" ]; status = 409; },
    { name = "extended"; match = "(?x) z z z  # spaces and a comment do not count"; in = [ "args" ]; status = 410; },
    { name = "body-only"; match = "EVIL"; in = [ "body" ]; }
  );'''

CONF = """workers = 1;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
access_log = { path = "{tmp}/access.log"; format = "main"; flush_ms = 50; };
limits = { client_header_timeout_ms = 5000; client_body_timeout_ms = 5000; keepalive_timeout_ms = 5000;
           max_body_size = 0; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
upstreams = ( { name = "echo"; servers = ( { address = "%s"; } ); },
              { name = "early"; servers = ( { address = "%s"; } ); } );
filters = {%s
};
routes = (
  { path_prefix = "/_counters"; test_counters = true; },
  { path_prefix = "/app/"; rules = [ "sqli", "traversal", "raw-dots", "script-uri", "no-trace", "token",
                                     "curl-tag", "mobile-tag", "backref", "extended", "body-only" ];
    upstream = "echo"; },
  { path_prefix = "/stream/"; rules = [ "sqli" ]; upstream = "early"; request_buffering = false; },
  { path_prefix = "/buffered/"; rules = [ "sqli" ]; upstream = "echo"; },
  { path_prefix = "/plain/"; upstream = "echo"; },
  { path_prefix = "/"; return = { body = "open\\n"; }; }
);
""" % (echo.address, early_origin.address, RULES)

p = Portico(CONF, bin=TEST_BIN)


def req(method="GET", target="/app/x", headers=(), body=None):
    return p.request(build_request(method, target, "a.example", headers=list(headers), body=body))


def status(*a, **kw):
    return req(*a, **kw).status


# --- each input ---------------------------------------------------------------------------------
mark = p.log_mark()
is_(status(target="/app/x?q=1"), 200, "a clean request goes through every rule to the origin")
is_(status(target="/app/union%20select"), 403,
    "path: percent-decoded before matching (/app/union%20select is 'union select')")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 403 Forbidden \(rule \"sqli-union\" matched "
              r"path \(route at line \d+\)\)", 3, mark), "the refusal names the rule, the input and the route")
is_(status(target="/app/x?q=1%20UnIoN/**/SeLeCt%201"), 403, "args: decoded, mixed case ((?i))")
is_(status(target="/app/x?q=1+union+select+1"), 403, "args: '+' is a space once decoded")
is_(status(target="/app/x", headers=[("User-Agent", "x UNION SELECT y")]), 403, "header:User-Agent")
is_(status(target="/app/x", headers=[("Referer", "x UNION SELECT y")]), 200,
    "...another header is not read by that rule")
is_(status(target="/app/x?name=o%27%20--"), 403, "a second rule of the group (sqli-comment)")

# traversal: encoded forms
is_(status(target="/app/x?file=%2e%2e%2f%2e%2e%2fetc%2fpasswd"), 403,
    "encoded traversal in an argument: %2e%2e%2f decoded to ../")
is_(status(target="/app/x?file=....//....//x"), 403, "arg:file: ....// still holds ../")
is_(status(target="/app/x", headers=[("X-Path", "../../x")]), 403, "headers: every field value")
is_(status(target="/app/%65tc/passwd"), 404, "path: /app/%65tc/passwd decodes to /etc/passwd: the rule's own status (404)")
is_(status(target="/app/a/b/../../etc//passwd"), 404,
    "path: dot-segments and // resolved first (/app/a/b/../../etc//passwd is /app/etc/passwd)")
mark = p.log_mark()
is_(status(target="/app/%2e%2e/etc/passwd"), 400,
    "/app/%2e%2e/etc/passwd: a dot-segment spelled with escapes is refused by the path "
    "normalisation (400) before any rule")
ok(p.wait_log(r"refused request from 127\.0\.0\.1: 400 Bad Request \(.*\)", 3, mark),
   "...with the normalisation's reason")

# raw query vs decoded args, log action
mark = p.log_mark()
n0 = echo.requests
is_(status(target="/app/x?f=a/../b"), 403, "a raw ../ in the query: traversal (args) denies")
ok(p.wait_log(r"rule \"raw-dots\" matched query of the request from 127\.0\.0\.1: \"GET "
              r"/app/x\?f=a/\.\./b\" \(route at line \d+\)", 3, mark),
   "log action: an info line, also when another rule denies")
is_(status(target="/app/x?f=%2e%2e%2fb&z=1"), 403, "an encoded ../ : args (decoded) deny ...")
mark2 = p.log_mark()
is_(status(target="/app/x?token=secret-1"), 403, "arg:token: that argument's value")
is_(status(target="/app/x?tokenx=secret-1"), 200, "...not another argument")
is_(status(target="/app/x?x=1&token=%73ecret-2"), 403, "...decoded, wherever it stands")
time.sleep(0.05)
unlike(p.error_log()[mark2:], r"rule \"raw-dots\" matched", "the raw query rule does not see %2e%2e%2f as ../")

is_(status(target="/app/x?q=%3Cscript%3E"), 406, "uri: the target as sent (its own status 406)")
is_(status(target="/app/x?q=<script>".replace("<", "%3c")), 406, "...in any case of the escape")
is_(status(method="TRACK", target="/app/x"), 405, "method")

# tags
n0 = len(p.access_log_lines())
is_(status(target="/app/tagged", headers=[("User-Agent", "curl/8.0"), ("X-Device", "Mobile-1")]), 200,
    "tag rules do not refuse")
line = access_line(p, r"GET /app/tagged HTTP/1\.1")
like(line, r" tags=cli,mobile-tag$", "tags in the access log line, in rule order (a tag, or the rule's name)")
line = access_line(p, r"GET /app/x\?q=1 HTTP/1\.1")
unlike(line, r"tags=", "no tags, no field")

# combined patterns and the rules they cannot hold
is_(status(target="/app/x?v=ababx"), 409, "a rule with a backreference (never combined) still matches")
is_(status(target="/app/x?v=abx"), 200, "...and only when it should")
is_(status(target="/app/x?v=zzz"), 410, "a rule in extended mode (?x) (never combined) matches")
is_(status(target="/app/x?v=z%20z%20z"), 200, "...with its whitespace ignored as written")

# --- global rules: before routing ----------------------------------------------------------------
mark = p.log_mark()
is_(status(target="/blocked-everywhere/x"), 451, "a global rule refuses before routing")
is_(status(target="/plain/x", headers=[("User-Agent", "sqlmap/1.7")]), 200, "a global log rule lets it go on")
ok(p.wait_log(r"rule \"scanner\" matched header:User-Agent of the request from 127\.0\.0\.1: "
              r"\"GET /plain/x\" \(filters\.global\)", 3, mark), "...and logs it (filters.global)")
is_(status(target="/nowhere", headers=[("User-Agent", "Nikto")]), 200,
    "global rules run for requests of any route, here the catch-all")
is_(status(target="/plain/union%20select"), 200, "a route without rules: only the global ones")

# --- the body ----------------------------------------------------------------------------------------
is_(status("POST", "/app/x", body=b"a=1&b=union select 1"), 403, "body (Content-Length)")
is_(status("POST", "/app/x", headers=[("Content-Type", "application/x-www-form-urlencoded")],
           body=b"a=1&b=union+select+1"), 403, "a form body: matched decoded too ('+' is a space)")
is_(status("POST", "/app/x", headers=[("Content-Type", "text/plain")], body=b"a=1&b=union+select+1"), 200,
    "...not a body of another type")
is_(status("POST", "/app/x", body=b"x" * 64 + b"EVIL"), 200,
    "a match past body_inspect_size (64) is not seen: the body goes to the origin")
is_((echo.received[-1].body_len, echo.received[-1].body), (68, b"x" * 64 + b"EVIL"),
    "...whole (the prefix held, then the rest)")
is_(status("POST", "/app/x", body=b"x" * 60 + b"EVIL"), 403, "a match inside the first 64 bytes is seen")

# a chunked body: the rule sees its first bytes, across chunks sent one at a time
with p.connect() as c:
    c.send(b"POST /app/c HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send_pieces([b"5\r\nunion\r\n", b"1\r\n \r\n", b"6\r\nselect\r\n", b"0\r\n\r\n"], delay=0.05)
    r = c.read_response()
    is_(r.status, 403, "a chunked body: 'union' ' ' 'select' in three chunks, matched once joined")
n0 = echo.requests
with p.connect() as c:
    body = b"clean " * 40
    c.send(b"POST /app/c HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send_pieces([b"%x\r\n%s\r\n" % (len(body[:50]), body[:50]),
                   b"%x\r\n%s\r\n" % (len(body[50:]), body[50:]), b"0\r\n\r\n"], delay=0.05)
    r = c.read_response()
    is_(r.status, 200, "a clean chunked body goes on")
is_((echo.received[-1].body_len, echo.received[-1].body), (len(body), body),
    "...and reaches the origin whole")

# the request waits for the prefix only: the origin has the head before the body is complete
head_seen.clear()
with p.connect() as c:
    rest = b"r" * 4000
    c.send(b"POST /stream/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % (100 + len(rest))
           + b"p" * 100)
    got_head = head_seen.wait(5)
    ok(got_head, "a 4100-byte body, 100 bytes sent: the rules saw the first 64 and the request "
       "went on to the origin without the rest")
    c.send(rest)
    r = c.read_response()
    is_((r.status, r.header("X-Body-Len"), r.header("X-Body-Sha")),
        (200, "4100", hashlib.sha256(b"p" * 100 + rest).hexdigest()),
        "...then the origin got the whole body, in order")
head_seen.clear()
with p.connect() as c:
    c.send(b"POST /stream/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5000\r\n\r\n"
           + b"union select" + b"." * 100)
    r = c.read_response()
    is_(r.status, 403, "a match in the prefix refuses while the client is still sending")
ok(not head_seen.is_set(), "...and the origin never saw it")

# Expect: 100-continue: the prefix is asked for
with p.connect() as c:
    c.send(b"POST /buffered/x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 30\r\nExpect: 100-continue\r\n\r\n")
    got = b""
    for _ in range(30):
        got += c.read_available(0.2)
        if b"\r\n\r\n" in got:
            break
    is_(got, b"HTTP/1.1 100 Continue\r\n\r\n", "Expect: 100-continue: a body rule asks for the body")
    c.send(b"x union select 1 from users ;;")
    r = c.read_response()
    is_(r.status, 403, "...and refuses on what it says")

# --- counters --------------------------------------------------------------------------------------
cs = counters(p)
is_(cs.get("rule:sqli-union"), 9, "rule:sqli-union counted every request it matched (9)")
ok(cs.get("rule:scanner", 0) >= 2 and cs.get("rule:curl-tag") == 1 and cs.get("rule:global-block") == 1,
   "log, tag and global rules count too")
is_(cs.get("rule:etc-passwd"), 3, "rule:etc-passwd (two paths and one argument)")

# --- -t errors ------------------------------------------------------------------------------------
def check(conf):
    path = os.path.join(p.tmp, "bad.conf")
    p.write_config(conf, path)
    res = subprocess.run([TEST_BIN, "-t", "-c", path], capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout + res.stderr


def bad(a, b, err, what):
    assert a in CONF, a
    rc, out = check(CONF.replace(a, b, 1))
    ok(rc == 1 and re.search(err, out), "-t: %s" % what) or diag(out)


bad('match = "^secret-"', 'match = "^secret-(("',
    r"bad\.conf:\d+: key 'filters\.rules\[7\]\.match': missing closing parenthesis at offset 10",
    "a bad pattern: file:line, the key and the offset")
bad('in = [ "method" ]', 'in = [ "methods" ]', r"key 'filters\.rules\[6\]\.in\[0\]': \"methods\" is not an input",
    "an unknown input")
bad('in = [ "arg:token" ]', 'in = [ "header:" ]', r"\"header:\": a field name \(a token\) must follow",
    "header: without a name")
bad('"raw-dots", "script-uri"', '"raw-dotz", "script-uri"',
    r"key 'routes\[1\]\.rules\[2\]': \"raw-dotz\": no rule or group has that name", "an unknown rule name")
bad('in = [ "query" ]; action = "log"; }', 'in = [ "query" ]; action = "log"; status = 403; }',
    r"only a deny rule has a status", "a status on a log rule")
bad('action = "tag"; tag = "cli"', 'action = "deny"; tag = "cli"', r"only a rule with action = \"tag\" has a tag",
    "a tag on a deny rule")
bad('action = "log"; },\n    { name = "script-uri"', 'action = "block"; },\n    { name = "script-uri"',
    r"\"block\" is not one of deny, log, tag", "an unknown action")
bad('{ name = "token";', '{ name = "dots";', r"\"dots\" is already the name of the rule at line \d+",
    "two rules with one name")
bad('{ name = "token";', '{ name = "sqli";', r"key 'filters\.rules\[7\]\.name': \"sqli\" is also the group of the rule at line \d+",
    "a rule named like a group")
bad('status = 406', 'status = 399', r"399 is out of range 400\.\.599", "a status out of range")
bad('body_inspect_size = 64', 'body_inspect_size = 0', r"key 'filters\.body_inspect_size': 0 is out of range",
    "body_inspect_size 0")
rc, out = check(CONF)
is_(rc, 0, "-t: the test's configuration is valid")
is_(echo.errors + early_origin.errors, [], "the origins saw only well-formed requests")
done_testing()
