#!/usr/bin/env python3
# Reverse proxying, the heads: the request line in origin-form (also from absolute-form),
# hop-by-hop fields removed both ways, X-Forwarded-*/X-Real-IP, Host preserved or the
# server's address, per-route set/hide options, the origin's Server hidden, host names in
# server addresses, the access log's upstream fields.
import os, re, socket, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

ORIGIN_FIELDS = [
    ("Server", "origin/1.0"), ("X-Secret", "s3"), ("X-B", "origin"), ("X-Drop", "d"),
    ("X-Kept", "yes"), ("Connection", "X-Resp-Hop, Server-Timing"), ("X-Resp-Hop", "1"),
    ("Server-Timing", "db;dur=53"), ("Keep-Alive", "timeout=5, max=100"),
    ("Proxy-Connection", "keep-alive"), ("Upgrade", "foo/1"), ("Trailer", "X-T"),
    ("TE", "trailers"),
]
o = Origin.echo(headers=ORIGIN_FIELDS)
o2 = Origin.echo()                       # reached through "localhost:PORT"

p = Portico(proxy_config(
    [upstream("app", [o.address]), upstream("byname", ["localhost:%d" % o2.port])],
    [proxy_route("app", "/nohost", preserve_host=False),
     proxy_route("byname", "/byname", preserve_host=False),
     proxy_route("app", "/set",
                 set_request_headers='( { name = "X-A"; value = "1"; }, '
                                     '{ name = "X-Remove"; value = ""; }, '
                                     '{ name = "X-New"; value = "added"; } )',
                 set_response_headers='( { name = "X-B"; value = "2"; }, '
                                      '{ name = "X-Drop"; value = ""; }, '
                                      '{ name = "X-Added"; value = "r"; } )',
                 hide_response_headers='[ "X-Secret", "x-kept" ]'),
     proxy_route("app", "/override",
                 set_request_headers='( { name = "Host"; value = "backend.internal"; }, '
                                     '{ name = "X-Forwarded-For"; value = ""; }, '
                                     '{ name = "x-real-ip"; value = "192.0.2.1"; }, '
                                     '{ name = "X-Forwarded-Proto"; value = "https"; } )'),
     proxy_route("app", "/streamup", request_buffering=False),
     proxy_route("app", "/")]))
PORTICO_SERVER = "portico/" + portico_version()
HOP_RESPONSE = ["Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Trailer", "TE",
                "X-Resp-Hop", "Server-Timing", "Transfer-Encoding"]


def last():
    return o.received[-1] if o.received else OriginRequest()


# --- the request line and the plain header set ----------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/path/x?q=1&r=%20", host="a.example")
    is_(r.status, 200, "GET through the proxy: 200")
    req = last()
    is_(origin_head(req), "GET /path/x?q=1&r=%20 HTTP/1.1", "origin gets the target as sent, HTTP/1.1")
    is_(headers_of(req), request_fields(host="a.example"),
        "origin gets exactly Host, X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host")
    is_(r.body, req.head, "the client gets the origin's body (its echo of the request head)")
    is_(r.header("Content-Length"), str(len(req.head)), "Content-Length relayed")

    # response fields: the origin's Server is hidden, portico's is sent once
    is_(r.headers.get_all("Server"), [PORTICO_SERVER], "one Server field: portico's own")
    is_(r.headers.count("Date"), 1, "one Date field")
    like(r.header("Date", ""), IMF_FIXDATE, "Date is an IMF-fixdate")
    is_([h for h in HOP_RESPONSE if h in r.headers], [],
        "hop-by-hop response fields removed (Connection and what it lists, Keep-Alive, "
        "Proxy-Connection, Upgrade, Trailer, TE)")
    is_((r.header("X-Kept"), r.header("X-Secret"), r.header("X-B"), r.header("X-Drop")),
        ("yes", "s3", "origin", "d"), "end-to-end response fields kept")
    is_((r.header("X-Origin-Conn"), r.header("X-Origin-Request")), ("1", "1"),
        "the origin's own fields relayed")
    r2 = c.request("GET", "/again", host="a.example")
    is_((r2.status, origin_head(last())), (200, "GET /again HTTP/1.1"),
        "the client connection stays open for a second request")

with p.connect() as c:
    n0 = o.accepted
    r = c.request("GET", "/bye", headers=["Connection: close"])
    is_((r.status, headers_of(last())), (200, request_fields()),
        "client's Connection: close is not passed on (the origin connection stays pooled)")
    ok(conn_tokens(r) == ["close"] and c.closed(2.0), "...the client gets Connection: close and the close")
