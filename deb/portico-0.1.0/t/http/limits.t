#!/usr/bin/env python3
# Limits and timeouts (issue 2; http-strictness.md case 28): 414, 431 (size and count),
# 413 (Content-Length before the body is read, and chunked total), 408 for a slow header,
# a header drip and a slow body, and the silent close of an idle keep-alive connection.
# Config: max_header_size 4096, max_target_size 1024, max_headers 50, max_body_size 1000,
# client_header_timeout 1 s, client_body_timeout 1 s, keepalive_timeout 2 s.
import os, re, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

p = Portico(standard_config())
H = "Host: a.example\r\n"


def refused(r, c, code, what):
    """Exact refusal: status, reason, body, Content-Type, Connection: close, closed."""
    is_(r.status, code, "%s: %d" % (what, code))
    is_((r.reason, r.body, r.header("Content-Type"), (r.header("Connection") or "").lower()),
        (REASONS[code], error_body(code), "text/plain", "close"),
        "%s: reason, error body, text/plain, Connection: close" % what)
    ok(c.closed(2.0), "%s: connection closed" % what)


def exchange(raw, timeout=5):
    c = p.connect(timeout=timeout)
    c.send(raw.encode("latin-1") if isinstance(raw, str) else raw)
    return c.read_response(raw.split(" ", 1)[0] if isinstance(raw, str) else "GET"), c


# --- request target ----------------------------------------------------------------------
r, c = exchange("GET /" + "t" * 900 + " HTTP/1.1\r\n" + H + "\r\n")
is_((r.status, r.body), (200, b"A\n"), "901-byte target (under 1024): served")
r, c = exchange("GET /" + "t" * 1100 + " HTTP/1.1\r\n" + H + "\r\n")
refused(r, c, 414, "1101-byte target")
r, c = exchange("GET /" + "t" * 3000 + " HTTP/1.1\r\n" + H + "\r\n")
refused(r, c, 414, "3001-byte target (under max_header_size)")

# --- header section size -----------------------------------------------------------------
r, c = exchange("GET / HTTP/1.1\r\n" + H + "X-Big: " + "b" * 3000 + "\r\n\r\n")
is_((r.status, r.body), (200, b"A\n"), "3 KB header section: served")
r, c = exchange("GET / HTTP/1.1\r\n" + H + "X-Big: " + "b" * 5000 + "\r\n\r\n")
refused(r, c, 431, "one 5 KB field")
r, c = exchange("GET / HTTP/1.1\r\n" + H + "".join("X-F%d: %s\r\n" % (i, "f" * 900) for i in range(6)) + "\r\n")
refused(r, c, 431, "six 900-byte fields (5.4 KB in all)")
# The limit applies while reading: an endless header section is refused without its end.
c = p.connect()
c.send("GET / HTTP/1.1\r\n" + H + "X-Big: " + "b" * 6000)
r = c.read_response()
refused(r, c, 431, "6 KB field without end of headers")

# --- header count ---------------------------------------------------------------------------
r, c = exchange("GET / HTTP/1.1\r\n" + H + "".join("X-N%d: v\r\n" % i for i in range(40)) + "\r\n")
is_((r.status, r.body), (200, b"A\n"), "41 fields (under 50): served")
r, c = exchange("GET / HTTP/1.1\r\n" + H + "".join("X-N%d: v\r\n" % i for i in range(60)) + "\r\n")
refused(r, c, 431, "61 fields (over max_headers 50)")

# --- body size --------------------------------------------------------------------------------
r, c = exchange("POST / HTTP/1.1\r\n" + H + "Content-Length: 1000\r\n\r\n" + "x" * 1000)
is_((r.status, r.body), (200, b"A\n"), "1000-byte body (= max_body_size): served")
r = c.request("GET", "/h", host="b.example")
is_((r.status, r.body), (200, b"H\n"), "...and the connection goes on")

# Content-Length over the limit: 413 before any body byte is sent (a server waiting for
# the body would time out with 408 instead).
t0 = time.monotonic()
r, c = exchange("POST / HTTP/1.1\r\n" + H + "Content-Length: 5000\r\n\r\n")
refused(r, c, 413, "Content-Length 5000 without the body (waiting for the body would give 408)")
r, c = exchange("POST / HTTP/1.1\r\n" + H + "Content-Length: 1001\r\n\r\n" + "x" * 1001)
refused(r, c, 413, "Content-Length 1001 with the body")

