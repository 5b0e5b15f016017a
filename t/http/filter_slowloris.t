#!/usr/bin/env python3
# Slow clients: 500 slowloris connections (a head trickled a byte at a time) do not stop a
# normal client from being served: with room to spare they are simply held apart, and
# when they fill max_connections, client_header_min_rate cuts them (408, logged) after
# client_header_grace_ms so the normal client gets in; without the minimum rate it
# would wait for client_header_timeout_ms (the control case). A connection that sends
# nothing at all is closed after the grace.
import os, socket, sys, threading, time
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from portico_test import *

N = 500
HEAD = b"GET /slow HTTP/1.1\r\nHost: a.example\r\nUser-Agent: slowloris\r\n"


class Loris:
    """N connections, each sent the start of a head, then a byte every `every` seconds."""

    def __init__(self, port, n=N, every=0.3):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(HEAD)
            self.socks.append(s)
        self.stop = False
        self.every = every
        self.t = threading.Thread(target=self.trickle, daemon=True)
        self.t.start()
        add_cleanup(self.close)

    def trickle(self):
        while not self.stop:
            time.sleep(self.every)
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    def close(self):
        self.stop = True
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


CONF = """workers = %d;
worker_rlimit_nofile = 4096;
error_log = { path = "{tmp}/error.log"; level = "info"; };
access_log = { enabled = false; };
limits = { max_connections = %d; client_header_timeout_ms = 60000; %s };
listeners = ( { name = "main"; address = "127.0.0.1:{port}"; backlog = 1024; } );
routes = ( { path_prefix = "/"; return = { body = "served\\n"; }; } );
"""

# --- room to spare: the defaults ----------------------------------------------------------------
p = Portico(CONF % (2, 10000, ""))
loris = Loris(p.port())
r = p.get("/normal")
is_((r.status, r.body), (200, b"served\n"), "%d slowloris connections open: a normal client is served" % N)
loris.close()
p.stop()

# --- the slowloris fill max_connections: the minimum rate frees the room ----------------------------
p = Portico(CONF % (1, N, "client_header_min_rate = 100; client_header_grace_ms = 1000;"))
mark = p.log_mark()
loris = Loris(p.port())
ok(p.wait_log(r"max_connections \(%d\) reached; not accepting" % N, 10, mark),
   "%d slowloris connections fill max_connections (one worker)" % N)
c = p.connect()
c.send(build_request("GET", "/normal", "a.example"))
r = c.read_response(timeout=30)
is_((r.status, r.body), (200, b"served\n"),
    "a normal client waiting in the backlog is served once the minimum rate cuts the slowloris "
    "(client_header_timeout_ms is 60 s)")
ok(p.wait_log_count(r"refused request from 127\.0\.0\.1: 408 Request Timeout \(client sent the request "
                    r"head below client_header_min_rate\)", N, 10, mark) >= N,
   "every slowloris connection was refused with 408 (the head below client_header_min_rate), logged")
got = loris.socks[0].recv(4096)
ok(got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), "...and told so")
loris.close()
c.close()

# a connection that sends nothing: closed after the grace, well before the header timeout
s = socket.create_connection(("127.0.0.1", p.port()), timeout=10)
ok(s.recv(16) == b"", "a connection sending nothing is closed (after client_header_grace_ms)")
s.close()
p.stop()

# --- the control: without the minimum rate the normal client waits --------------------------------
p = Portico(CONF % (1, N, "client_header_min_rate = 0;"))
mark = p.log_mark()
loris = Loris(p.port())
ok(p.wait_log(r"max_connections \(%d\) reached; not accepting" % N, 10, mark), "control: full again")
c = p.connect()
c.send(build_request("GET", "/normal", "a.example"))
try:
    r = c.read_response(timeout=3)
    ok(False, "control: without client_header_min_rate the normal client is not served while "
       "the slowloris hold every connection (got %d)" % r.status)
except ResponseTimeout:
    ok(True, "control: without client_header_min_rate the normal client is not served while "
       "the slowloris hold every connection")
loris.close()
c.close()
done_testing()
