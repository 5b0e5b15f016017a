#!/usr/bin/env python3
# PROXY protocol on listeners (the accept pipeline's first stage): v1 and v2 headers give
# the client's address for logs and X-Forwarded-For/X-Real-IP; LOCAL and UNKNOWN keep the
# connection's own; a malformed, truncated or missing header, or one from an address
# outside proxy_protocol_trusted, closes the connection with the reason logged.
import os, re, socket, struct, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from proxytest import *

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def v2_tcp4(src, dst, sport, dport, tlvs=b""):
    return v2(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlvs)


def v2_tcp6(src, dst, sport, dport):
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!HH", sport, dport))


echo = Origin.echo()
LIMITS = ("limits = { client_header_timeout_ms = 1000; keepalive_timeout_ms = 5000; "
          "drain_timeout_ms = 3000; };")
conf = proxy_config([upstream("echo", [echo.address])], [proxy_route("echo", "/")], limits=LIMITS)
conf = conf.replace('listeners = ( { name = "main"; address = "127.0.0.1:{port}"; } );',
                    'listeners = ( { name = "main"; address = "127.0.0.1:{port}"; proxy_protocol = true; },\n'
                    '  { name = "strict"; address = "127.0.0.1:{port2}"; proxy_protocol = true;\n'
                    '    proxy_protocol_trusted = [ "10.0.0.0/8", "192.0.2.0/24" ]; },\n'
                    '  { name = "plain"; address = "127.0.0.1:{port3}"; } );')
p = Portico(conf)


def forwarded(raw, port="port"):
    """Sends raw bytes (a PROXY header and a request) and returns (response, what the
    origin saw as X-Forwarded-For and X-Real-IP)."""
    n0 = echo.requests
    with p.connect(port) as c:
        c.send(raw)
        r = c.read_response(timeout=5)
    req = echo.received[-1] if echo.wait_requests(n0 + 1, 3) > n0 else None
    return r.status, req and req.header("X-Forwarded-For"), req and req.header("X-Real-IP")


GET = build_request("GET", "/pp", "a.example")

is_(forwarded(b"PROXY TCP4 192.0.2.10 198.51.100.1 51000 8080\r\n" + GET),
    (200, "192.0.2.10", "192.0.2.10"), "v1 TCP4: the header's client goes to X-Forwarded-For and X-Real-IP")
