#!/usr/bin/env python3
# The runtime API: a server drained under load through 2 workers (no failed request, no
# new request reaches it, its pooled connections close), back up, down, a weight; the
# bearer token (missing, wrong, right); every refusal with its status and message; the
# configuration wins again on the next reload.
import json, os, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from admintest import *
from balancetest import named_origins, Load

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 150)

TOKEN = "s3cret-Token_42"
o = named_origins(2, delay=0.005)
S0, S1 = o[0].address, o[1].address


def conf():
    return proxy_config(upstream("app", [S0, S1], keepalive=8), proxy_route("app"), workers=2,
                        extra='admin = { address = "127.0.0.1:{port_admin}"; '
                              'token_file = "admin.token"; };')


p = Portico(conf(), start=False)
with open(os.path.join(p.tmp, "admin.token"), "w") as f:
    f.write(TOKEN + "\n")
p.start()
p.wait_workers(2)
wait_admin(p)
SV1 = "/api/upstreams/app/servers/" + S1

# -- GET
r = admin_get(p, "/api/upstreams")
j = json.loads(r.body)
is_((r.status, r.header("Content-Type"), [s["address"] for s in j["upstreams"][0]["servers"]]),
    (200, "application/json", [S0, S1]), "GET /api/upstreams lists the servers")
r = admin_get(p, SV1)
is_((r.status, json.loads(r.body)["state"]), (200, "up"), "GET one server: up")
is_(json.loads(admin_get(p, "/api/upstreams/app").body)["name"], "app", "GET one group")

# -- refusals
def refused(r, status, msg, name):
    try:
        body = json.loads(r.body)
    except ValueError:
        body = r.body
    is_((r.status, body), (status, {"error": msg}), name)


mark = p.log_mark()
r = api_post(p, SV1, {"state": "drain"})
refused(r, 401, "a valid bearer token is required", "POST without a token: 401")
is_(r.header("WWW-Authenticate"), 'Bearer realm="portico"', "with WWW-Authenticate")
refused(api_post(p, SV1, {"state": "drain"}, token="wrong"), 401,
        "a valid bearer token is required", "a wrong token: 401")
refused(api_post(p, SV1, {"state": "drain"}, token=TOKEN + "x"), 401,
        "a valid bearer token is required", "the token with one more byte: 401")
p.wait_log(r"\[info\].*admin: POST %s from 127\.0\.0\.1: 401 \(a valid bearer token is required\)"
           % SV1.replace(".", r"\."), 5, start=mark)
ok(True, "a refused token gives an info line")
is_(json.loads(admin_get(p, SV1).body)["state"], "up", "after the refusals the server is still up")

for body, msg in [(b"drain", "the body must be a JSON object"),
                  ({"state": "sleep"}, '"state" must be "drain", "up" or "down"'),
                  ({"weight": 0}, '"weight" must be an integer from 1 to 1000000'),
                  ({"weight": 1.5}, '"weight" must be an integer from 1 to 1000000'),
                  ({"colour": "red"}, 'unknown member: only "state" and "weight"'),
                  ({}, 'nothing to change: give "state" and/or "weight"'),
                  (b'{"state": "up"} x', "malformed JSON: text after the object")]:
    refused(api_post(p, SV1, body, token=TOKEN), 400, msg, "400: %s" % msg)
refused(api_post(p, "/api/upstreams/nope/servers/" + S1, {"state": "up"}, token=TOKEN), 404,
        "no such upstream", "an unknown upstream: 404")
refused(api_post(p, "/api/upstreams/app/servers/127.0.0.1:1", {"state": "up"}, token=TOKEN), 404,
        "no such server in the upstream", "an unknown server: 404")
r = admin_request(p, "PUT", SV1, body=b"{}")
is_((r.status, r.header("Allow")), (405, "GET, HEAD, POST"), "PUT: 405 with Allow")
refused(admin_request(p, "POST", "/api/upstreams", body=b"{}"), 405, "only GET and HEAD here",
        "POST on the list: 405")

