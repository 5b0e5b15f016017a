#!/usr/bin/env python3
# The admin listener's /metrics and /status: the Prometheus text parsed strictly, values
# checked against the traffic sent through 2 workers, counters that keep counting across a
# reload and a worker's crash, reloads and their outcome, the config generation; 403 for a
# client outside admin.allow, 404/405; the admin listener is not a route target.
import json, os, signal, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from admintest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 120)

echo = Origin.echo()


def conf(extra_route=""):
    routes = ['{ name = "health"; path_prefix = "/h"; return = { status = 200; body = "ok\\n"; }; }',
              '{ path_prefix = "/nf"; return = { status = 404; }; }',
              proxy_route("app", "/app/")]
    if extra_route:
        routes.insert(0, extra_route)
    return proxy_config(upstream("app", [echo.address]), routes, workers=2, extra=ADMIN)


p = Portico(conf())
workers = p.wait_workers(2)
wait_admin(p)

# -- traffic through both workers: keep-alive connections are opened until each worker
# holds some (status shows every worker's open connections), then requests go round them
conns = []


def both_hold():
    conns.append(p.connect(timeout=10))
    return all(w["connections"] > 0 for w in status(p)["workers"])


ok(wait_for(both_hold, 10, 0), "both workers hold client connections (%d opened)" % len(conns))
reqs = [("GET", "/h", None)] * 20 + [("GET", "/nf", None)] * 5 + [("POST", "/app/x", b"hello")] * 3
for i, (meth, target, body) in enumerate(reqs):
    c = conns[i % len(conns)]
    c.send(build_request(meth, target, body=body))
    r = c.read_response(method=meth, timeout=10)
    assert r.status == (404 if target == "/nf" else 200), (target, r.status)
for c in conns:
    c.close()
# every connection carried at least one request, and each worker holds one: both served
diag("requests per worker: %s" % [w["requests"] for w in status(p)["workers"]])

r = admin_get(p, "/metrics")
is_(r.status, 200, "/metrics: 200")
is_(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8",
    "/metrics: the 0.0.4 text format's content type")
try:
    m = parse_prometheus(r.body.decode())
    ok(True, "/metrics parses strictly")
except PromError as e:
    ok(False, "/metrics parses strictly: %s" % e)
    m = Metrics()

REQ = "portico_http_requests_total"
is_(wait_metric(p, REQ, 20, listener="main", route="health", method="GET", code="2xx"), 20,
    "20 GET /h counted under the route's name, 2xx")
is_(wait_metric(p, REQ, 5, listener="main", route="*/nf", method="GET", code="4xx"), 5,
    "5 GET /nf: an unnamed route is labelled by host and path, 4xx")
is_(wait_metric(p, REQ, 3, listener="main", route="*/app/", method="POST", code="2xx"), 3,
    "3 proxied POSTs")
m = scrape(p)
is_(m.value("portico_upstream_requests_total", upstream="app", server=echo.address), 3,
    "upstream requests: 3 to the echo server")
is_(m.value("portico_upstream_response_time_seconds_count", upstream="app", server=echo.address),
    3, "the response-time histogram counts 3")
ok(m.value("portico_upstream_response_time_seconds_sum", upstream="app", server=echo.address) > 0,
   "and their sum is above 0 s")
is_(m.value("portico_upstream_failures_total", upstream="app", server=echo.address), 0,
    "no upstream failure")
is_(m.value("portico_upstream_server_state", upstream="app", server=echo.address, state="up"), 1,
    "server state: up = 1")
is_(m.value("portico_upstream_server_state", upstream="app", server=echo.address, state="down"), 0,
    "server state: down = 0")
cmp_ok(m.value("portico_http_received_bytes_total"), ">=", 28 * 30, "bytes in counted")
cmp_ok(m.value("portico_http_sent_bytes_total"), ">=", 28 * 50, "bytes out counted")
is_(m.value("portico_workers"), 2, "2 workers")
is_(m.value("portico_config_generation"), 1, "config generation 1")
is_(m.value("portico_reloads_total", result="ok"), 0, "no reload yet")
is_(m.value("portico_worker_restarts_total"), 0, "no worker restart yet")
cmp_ok(m.value("portico_connections", state="active"), ">=", 1, "the scrape is an active connection")
is_(m.types.get("portico_upstream_response_time_seconds"), "histogram", "response time is a histogram")
for fam, t in m.types.items():
    if fam.endswith("_seconds") and t != "histogram":
        ok(t == "gauge", "%s: a gauge in seconds" % fam)

# -- /status: the same state as JSON
st = status(p)
is_(len(st["workers"]), 2, "/status: 2 workers")
is_(sum(w["requests"] for w in st["workers"]), st["requests"]["total"],
    "/status: the workers' requests add up to the total (no worker exited yet)")
cmp_ok(st["requests"]["2xx"], ">=", 23, "/status: 2xx responses")
is_(st["requests"]["4xx"], 5, "/status: 4xx responses")
is_([(l["name"], l["admin"]) for l in st["listeners"]], [("main", False), ("admin", True)],
    "/status: listeners, the admin one marked")
sv = st["upstreams"][0]["servers"][0]
is_((st["upstreams"][0]["name"], sv["address"], sv["state"], sv["requests"], sv["weight"]),
    ("app", echo.address, "up", 3, 1), "/status: the upstream server with its state and counters")
is_(st["generation"], 1, "/status: generation 1")

# -- the admin listener is no route target, and answers only its endpoints
r = admin_get(p, "/h")
is_((r.status, json.loads(r.body)), (404, {"error": "no such admin endpoint"}),
    "the admin listener does not route: /h is 404 there")
