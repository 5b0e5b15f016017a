#!/usr/bin/env python3
"""A stand-in for the portico binary, used only by t/http/harness.t to check the harness:
`fake_portico.py -c FILE` reads workers, pid_file, error_log path and the listeners'
addresses from FILE with regular expressions, writes the pid file, forks the workers
(each answers every request with `200 fake`), and handles QUIT/TERM/INT (exit 0, pid file
removed) and HUP (logged). `-t` prints the success line. A config containing
`fake_fail = true;` makes it exit 1 at start-up.
"""
import os
import re
import select
import signal
import socket
import sys
import time

args = sys.argv[1:]
conf = args[args.index("-c") + 1] if "-c" in args else "portico.conf"
text = open(conf).read()
if "-t" in args:
    sys.stderr.write("configuration file %s test is successful\n" % conf)
    sys.exit(0)

m = re.search(r'error_log\s*=\s*\{\s*path\s*=\s*"([^"]+)"', text)
log = open(m.group(1), "a") if m else sys.stderr


def logline(msg):
    log.write("%s [info] %d: %s\n" % (time.strftime("%Y/%m/%d %H:%M:%S"), os.getpid(), msg))
    log.flush()


if "fake_fail = true;" in text:
    logline("%s:1: fake failure" % conf)
    sys.exit(1)

if "fake_asan = true;" in text:
    sys.stderr.write("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n")
    sys.stderr.flush()
workers = int((re.search(r"workers\s*=\s*(\d+)", text) or [0, "1"])[1])
pid_file = re.search(r'pid_file\s*=\s*"([^"]+)"', text).group(1)
lsocks = []
for addr in re.findall(r'address\s*=\s*"([^"]+)"', text):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if host.startswith("[") else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host.strip("[]"), int(port)))
    s.listen(64)
    s.setblocking(False)
    lsocks.append(s)
with open(pid_file, "w") as f:
    f.write("%d\n" % os.getpid())
logline("master started")


def worker():
    stop = []
    signal.signal(signal.SIGQUIT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    logline("worker started")
    while not stop:
        try:
            r, _, _ = select.select(lsocks, [], [], 0.1)
        except InterruptedError:
            continue
        for ls in r:
            try:
                c, _ = ls.accept()
            except BlockingIOError:
                continue
            c.setblocking(True)
            c.settimeout(2)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    d = c.recv(4096)
                    if not d:
                        break
                    data += d
                if data:
                    body = b"fake\n"
                    c.sendall(b"HTTP/1.1 200 OK\r\nServer: fake\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            c.close()
    os._exit(0)


children = []
for i in range(workers):
    pid = os.fork()
    if pid == 0:
        worker()
    children.append(pid)

quit_sig = []
for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda s, f: quit_sig.append(s))
signal.signal(signal.SIGHUP, lambda s, f: logline("reload requested"))
while not quit_sig:
    time.sleep(0.05)
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            logline("worker %d exited" % pid)
            children.remove(pid)
    except ChildProcessError:
        pass
for c in children:
    os.kill(c, quit_sig[0])
for c in children:
    os.waitpid(c, 0)
os.unlink(pid_file)
logline("exiting")
sys.exit(0)
