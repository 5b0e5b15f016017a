#!/usr/bin/env python3
# Reverse proxying, configuration: `-t` on upstream and route mistakes (file:line, the key,
# what is wrong), and the sample config etc/portico.conf: accepted by -t, and, started with
# its ports swapped for free ones, proxying GET / to its own demo listener.
import os, re, socket, sys, tempfile
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

tmp = tempfile.mkdtemp(prefix="portico-t-conf-")
add_cleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
LISTEN = 'listeners = ( { address = "127.0.0.1:8080"; } );\n'
UP = 'upstreams = ( { name = "app"; servers = ( { address = "127.0.0.1:9"; } ); } );\n'


def check(text, name):
    path = os.path.join(tmp, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    cp = run_bin(["-t", "-c", path], timeout=30)
    return path, cp.returncode, cp.stdout + cp.stderr


BAD = [
    ("buffer-size", LISTEN + UP + "routes = (\n  { upstream = \"app\";\n    request_buffer_size = 100000000; }\n);\n",
     5, r"key 'routes\[0\]\.request_buffer_size': 100000000 is out of range 0\.\.67108864",
     "request_buffer_size over 64 MiB"),
    ("buffering-type", LISTEN + UP + "routes = ( { upstream = \"app\"; request_buffering = 1; } );\n",
     3, r"key 'routes\[0\]\.request_buffering': expected a boolean", "request_buffering not a boolean"),
    ("min-rate", LISTEN + UP + "limits = { client_body_min_rate = -1; };\nroutes = ( { upstream = \"app\"; } );\n",
     3, r"key 'limits\.client_body_min_rate': -1 is out of range 0\.\.1073741824", "negative client_body_min_rate"),
    ("missing-upstream", LISTEN + UP + "routes = (\n  { path_prefix = \"/a\"; upstream = \"app\"; },\n"
     "  { path_prefix = \"/\";\n    upstream = \"nope\"; }\n);\n",
     6, r"key 'routes\[1\]\.upstream': no upstream named \"nope\"", "a route naming a missing upstream"),
    ("empty-upstream", LISTEN + "routes = ( { upstream = \"\"; } );\n",
     2, r"key 'routes\[0\]\.upstream': must be the name of an upstream", "upstream = \"\""),
    ("unknown-key", LISTEN + "upstreams = (\n  { name = \"app\"; servers = ( { address = \"127.0.0.1:9\"; } );\n"
     "    keepalive_ms = 3; } );\n", 4, r"key 'upstreams\[0\]\.keepalive_ms': unknown key",
     "an unknown upstream key"),
    ("buffer-size", LISTEN + "upstreams = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9\"; } ); "
     "buffer_size = 100; } );\n", 2, r"key 'upstreams\[0\]\.buffer_size': 100 is out of range 4096\.\.1048576",
     "buffer_size below 4096"),
    ("no-address", LISTEN + "upstreams = ( { name = \"app\"; servers = ( { weight = 2; } ); } );\n",
     2, r"upstreams\[0\]\.servers\[0\]: server needs an address", "a server without an address"),
    ("no-port", LISTEN + "upstreams = ( { name = \"app\"; servers = ( { address = \"127.0.0.1\"; } ); } );\n",
     2, r"key 'upstreams\[0\]\.servers\[0\]\.address': \"127\.0\.0\.1\": missing port", "a server address without a port"),
    ("unresolvable", LISTEN + "upstreams = ( { name = \"app\"; servers = ( { address = \"no-such-host.invalid:80\"; } ); } );\n",
     2, r"key 'upstreams\[0\]\.servers\[0\]\.address': \"no-such-host\.invalid:80\": cannot resolve no-such-host\.invalid",
     "a server name that does not resolve"),
    ("duplicate", LISTEN + "upstreams = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9\"; } ); },\n"
     "  { name = \"app\"; servers = ( { address = \"127.0.0.1:10\"; } ); } );\n",
     3, r"upstreams\[1\]: upstream \"app\" is already defined at line 2", "two upstreams with one name"),
    ("both", LISTEN + UP + "routes = ( { upstream = \"app\";\n  return = { status = 200; }; } );\n",
     3, r"routes\[0\]: both return and upstream produce the response: keep one", "a route with return and upstream"),
]
ROUTE = 'routes = (\n  { upstream = "app";\n    %s = ( { name = "x-ok"; value = "1"; },\n      { name = "%s"; value = "%s"; } ); } );\n'
for field, value in (("Connection", "close"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked"),
                     ("TE", "trailers"), ("Upgrade", "websocket"), ("Expect", "100-continue")):
    BAD.append(("set-req-" + field, LISTEN + UP + ROUTE % ("set_request_headers", field, value), 6,
                r"key 'routes\[0\]\.set_request_headers\[1\]\.name': \"%s\" is managed by the proxy and cannot be set"
                % field, "set_request_headers naming %s" % field))
BAD.append(("set-req-host-empty", LISTEN + UP + ROUTE % ("set_request_headers", "Host", ""), 6,
            r"key 'routes\[0\]\.set_request_headers\[1\]\.value': Host cannot be removed", "set_request_headers removing Host"))
for field, value in (("Content-Length", "5"), ("Transfer-Encoding", "chunked"), ("Connection", "close"),
                     ("Server", "x")):
    BAD.append(("set-resp-" + field, LISTEN + UP + ROUTE % ("set_response_headers", field, value), 6,
                r"key 'routes\[0\]\.set_response_headers\[1\]\.name': \"%s\" is managed by the proxy and cannot be set"
                % field, "set_response_headers naming %s" % field))

for name, text, line, msg, what in BAD:
    path, rc, out = check(text, name)
    is_(rc, 1, "-t: %s: exit 1" % what)
    like(out, r"(?m)^portico: %s:%d: %s" % (re.escape(path), line, msg), "-t: %s: file:line and why" % what)

path, rc, out = check(LISTEN + UP + 'routes = ( { path_prefix = "/"; upstream = "app"; preserve_host = false;\n'
                      '  set_request_headers = ( { name = "X-A"; value = "1"; } );\n'
                      '  set_response_headers = ( { name = "X-B"; value = ""; } );\n'
                      '  hide_response_headers = [ "X-Secret" ]; } );\n', "good")
is_((rc, out.strip()), (0, "portico: configuration file %s test is successful" % path),
    "-t: a proxy route with every option: accepted")

# --- a reload points the upstream elsewhere ----------------------------------------------------------------
oa, ob = Origin.fixed(body=b"A\n"), Origin.fixed(body=b"B\n")
rp = Portico(proxy_config(upstream("app", [oa.address]), proxy_route("app")))
r = rp.get("/")
is_((r.status, r.body, oa.open_conns), (200, b"A\n", 1), "before the reload: origin A, one pooled connection")
old_workers = rp.worker_pids()
name = "localhost" if socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][4][0] == "127.0.0.1" \
    else "127.0.0.1"
rp.reload(proxy_config(upstream("app", ["%s:%d" % (name, ob.port)]), proxy_route("app")))
rp.wait_workers(1, exclude=old_workers)
got = wait_for(lambda: rp.get("/").body == b"B\n", 5)
ok(got, "after SIGHUP with a new server address (a name, resolved at reload): origin B answers")
is_(oa.wait_open(0, 6), 0, "...and the old workers' pooled connections to A are closed")
rp.stop()

# --- the sample config ------------------------------------------------------------------------------------
sample = os.path.join(srcdir(), "etc", "portico.conf")
cp = run_bin(["-t", "-c", sample], timeout=30)
is_((cp.returncode, (cp.stdout + cp.stderr).strip()),
    (0, "portico: configuration file %s test is successful" % sample), "-t accepts etc/portico.conf")

with open(sample) as f:
    text = f.read()
ok("127.0.0.1:8080" in text and "127.0.0.1:8081" in text, "the sample uses 127.0.0.1:8080 and :8081")
ok(re.search(r'upstream\s*=\s*"demo"', text) and re.search(r'address\s*=\s*"127\.0\.0\.1:8081"', text),
   "the sample proxies to an upstream demo on 127.0.0.1:8081")
# only the ports change (libconfig braces are escaped from the fixture's {placeholders})
p = Portico(text.replace("127.0.0.1:8080", "127.0.0.1:{port}").replace("127.0.0.1:8081", "127.0.0.1:{port2}"),
            start_timeout=20)
with p.connect() as c:
    r = c.request("GET", "/", host="127.0.0.1:%d" % p.port())
    is_((r.status, r.body), (200, b"hello from portico's demo origin\n"), "sample: GET / answers the demo's text")
    is_((r.header("X-Proxied-By"), r.header("X-Served-By"), r.header("Content-Type")),
        ("portico", "demo origin", "text/plain"), "sample: ...through the proxy route (X-Proxied-By) from the demo origin")
    r = c.request("HEAD", "/anything")
    is_((r.status, r.body, r.header("Content-Length")), (200, b"", "33"), "sample: HEAD /anything proxied too")
    r = c.request("GET", "/healthz")
    is_((r.status, r.body, r.header("X-Proxied-By")), (200, b"ok\n", None), "sample: /healthz answered by portico itself")
r = p.get("/", port="port2")
is_((r.status, r.body, r.header("X-Proxied-By")), (200, b"hello from portico's demo origin\n", None),
    "sample: the demo listener answers directly, without the proxy's field")
ok(wait_for(lambda: re.search(r'"GET / HTTP/1\.1" 200 33 "-" "-" \d+\.\d{3} 127\.0\.0\.1:%d \d+\.\d{3} -'
                              % p.port("port2"), p._read(p.stderr_path)), 3),
   "sample: its access log (main format, stderr) shows the upstream 127.0.0.1:PORT2")
done_testing()