r = p.get("/after-bye")
is_((r.status, o.accepted), (200, n0), "...and the origin connection is reused")

# --- absolute-form targets --------------------------------------------------------------------
r = p.request("GET http://b.example:8000/abs/p?x=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n")
is_((r.status, origin_head(last())), (200, "GET /abs/p?x=1 HTTP/1.1"), "absolute-form: origin-form to the origin")
is_(headers_of(last()), request_fields(host="b.example:8000"),
    "absolute-form: Host and X-Forwarded-Host are the target's authority")
r = p.request("GET http://c.example HTTP/1.1\r\nHost: c.example\r\n\r\n")
is_((r.status, origin_head(last())), (200, "GET / HTTP/1.1"), "absolute-form without a path: GET /")
r = p.request("OPTIONS http://c.example/o HTTP/1.1\r\nHost: c.example\r\n\r\n")
is_((r.status, origin_head(last())), (200, "OPTIONS /o HTTP/1.1"), "absolute-form OPTIONS")

# --- HTTP/1.0 clients ------------------------------------------------------------------------------
with p.connect() as c:
    r = c.request("GET", "/ten", host="a.example", version="HTTP/1.0")
    is_((r.status, r.version, origin_head(last())), (200, "HTTP/1.1", "GET /ten HTTP/1.1"),
        "HTTP/1.0 client: HTTP/1.1 to the origin")
    is_(headers_of(last()), request_fields(host="a.example"), "HTTP/1.0 client: same fields")
    ok(c.closed(2.0), "HTTP/1.0 client without keep-alive: closed after the response")
r = p.request("GET /nohost10 HTTP/1.0\r\n\r\n")
is_((r.status, origin_head(last())), (200, "GET /nohost10 HTTP/1.1"), "HTTP/1.0 without Host: proxied")
is_(headers_of(last()), request_fields(host=o.address, fwd_host=""),
    "HTTP/1.0 without Host: Host is the server's address, no X-Forwarded-Host")

# --- hop-by-hop request fields ------------------------------------------------------------------
r = p.get("/hop", method="POST", body=b"hello", headers=[
    "Connection: keep-alive, X-Hop, Host, Content-Length, Authorization, X-Other",
    "X-Hop: 1", "X-Other: 2", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
    "TE: trailers, deflate", "Trailer: X-T", "Upgrade: foo/1", "Authorization: Basic dTpw",
    "X-End: end"])
is_(r.status, 200, "POST with hop-by-hop fields: 200")
is_(headers_of(last()), request_fields(host="a.example", extra=[
    ("Authorization", "Basic dTpw"), ("X-End", "end"), ("TE", "trailers"),
    ("Connection", "TE"), ("Content-Length", "5")]),
    "removed: Connection, what it lists (not Host/Content-Length/Authorization), Keep-Alive, "
    "Proxy-Connection, Trailer, Upgrade; TE reduced to trailers, with its Connection: TE")
is_(last().body, b"hello", "the body arrives")

r = p.get("/te", headers=["TE: deflate, gzip;q=0.5"])
is_((r.status, "te" in dict(headers_of(last()))), (200, False), "TE without trailers: removed")
r = p.get("/te2", headers=["Connection: TE", "TE: trailers"])
is_(headers_of(last()), request_fields(host="a.example", extra=[("TE", "trailers"), ("Connection", "TE")]),
    "TE: trailers is forwarded with Connection: TE (RFC 9110 10.1.4)")

r = p.get("/chunkedup", method="POST", headers=["Transfer-Encoding: chunked", "Connection: Transfer-Encoding"],
          body=chunked(b"abc", b"defg"))
is_(headers_of(last()), request_fields(host="a.example", extra=[("Content-Length", "7")]),
    "chunked request, buffered: sent with its Content-Length (Connection cannot remove the framing)")
is_((last().chunked, last().body), (False, b"abcdefg"), "chunked request body read whole, de-chunked")
r = p.get("/streamup", method="POST", headers=["Transfer-Encoding: chunked", "Connection: Transfer-Encoding"],
          body=chunked(b"abc", b"defg"))
is_(headers_of(last()), request_fields(host="a.example", extra=[("Transfer-Encoding", "chunked")]),
    "chunked request, streamed: Transfer-Encoding: chunked to the origin (Connection cannot remove it)")
is_((last().chunked, last().body), (True, b"abcdefg"), "chunked request body re-framed, decoded by the origin")

