#!/usr/bin/env python3
# Access lists (modules/acl.c): allow and deny entries in the order written, "all", an
# address in place, the default when nothing holds, "!range" exceptions, longest prefix;
# CIDR edges (/0, /32, /128, IPv4-mapped IPv6) with client addresses given by the PROXY
# protocol; filters.global before routing (also for 404s); a 100,000-range list; the log
# line and shared counter of each refusal; -t errors with file:line.
import os, re, subprocess, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from filtertest import *

if not os.path.exists(TEST_BIN):
    skip_all("no test binary (t/portico-test; make check builds it)")

# 100,000 /32s in 10.200.0.0/16 .. and 172.16/12 space, through an @include
BIG = 100000
big_ranges = ['"172.%d.%d.%d"' % (16 + i // 65536, (i // 256) % 256, i % 256) for i in range(BIG)]

CONF = """workers = 2;
error_log = { path = "{tmp}/error.log"; level = "debug"; };
access_log = { path = "{tmp}/access.log"; };
limits = { client_header_timeout_ms = 5000; keepalive_timeout_ms = 5000; };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; proxy_protocol = true; },
              { name = "plain"; address = "127.0.0.1:{port2}"; } );
filters = {
  global = { deny = [ "blocklist", "192.0.2.66" ]; };
  acls = (
    { name = "office"; cidrs = [ "10.0.0.0/8", "!10.66.0.0/16", "10.66.6.0/24", "2001:db8::/32" ]; },
    { name = "blocklist"; cidrs = [ "203.0.113.0/24", "2001:db8:bad::/48" ]; },
    { name = "zero4"; cidrs = [ "0.0.0.0/0" ]; },
    { name = "zero6"; cidrs = [ "::/0" ]; },
    { name = "host32"; cidrs = [ "192.0.2.7/32" ]; },
    { name = "host128"; cidrs = [ "2001:db8::7/128" ]; },
    { name = "mapped"; cidrs = [ "::ffff:198.51.100.0/120" ]; },
    { name = "big"; cidrs = [
@include "big.inc"
    ]; }
  );
};
routes = (
  { path_prefix = "/_counters"; test_counters = true; },
  { path_prefix = "/admin/"; allow = [ "office" ]; deny = [ "all" ]; return = { body = "admin\\n"; }; },
  { path_prefix = "/only/"; allow = [ "office" ]; return = { body = "only\\n"; }; },
  { path_prefix = "/nobad/"; deny = [ "10.1.0.0/16" ]; return = { body = "nobad\\n"; }; },
  { path_prefix = "/order/"; deny = [ "10.9.0.0/16" ]; allow = [ "office" ]; return = { body = "order\\n"; }; },
  { path_prefix = "/zero4/"; allow = [ "zero4" ]; return = { body = "zero4\\n"; }; },
  { path_prefix = "/zero6/"; allow = [ "zero6" ]; return = { body = "zero6\\n"; }; },
  { path_prefix = "/h32/"; allow = [ "host32" ]; return = { body = "h32\\n"; }; },
  { path_prefix = "/h128/"; allow = [ "host128" ]; return = { body = "h128\\n"; }; },
  { path_prefix = "/mapped/"; allow = [ "mapped" ]; return = { body = "mapped\\n"; }; },
  { path_prefix = "/inline/"; allow = [ "::ffff:192.0.2.0/120", "2001:db8:1::/48" ]; return = { body = "inline\\n"; }; },
  { path_prefix = "/big/"; deny = [ "big" ]; return = { body = "big\\n"; }; },
  { path_prefix = "/"; return = { body = "open\\n"; }; }
);
"""

# a sanitizer build takes seconds to read 100,000 array elements (libconfig grows its
# arrays 16 elements at a time, and the sanitizer's realloc always copies)
p = Portico(CONF, bin=TEST_BIN, start=False, start_timeout=90)
with open(os.path.join(p.tmp, "big.inc"), "w") as f:
    f.write(",\n".join(big_ranges) + "\n")
p.start()


def status(src, path, host="a.example"):
    r = as_client(p, src, build_request("GET", path, host))
    return r.status if r else None


# --- order, all, the default ------------------------------------------------------------------
mark = p.log_mark()
is_(status("10.1.2.3", "/admin/x"), 200, "allow office; deny all: an office address is let in")
is_(status("192.168.1.1", "/admin/x"), 403, "...anyone else meets deny all")
ok(p.wait_log(r"refused request from 192\.168\.1\.1: 403 Forbidden \(access denied by deny = "
              r"\"all\" \(route at line \d+\)\)", 3, mark), "the refusal names the entry and the route")
is_(status("10.66.1.1", "/admin/x"), 403, "'!10.66.0.0/16' takes a range out of office")
is_(status("10.66.6.9", "/admin/x"), 200, "...and a longer range puts part of it back (longest prefix)")
is_(status("2001:db8:5::1", "/admin/x"), 200, "IPv6 ranges in the same list")

is_(status("10.2.0.1", "/only/x"), 200, "allow alone: those in the list are let in")
mark = p.log_mark()
is_(status("11.0.0.1", "/only/x"), 403, "...and the others are not (the opposite of the last entry)")
ok(p.wait_log(r"refused request from 11\.0\.0\.1: 403 Forbidden \(access denied: not in allow = "
              r"\"office\", the last entry \(route at line \d+\)\)", 3, mark), "that refusal says why")

is_(status("10.1.9.9", "/nobad/x"), 403, "deny alone with an address range in place: those are kept out")
is_(status("10.2.9.9", "/nobad/x"), 200, "...the others are let in")

is_(status("10.9.1.1", "/order/x"), 403, "deny before allow: the deny entry is met first")
is_(status("10.8.1.1", "/order/x"), 200, "...office addresses outside it are let in")
is_(status("12.0.0.1", "/order/x"), 403, "...others: the opposite of the last entry (allow)")

# --- CIDR edges -----------------------------------------------------------------------------------
is_(status("1.2.3.4", "/zero4/x"), 200, "0.0.0.0/0 holds every IPv4 address")
is_(status("255.255.255.255", "/zero4/x"), 200, "...the last one too")
is_(status("2001:db8::1", "/zero4/x"), 403, "...but no IPv6 address")
is_(status("2001:db9::1", "/zero6/x"), 200, "::/0 holds every IPv6 address")
is_(status("1.2.3.4", "/zero6/x"), 403, "...but no IPv4 address")
is_(status("::ffff:1.2.3.4", "/zero6/x"), 403, "...nor an IPv4-mapped one (it is an IPv4 client)")
is_(status("192.0.2.7", "/h32/x"), 200, "/32: exactly that address")
is_(status("192.0.2.8", "/h32/x"), 403, "/32: not its neighbour")
is_(status("::ffff:192.0.2.7", "/h32/x"), 200, "/32: the same address IPv4-mapped")
is_(status("2001:db8::7", "/h128/x"), 200, "/128: exactly that address")
is_(status("2001:db8::6", "/h128/x"), 403, "/128: not its neighbour")
is_(status("198.51.100.9", "/mapped/x"), 200, "a ::ffff:a.b.c.d/120 range holds the IPv4 client a.b.c.x")
is_(status("::ffff:198.51.100.9", "/mapped/x"), 200, "...and its mapped form")
is_(status("198.51.101.9", "/mapped/x"), 403, "...not outside it")
is_(status("192.0.2.200", "/inline/x"), 200, "an IPv4-mapped range written in place: the IPv4 client")
is_(status("2001:db8:1:2::1", "/inline/x"), 200, "an IPv6 range written in place")
is_(status("2001:db8:2::1", "/inline/x"), 403, "...and outside it")

# --- the connection's own address, without PROXY protocol ------------------------------------------
r = p.get("/admin/x", port="port2")
is_(r.status, 403, "without PROXY protocol the peer's address decides (127.0.0.1 is not in office)")
r = p.get("/zero4/x", port="port2")
is_(r.status, 200, "...127.0.0.1 is in 0.0.0.0/0")

# --- filters.global: before routing ------------------------------------------------------------------
mark = p.log_mark()
is_(status("203.0.113.5", "/"), 403, "a global deny refuses before any route")
is_(status("203.0.113.5", "/no/such/route/zz", host="nowhere.example"), 403,
    "...also where no route would match (it runs before routing)")
ok(p.wait_log(r"refused request from 203\.0\.113\.5: 403 Forbidden \(access denied by deny = "
              r"\"blocklist\" \(filters\.global\)\)", 3, mark), "the global refusal says filters.global")
is_(status("2001:db8:bad:1::1", "/"), 403, "global deny, IPv6 range")
is_(status("192.0.2.66", "/"), 403, "global deny, an address in place")
is_(status("203.0.114.5", "/"), 200, "an address outside the global deny goes on to routing")

# --- 100,000 ranges ------------------------------------------------------------------------------------
is_(status("172.16.0.0", "/big/x"), 403, "a list of %d ranges: the first" % BIG)
is_(status("172.17.134.159", "/big/x"), 403, "...the last (172.17.134.159)")
is_(status("172.17.134.160", "/big/x"), 200, "...the one after it is not in the list")
is_(status("172.16.77.77", "/big/x"), 403, "...one in the middle")
is_(status("10.0.0.1", "/big/x"), 200, "...an unrelated address")

# --- counters ------------------------------------------------------------------------------------------
cs = counters(p, src="198.18.0.1")
is_((cs.get("acl:all"), cs.get("acl:office")), (3, 2),
    "shared counters (both workers): 3 refusals by deny all, 2 by not being in office")
is_((cs.get("acl:blocklist"), cs.get("acl:address")), (3, 4),
    "3 by the blocklist (global), 4 by an address or range written in place")
is_((cs.get("acl:zero4"), cs.get("acl:zero6"), cs.get("acl:big")), (1, 2, 3), "zero4, zero6, big")

# --- -t errors ------------------------------------------------------------------------------------------
def check(conf, name):
    path = os.path.join(p.tmp, name)
    p.write_config(conf, path)
    res = subprocess.run([TEST_BIN, "-t", "-c", path], capture_output=True, text=True,
                         timeout=120)
    return res.returncode, res.stdout + res.stderr


SMALL = CONF.replace('@include "big.inc"', '"172.16.0.0/16"')   # -t of errors: no need to read 100,000


def bad(replace_from, replace_to, err, what):
    assert replace_from in SMALL, replace_from
    rc, out = check(SMALL.replace(replace_from, replace_to), "bad.conf")
    ok(rc == 1 and re.search(err, out), "-t: %s" % what) or diag(out)


bad('allow = [ "office" ]; deny = [ "all" ];', 'allow = [ "offfice" ]; deny = [ "all" ];',
    r"bad\.conf:\d+: key 'routes\[1\]\.allow\[0\]': \"offfice\": no access list has that name, "
    r"and it is not an address or range", "an unknown access list, file:line")
bad('"10.0.0.0/8", "!10.66.0.0/16"', '"10.0.0.1/8", "!10.66.0.0/16"',
    r"key 'filters\.acls\[0\]\.cidrs\[0\]': \"10\.0\.0\.1/8\": host bits set", "a range with host bits set")
bad('"10.0.0.0/8", "!10.66.0.0/16"', '"10.0.0.0/8", "!10.0.0.0/8"',
    r"key 'filters\.acls\[0\]\.cidrs\[1\]': \"!10\.0\.0\.0/8\": the range is listed both with and without '!'",
    "the same range with and without '!'")
bad('"10.0.0.0/8", "!10.66.0.0/16"', '"10.0.0.0/33"',
    r"\"10\.0\.0\.0/33\": prefix length over 32", "a prefix over 32")
bad('"2001:db8::/32" ]', '"2001:db8::/129" ]', r"prefix length over 128", "a prefix over 128")
bad('allow = [ "office" ]; deny = [ "all" ];', 'deny = [ "all", "office" ];',
    r"key 'routes\[1\]\.deny\[1\]': \"office\" comes after \"all\", which holds every client: "
    r"it is never reached", "an entry after all")
bad('{ name = "zero4";', '{ name = "all";', r"\"all\" is a keyword", "an access list named all")
bad('{ name = "zero4";', '{ name = "office";', r"\"office\" is already the name of the access list at line \d+",
    "two access lists with one name")
bad('allow = [ "zero4" ];', 'allow = [ ];', r"key 'routes\[5\]\.allow': empty", "an empty allow")
bad('global = { deny', 'global = { denny', r"key 'filters\.global\.denny': unknown key \(did you mean 'deny'\?\)",
    "a misspelt key in filters.global")
bad('  acls = (', '  allow = [ "x" ];\n  acls = (',
    r"key 'filters\.allow': unknown key here \(it goes in a route or in filters\.global\)",
    "allow directly in filters")
rc, out = check(CONF, "good.conf")
is_(rc, 0, "-t: the test's own configuration (with %d ranges) is valid" % BIG)
done_testing()