r = admin_request(p, "POST", "/metrics", body=b"{}")
is_((r.status, r.header("Allow")), (405, "GET, HEAD"), "POST /metrics: 405 with Allow")
r = admin_request(p, "HEAD", "/metrics")
is_((r.status, r.body), (200, b""), "HEAD /metrics: 200 without a body")
r = p.get("/metrics")
is_(r.status, 404, "the public listener has no /metrics")

# -- a reload: counters keep counting, the generation moves
mark = p.log_mark()
p.reload(conf())
p.wait_log(r"reload: reading", 10, start=mark)
is_(wait_metric(p, "portico_config_generation", 2, 10), 2, "after a reload: generation 2")
gen2 = p.wait_workers(2, exclude=workers)
for i in range(10):
    assert p.get("/h", headers=[("Connection", "close")]).status == 200
is_(wait_metric(p, REQ, 30, listener="main", route="health", method="GET", code="2xx"), 30,
    "GET /h keeps counting across the reload: 20 + 10")
m = scrape(p)
is_(m.value("portico_reloads_total", result="ok"), 1, "reloads_total{result=ok} 1")
is_(m.value("portico_upstream_requests_total", upstream="app", server=echo.address), 3,
    "upstream requests kept across the reload")
is_(m.value("portico_upstream_response_time_seconds_count", upstream="app", server=echo.address),
    3, "the histogram kept across the reload (the old workers' rows folded in)")

# -- a failed reload
mark = p.log_mark()
p.write_config(conf().replace("workers = 2;", "workers = 2; bogus_key = 1;"))
p.signal(signal.SIGHUP)
p.wait_log(r"reload failed, keeping the running configuration", 10, start=mark)
is_(wait_metric(p, "portico_reloads_total", 1, 5, result="failed"), 1,
    "a failed reload: reloads_total{result=failed} 1")
m = scrape(p)
is_((m.value("portico_reload_last_success"), m.value("portico_config_generation")), (0, 2),
    "last reload failed; generation still 2")
st = status(p)
is_((st["reloads"]["ok"], st["reloads"]["failed"], st["reloads"]["last_ok"]), (1, 1, False),
    "/status: reloads ok 1, failed 1, last failed")

# -- a worker crash: counters survive, the restart is counted
victim = gen2[0]
os.kill(victim, signal.SIGKILL)
p.wait_workers(2, exclude=[victim])
is_(wait_metric(p, "portico_worker_restarts_total", 1, 10), 1, "a killed worker: restarts_total 1")
is_(scrape(p).value(REQ, listener="main", route="health", method="GET", code="2xx"), 30,
    "counters intact after a worker crash")
for i in range(4):
    assert p.get("/h", headers=[("Connection", "close")]).status == 200
is_(wait_metric(p, REQ, 34, listener="main", route="health", method="GET", code="2xx"), 34,
    "and go on counting")
p.stop()

# -- allow: a client outside it gets 403, with an info line
q = Portico(proxy_config(upstream("app", [echo.address]), proxy_route("app"),
                         extra='admin = { address = "127.0.0.1:{port_admin}"; allow = [ "10.0.0.0/8" ]; };'))
wait_admin(q)
mark = q.log_mark()
r = admin_get(q, "/metrics")
is_(r.status, 403, "a client outside admin.allow: 403")
q.wait_log(r"\[info\].*admin: refused 127\.0\.0\.1: not in admin\.allow \(403\)", 5, start=mark)
ok(True, "an info line says why")
q.stop()

# -- the filters' shared counters are exposed
f = Portico(proxy_config(upstream("app", [echo.address]),
                         ['{ path_prefix = "/blocked/"; deny = [ "me" ]; return = { body = "x\\n"; }; }',
                          proxy_route("app")],
                         extra='filters = { acls = ( { name = "me"; cidrs = [ "127.0.0.0/8" ]; } ); };\n'
                               + ADMIN))
wait_admin(f)
for i in range(3):
    is_(f.get("/blocked/%d" % i).status, 403, "an access list refuses /blocked/%d" % i)
is_(wait_metric(f, "portico_filter_events_total", 3, kind="acl", name="me"), 3,
    "portico_filter_events_total{kind=acl,name=me} counts the 3 refusals")
is_(scrape(f).value(REQ, listener="main", route="*/blocked/", code="4xx"), 3,
    "and the requests are counted on their route, 4xx")
f.stop()

# -- configuration errors: file:line and the key
def check_conf(text, want, name):
    d = Portico(text, start=False)
    cp = run_bin(["-t", "-c", d.conf_path])
    is_(cp.returncode, 1, name + ": -t fails")
    like(cp.stderr, want, name + ": the message")


base = proxy_config(upstream("app", [echo.address]), proxy_route("app"), extra="%s")
lines = base.split("\n")
admin_line = len(lines)      # the extra text is the last non-empty line
check_conf(base % 'admin = { allow = [ "127.0.0.1" ]; };',
           r"portico\.conf:\d+: .*admin: \"address\" is required", "admin without an address")
check_conf(base % 'admin = { address = "127.0.0.1:{port}"; };',
           r"portico\.conf:\d+: .*\"127\.0\.0\.1:\d+\" is already the address of listeners\[0\]",
           "admin on a listener's address")
check_conf(base % 'admin = { address = "127.0.0.1:{port_admin}"; token_file = "nope.token"; };',
           r"portico\.conf:\d+: .*token_file.*nope\.token\": ", "a missing token file")
check_conf(base % 'admin = { address = "127.0.0.1:{port_admin}"; allow = [ "10.0.0.300/8" ]; };',
           r"portico\.conf:\d+: .*allow", "a bad allow entry")
check_conf(base % 'admin = { address = "127.0.0.1:{port_admin}"; colour = "red"; };',
           r"portico\.conf:\d+: .*colour", "an unknown admin key")

done_testing()