# --- X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host ------------------------------
p.get("/xff", headers=["X-Forwarded-For: 1.2.3.4"])
is_(last().header_all("X-Forwarded-For"), ["1.2.3.4, 127.0.0.1"], "X-Forwarded-For: the client's address appended")
p.get("/xff", headers=["X-Forwarded-For: 10.0.0.1", "X-Other: x", "x-forwarded-for: 10.0.0.2, 10.0.0.3"])
is_(last().header_all("X-Forwarded-For"), ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"],
    "two X-Forwarded-For fields joined into one, in order, then the client's address")
p.get("/xff", headers=["X-Real-IP: 6.6.6.6", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example"])
is_(headers_of(last()), request_fields(host="a.example"),
    "client-sent X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host replaced by portico's")

# --- Host -------------------------------------------------------------------------------------
p.get("/nohost/x", host="a.example")
is_(headers_of(last()), request_fields(host=o.address, fwd_host="a.example"),
    "preserve_host = false: Host is the configured server address, X-Forwarded-Host the client's Host")
p.get("/", host="Mixed.Example:81")
is_(dict(headers_of(last())).get("host"), "Mixed.Example:81", "preserve_host: Host exactly as the client sent it")

if socket.getaddrinfo("localhost", o2.port, type=socket.SOCK_STREAM)[0][4][0] == "127.0.0.1":
    r = p.get("/byname/1")
    is_((r.status, o2.requests), (200, 1), "server address by host name (localhost:PORT): resolved, reached")
    is_(dict(headers_of(o2.received[-1])).get("host"), "localhost:%d" % o2.port,
        "preserve_host = false with a host name: Host is the name as written")
else:
    skip("localhost does not resolve to 127.0.0.1 first here", 2)

# --- set_request_headers, set_response_headers, hide_response_headers ----------------------------
r = p.get("/set/1", headers=["X-A: client", "X-Remove: gone", "X-Keep: k", "x-a: again"])
is_(headers_of(last()), request_fields(host="a.example", extra=[("X-A", "1"), ("X-Keep", "k"), ("X-New", "added")]),
    "set_request_headers: replaces every same-named field, an empty value removes, new ones added")
is_((r.header("X-B"), r.headers.count("X-B")), ("2", 1), "set_response_headers replaces the origin's X-B")
is_((r.header("X-Added"), "X-Drop" in r.headers), ("r", False), "set_response_headers adds; an empty value removes")
is_(("X-Secret" in r.headers, "X-Kept" in r.headers), (False, False), "hide_response_headers (any case)")
is_(r.headers.get_all("Server"), [PORTICO_SERVER], "/set: still portico's Server only")

r = p.get("/override/1", host="a.example", headers=["X-Forwarded-For: 9.9.9.9", "X-Real-IP: 6.6.6.6"])
is_((r.status, headers_of(last())),
    (200, [("host", "backend.internal"), ("x-forwarded-host", "a.example"),
           ("x-forwarded-proto", "https"), ("x-real-ip", "192.0.2.1"),
           ("x-request-id", GENERATED_ID)]),
    "set_request_headers replaces the generated Host, X-Real-IP, X-Forwarded-Proto; empty removes X-Forwarded-For")

# --- access log: upstream address and times ----------------------------------------------------
r = p.get("/logged?a=1", headers=["User-Agent: ua/1"])
line = access_line(p, r"GET /logged\?a=1 HTTP/1\.1")
like(line, r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /logged\?a=1 HTTP/1\.1" 200 %d "-" "ua/1" %s'
     % (len(r.body), MAIN_LOG_RE), "access log main: status, body bytes, then the upstream fields")
m = re.search(MAIN_LOG_RE, line)
is_(m.group(2) if m else None, o.address, "access log: the upstream address")
ok(m is not None and m.group(3) != "-" and float(m.group(3)) <= float(m.group(1)) < 5,
   "access log: upstream time present, not more than the request time")

# --- an IPv6 client ---------------------------------------------------------------------------------
if ipv6_available():
    p6 = Portico(proxy_config(upstream("app", [o.address]), proxy_route("app")).replace(
        'address = "127.0.0.1:{port}"', 'address = "[::1]:{port}"'))
    with p6.connect(host="::1") as c:
        r = c.request("GET", "/v6", host="[::1]:%d" % p6.port(), headers=["X-Forwarded-For: 2001:db8::1"])
    is_((r.status, headers_of(last())),
        (200, request_fields(host="[::1]:%d" % p6.port(), ip="::1", xff="2001:db8::1, ::1")),
        "IPv6 client: X-Forwarded-For and X-Real-IP carry ::1, Host keeps its brackets")
    p6.stop()
else:
    skip("no IPv6 loopback", 1)

is_(o.errors + o2.errors, [], "the origins saw only well-formed requests")
done_testing()
