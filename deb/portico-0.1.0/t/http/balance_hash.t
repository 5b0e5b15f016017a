#!/usr/bin/env python3
# hash and ip_hash: sticky through 2 workers for $uri, $host$uri, $http_x_user and
# $cookie_session keys and client addresses (IPv4 /24, IPv6 whole); an empty key goes round
# robin; removing one of 5 servers on reload remaps at most 1/5 + 5 % of 10,000 keys; a
# server that is down moves only its own keys.
import collections, os, re, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from balancetest import *

watchdog(300)

o = named_origins(5)
ALL = [x.address for x in o]
THREE = ALL[:3]


def conf(servers5, down=()):
    s5 = [{"address": a, "down": True} if a in down else a for a in servers5]
    c = proxy_config(
        [upstream("uri", s5, balance="hash", hash_key="$uri"),
         upstream("hosturi", THREE, balance="hash", hash_key="$host$uri"),
         upstream("user", THREE, balance="hash", hash_key="${http_x_user}"),
         upstream("cookie", THREE, balance="hash", hash_key="$cookie_session"),
         upstream("ip", THREE, balance="ip_hash")],
        [proxy_route("uri", "/uri/"), proxy_route("hosturi", "/hu/"), proxy_route("user", "/user/"),
         proxy_route("cookie", "/cookie/"), proxy_route("ip", "/ip/")], workers=2)
    return c.replace('listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );',
                     'listeners = ( { name = "main"; address = "127.0.0.1:{port}"; }, '
                     '{ name = "pp"; address = "127.0.0.1:{port2}"; proxy_protocol = true; } );')


p = Portico(conf(ALL), vars={"http_x_user": "{http_x_user}"})   # ${http_x_user} stays
p.wait_workers(2)


def sticky(res):
    return all(len(v) == 1 for v in res.by_key.values())


# $uri: every key three times over 24 connections (both workers)
res = load(p, 900, conns=24, targets=lambda i: "/uri/k%d" % (i % 300))
is_(res.errors, [], "hash $uri: no error")
ok(sticky(res) and len(res.by_key) == 300, "hash $uri: every key always on the same server (300 keys x 3)")
cmp_ok(min(res[x.name] for x in o), ">=", 900 / 5 * 0.5, "...and the keys spread over the 5 servers (%r)" % dict(res))

res = load(p, 600, conns=12, targets=lambda i: "/hu/k%d" % (i % 20),
           host="a.example")
res2 = load(p, 600, conns=12, targets=lambda i: "/hu/k%d" % (i % 20), host="b.example")
ok(sticky(res) and sticky(res2), "hash $host$uri: sticky per host and uri")
ok(any(res.by_key[k] != res2.by_key[k] for k in res.by_key),
   "...and the host is part of the key (some uris map elsewhere for another host)")

users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
res = load(p, 400, conns=16, target="/user/x", headers=lambda i: [("X-User", users[i % 8])])
ok(sticky(res) and len(res.by_key) == 8, "hash $http_x_user: each user always on the same server")
ok(len(set().union(*res.by_key.values())) >= 2, "...users spread over servers")
res = load(p, 300, conns=6, target="/user/x")
ok(all(97 <= res[n] <= 103 for n in ("s0", "s1", "s2")),
   "no X-User (an empty key): round robin (%r)" % dict(res))

res = load(p, 300, conns=12, target="/cookie/x",
           headers=lambda i: [("Cookie", "theme=dark; session=S%d; lang=en" % (i % 10))])
ok(sticky(res) and len(res.by_key) == 10, "hash $cookie_session: each session on one server")
res2 = load(p, 100, conns=4, target="/cookie/x",
            headers=lambda i: [("Cookie", "session=S%d" % (i % 10))])
ok(all(res2.by_key[("/cookie/x", (("Cookie", "session=S%d" % j),))] ==
       res.by_key[("/cookie/x", (("Cookie", "theme=dark; session=S%d; lang=en" % j),))] for j in range(10)),
   "...the same server whatever other cookies come with it")

# ip_hash, clients given by a PROXY protocol header
def via(addr, n=2):
    got = set()
    for _ in range(n):
        c = p.connect("port2", timeout=5)
        c.send(proxy_v1(addr))
        for _ in range(2):
            r = c.request("GET", "/ip/x")
            got.add(r.body.decode() if r.status == 200 else "error %d" % r.status)
        c.sock.close()
    return got


v4 = {net: [via("10.%d.%d.%d" % (net // 256, net % 256, h)) for h in (1, 77, 254)] for net in range(40)}
ok(all(len(s) == 1 for sets in v4.values() for s in sets), "ip_hash: a client always on the same server")
ok(all(len(set().union(*sets)) == 1 for sets in v4.values()), "ip_hash: every address of a /24 on the same server")
spread = collections.Counter(next(iter(sets[0])) for sets in v4.values())
ok(len(spread) == 3, "ip_hash: /24s spread over the servers (%r)" % dict(spread))
v6 = {a: via(a) for a in ["2001:db8::%x" % i for i in range(1, 41)]}
ok(all(len(s) == 1 for s in v6.values()), "ip_hash IPv6: sticky per address")
ok(len(collections.Counter(next(iter(s)) for s in v6.values())) >= 2,
   "ip_hash IPv6: the whole address counts (addresses of one /64 spread)")

# a server down (down = true): only its keys move
before = load(p, 10000, conns=24, targets=lambda i: "/uri/r%d" % i)
is_(before.errors, [], "10,000 keys over 5 servers")
mark = p.log_mark()
p.reload(conf(ALL, down=[ALL[2]]))
ok(p.wait_log(r"reload finished", 10, mark), "reload: s2 down = true")
p.wait_workers(2, exclude=[])
after = load(p, 10000, conns=24, targets=lambda i: "/uri/r%d" % i)
moved = [k for k in before.by_key if before.by_key[k] != after.by_key.get(k)]
is_(sorted(set(next(iter(before.by_key[k])) for k in moved)), ["s2"],
    "a server down: only its keys move (%d keys, all of s2's %d)" % (len(moved), before["s2"]))
is_(after["s2"], 0, "...none go to it")

# removing one of 5 servers on reload
mark = p.log_mark()
p.reload(conf(ALL[:4]))
ok(p.wait_log(r"reload finished", 10, mark), "reload: s4 removed")
after = load(p, 10000, conns=24, targets=lambda i: "/uri/r%d" % i)
is_(after.errors, [], "10,000 keys over 4 servers")
moved = sum(1 for k in before.by_key if before.by_key[k] != after.by_key.get(k))
cmp_ok(moved, "<=", 10000 * (1 / 5 + 0.05),
       "removing one of 5 servers remaps at most 1/5 + 5 %% of 10,000 keys (%d; s4 had %d)" % (moved, before["s4"]))
p.stop()
done_testing()