is_(forwarded(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n" + GET),
    (200, "2001:db8::7", "2001:db8::7"), "v1 TCP6: an IPv6 client")
is_(forwarded(b"PROXY UNKNOWN\r\n" + GET), (200, "127.0.0.1", "127.0.0.1"),
    "v1 UNKNOWN: the connection's own address")
is_(forwarded(v2_tcp4("203.0.113.5", "198.51.100.1", 40000, 80) + GET),
    (200, "203.0.113.5", "203.0.113.5"), "v2 PROXY TCP4")
is_(forwarded(v2_tcp6("2001:db8:1::5", "2001:db8::1", 40000, 80) + GET),
    (200, "2001:db8:1::5", "2001:db8:1::5"), "v2 PROXY TCP6")
is_(forwarded(v2_tcp4("203.0.113.6", "198.51.100.1", 1, 2, tlvs=b"\x04\x00\x03abc") + GET),
    (200, "203.0.113.6", "203.0.113.6"), "v2 with a TLV (skipped)")
is_(forwarded(v2(0, 0x00, b"") + GET), (200, "127.0.0.1", "127.0.0.1"),
    "v2 LOCAL: the connection's own address (a health check of the balancer itself)")

# the header arriving a byte at a time, then several requests on the connection
n0 = echo.requests
with p.connect() as c:
    c.send_slowly(b"PROXY TCP4 192.0.2.11 198.51.100.1 51000 8080\r\n", 0.01, 1)
    rs = [c.request("GET", "/ka/%d" % i) for i in range(3)]
is_([r.status for r in rs], [200] * 3, "v1 header sent a byte at a time, then 3 keep-alive requests")
is_([q.header("X-Real-IP") for q in echo.received[-3:]], ["192.0.2.11"] * 3,
    "...every request of the connection has the header's client")
line = access_line(p, r"GET /ka/2 HTTP/1\.1")
ok(line and line.startswith("192.0.2.11 "), "the access log names the header's client")

# refusals: the connection is closed, nothing is answered, the reason is logged
def refused(raw, why_re, what, port="port", wait_close=3.0, half_close=False):
    mark = p.log_mark()
    n0 = echo.requests
    c = p.connect(port)
    c.send(raw)
    if half_close:
        c.sock.shutdown(socket.SHUT_WR)
    closed = c.closed(wait_close)
    data = c.read_available(0.1) if not closed else b""
    c.close()
    is_((closed, echo.requests), (True, n0), "%s: connection closed, nothing forwarded" % what)
    ok(p.wait_log(r"\[info\] \d+#worker \d+: refused connection from 127\.0\.0\.1 on 127\.0\.0\.1:\d+: "
                  + why_re, 3, mark), "%s: logged why" % what)

refused(GET, r"no PROXY protocol header$", "a request without a header")
refused(b"PROXY TCP4 192.0.2.1 198.51.100.1 051000 80\r\n" + GET, r"PROXY v1: invalid port$",
        "v1 with a leading zero in a port")
refused(b"PROXY TCP4 192.0.2.1 198.51.100.1 1 80\n" + GET, r"PROXY v1 line not ended by CRLF$",
        "v1 ended by a bare LF")
refused(b"PROXY " + b"x" * 200, r"PROXY v1 line longer than 107 bytes$", "a v1 line over 107 bytes")
refused(SIG + b"\x21\x11\x00\x0c" + b"\x01\x02\x03", r"closed before a complete PROXY protocol header$",
        "a truncated v2 header, then the client closes", wait_close=0.5, half_close=True)
refused(v2(2, 0x11, b"\x00" * 12) + GET, r"PROXY v2: unknown command$", "v2 with command 2")
refused(v2(1, 0x11, b"\x00" * 12 + b"\x04\x00\x09ab") + GET, r"PROXY v2: TLV longer than the header$",
        "v2 with a TLV running past its length")

# a truncated header and silence: closed after client_header_timeout_ms
mark = p.log_mark()
c = p.connect()
c.send(b"PROXY TCP4 192.0.2.1 ")
ok(c.closed(5), "a header that stops halfway: closed after client_header_timeout_ms")
c.close()
ok(p.wait_log(r"refused connection from 127\.0\.0\.1 on [0-9.:]+: no PROXY protocol header within "
              r"client_header_timeout_ms", 3, mark), "...logged")

# proxy_protocol_trusted: 127.0.0.1 is not in it
refused(b"PROXY TCP4 10.1.1.1 198.51.100.1 1 80\r\n" + GET,
        r"PROXY protocol header from an address not in proxy_protocol_trusted$",
        "a header from a peer outside proxy_protocol_trusted", port="port2")

# a listener without proxy_protocol takes a PROXY line as a (bad) request
with p.connect("port3") as c:
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.1 1 80\r\n" + GET)
    r = c.read_response()
is_(r.status, 400, "a listener without proxy_protocol: a PROXY line is a bad request (400)")

# configuration mistakes
bad = conf.replace('"10.0.0.0/8"', '"10.1.0.0/8"')
res = run_bin(["-t", "-c", p.write_config(bad, os.path.join(p.tmp, "bad.conf"))], timeout=30)
like(res.stdout + res.stderr, r"bad\.conf:\d+: key 'listeners\[1\]\.proxy_protocol_trusted\[0\]': "
     r"\"10\.1\.0\.0/8\": host bits set after the prefix", "-t: a trusted range with host bits set, file:line")
bad = conf.replace('"192.0.2.0/24"', '"example.com"')
res = run_bin(["-t", "-c", p.write_config(bad, os.path.join(p.tmp, "bad2.conf"))], timeout=30)
like(res.stdout + res.stderr, r"bad2\.conf:\d+: key 'listeners\[1\]\.proxy_protocol_trusted\[1\]': "
     r"\"example\.com\": not an IPv4 or IPv6 address", "-t: a name in proxy_protocol_trusted, file:line")

is_(echo.errors, [], "the origin saw only well-formed requests")
done_testing()