# Chunked: the total counts.
r, c = exchange("POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
                + chunked(b"x" * 500, b"y" * 400).decode())
is_((r.status, r.body), (200, b"A\n"), "chunked 500+400 bytes: served")
r = c.request("GET", "/h", host="b.example")
is_((r.status, r.body), (200, b"H\n"), "...and the connection goes on")
r, c = exchange("POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
                + chunked(b"x" * 600, b"y" * 600).decode())
refused(r, c, 413, "chunked 600+600 bytes")
c = p.connect()
c.send("POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n" + "800\r\n")
c.send("z" * 2048 + "\r\n0\r\n\r\n")
r = c.read_response()
refused(r, c, 413, "one chunk of 2048 bytes")

# --- timeouts: the three run side by side to keep the script short ------------------------
results = {}


def slow_header():
    c = p.connect()
    c.send("GET / HTTP/1.1\r\nHost: a.exa")
    t0 = time.monotonic()
    try:
        r = c.read_response(timeout=6)
    except HTTPError as e:
        r = e
    results["header"] = (r, time.monotonic() - t0, c)


def drip():
    # One byte every 100 ms: each read is "progress", but the header section as a whole
    # is not complete within client_header_timeout_ms.
    c = p.connect()
    t0 = time.monotonic()
    c.send("GET / HTTP/1.1\r\n" + H + "X-Drip: ")
    while time.monotonic() - t0 < 5 and not c.readable(0.1):
        if not c.send(b"d"):
            break
    try:
        r = c.read_response(timeout=2)
    except HTTPError as e:
        r = e
    results["drip"] = (r, time.monotonic() - t0, c)


def slow_body():
    c = p.connect()
    c.send("POST / HTTP/1.1\r\n" + H + "Content-Length: 10\r\n\r\nhello")
    t0 = time.monotonic()
    try:
        r = c.read_response(timeout=6)
    except HTTPError as e:
        r = e
    results["body"] = (r, time.monotonic() - t0, c)


def idle_keepalive():
    c = p.connect()
    r = c.request("GET", "/", host="a.example")
    t0 = time.monotonic()
    try:
        data = c.read_until_close(timeout=6)
    except HTTPError as e:
        data = e
    results["idle"] = (r, data, time.monotonic() - t0)


threads = [threading.Thread(target=f) for f in (slow_header, drip, slow_body, idle_keepalive)]
for t in threads:
    t.start()
for t in threads:
    t.join(15)

for key, what in (("header", "partial head, then silence"), ("drip", "header drip, a byte per 100 ms"),
                  ("body", "CL 10 with 5 bytes, then silence")):
    r, elapsed, c = results[key]
    if isinstance(r, Exception):
        ok(False, "%s: 408" % what)
        diag("  %s" % r)
        skip("no response", 3)
        continue
    refused(r, c, 408, what)
    cmp_ok(elapsed, ">=", 0.9, "%s: not before the 1 s timeout (%.2fs)" % (what, elapsed))

r, data, elapsed = results["idle"]
is_((r.status, r.body), (200, b"A\n"), "keep-alive request answered")
is_(data, b"", "idle keep-alive connection closed without a byte")
cmp_ok(elapsed, ">=", 1.8, "closed after keepalive_timeout_ms 2000, not before (%.2fs)" % elapsed)

# Refusals are logged with their reason.
for code in (408, 413, 414, 431):
    ok(p.wait_log(refused_re(code), 3), "error log: refused request ... %d %s (why)" % (code, REASONS[code]))

# A timed-out connection that never sent a byte is closed too (no 408 needed for nothing;
# a response is allowed but must be a 408).
c = p.connect()
t0 = time.monotonic()
try:
    data = c.read_until_close(timeout=6)
    ok(data == b"" or data.startswith(b"HTTP/1.1 408 "), "silent client: closed (nothing or 408)")
except HTTPError as e:
    ok(False, "silent client: closed within 6 s")
    diag(str(e))
ok(time.monotonic() - t0 >= 0.9, "silent client: not before the header timeout")

is_(len(p.worker_pids()), 2, "no worker died")
done_testing()