# -- drain under load
load = Load(p, conns=8)
ok(wait_for(lambda: o[1].requests > 50 and o[0].requests > 50, 20), "load reaches both servers")
ok(wait_for(lambda: o[1].open_conns > 0, 5), "s1 has pooled connections")
mark = p.log_mark()
r = api_post(p, SV1, {"state": "drain"}, token=TOKEN)
j = json.loads(r.body)
is_((r.status, j["address"]), (200, S1), "POST drain: 200 with the server")
in_(j["state"], ("draining", "down"), "the answer shows it draining (or already down)")
p.wait_log(r'\[notice\].*admin API: 127\.0\.0\.1 sets upstream "app" server %s: state drain'
           % S1.replace(".", r"\."), 5, start=mark)
ok(True, "the change is logged")
ok(wait_for(lambda: json.loads(admin_get(p, SV1).body)["state"] == "down", 10),
   "the server goes down once its last request in flight ends")
like(p.error_log()[mark:], r"server %s: up -> draining \(drain through the admin API, from 127\.0\.0\.1\)"
     % S1.replace(".", r"\."), "the transition line says why")
after = o[1].requests
before0 = o[0].requests
ok(wait_for(lambda: o[0].requests > before0 + 200, 20), "the load goes on on s0")
is_(o[1].requests, after, "no new request reached the drained server")
ok(wait_for(lambda: o[1].open_conns == 0, 5),
   "its idle pooled connections are closed (every worker)")
res = load.stop()
is_(res.errors, [], "no failed request during the drain (%d requests)" % sum(res.statuses.values()))
m = scrape(p)
is_((m.value("portico_upstream_server_state", upstream="app", server=S1, state="down"),
     m.value("portico_upstream_server_state", upstream="app", server=S1, state="up")), (1, 0),
    "/metrics shows it down")

# -- up again, then down, weight
r = api_post(p, SV1, {"state": "up"}, token=TOKEN)
is_((r.status, json.loads(r.body)["state"]), (200, "up"), "POST up: up again")
n1 = o[1].requests
for i in range(10):
    p.get("/")
ok(o[1].requests > n1, "s1 takes requests again")
r = api_post(p, SV1, {"state": "down"}, token=TOKEN)
is_((r.status, json.loads(r.body)["state"], json.loads(r.body)["down_why"]), (200, "down", ["api_down"]),
    "POST down: down at once")
r = api_post(p, "/api/upstreams/app/servers/" + S0, {"weight": 7}, token=TOKEN)
is_((r.status, json.loads(r.body)["weight"], json.loads(r.body)["config_weight"]), (200, 7, 1),
    "POST weight 7")
is_(scrape(p).value("portico_upstream_server_weight", upstream="app", server=S0), 7,
    "/metrics shows weight 7")

# -- the configuration wins on reload
mark = p.log_mark()
p.reload(conf())
p.wait_log(r"the configuration again after a change through the admin API", 10, start=mark)
ok(True, "a reload says the configuration is back")
ok(wait_for(lambda: json.loads(admin_get(p, SV1).body)["state"] == "up", 10),
   "after the reload s1 is up again")
is_(json.loads(admin_get(p, "/api/upstreams/app/servers/" + S0).body)["weight"], 1,
    "and s0's weight is the configuration's again")

# -- a weight set through the API steers the traffic of every worker
r = api_post(p, SV1, {"weight": 3}, token=TOKEN)
is_(r.status, 200, "POST weight 3 on s1")
from balancetest import load
got = load(p, 800, conns=16)
is_(got.errors, [], "800 requests, none failed")
share = got["s1"] / 800.0
ok(0.68 <= share <= 0.82, "s1 takes about 3/4 of them with weight 3 against 1 (%.3f)" % share)

done_testing()
