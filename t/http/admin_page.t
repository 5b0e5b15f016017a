#!/usr/bin/env python3
# The status page (GET / on the admin listener) in a real headless browser (Debian's
# chromium): it loads with no console message at all (so no error), refreshes from
# /status (the server table shows the test's servers, the state is "live"), and a
# screenshot is not blank. Self-contained: no URL outside the page itself. Skipped where
# chromium is absent (autogen.sh --deps installs it, so CI runs it).
import os, re, shutil, struct, subprocess, sys, zlib
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from admintest import *

watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "0")) or 150)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    skip_all("chromium is not installed")

a, b = Origin.echo(), Origin.echo()
p = Portico(proxy_config(upstream("app", [a.address, b.address]),
                         [proxy_route("app", "/c/", cache="{ default_ttl_s = 60; }"),
                          proxy_route("app")],
                         workers=2, extra=ADMIN + "\ncache = { size_mb = 8; };"))
wait_admin(p)
for i in range(10):
    p.get("/x")
# the cache: one miss, then three hits (a hit ratio of 75 %)
for i in range(4):
    p.get("/c/page")

# -- the page itself
r = admin_get(p, "/")
is_((r.status, r.header("Content-Type")), (200, "text/html; charset=utf-8"), "GET /: the page")
page = r.body.decode()
like(r.header("Content-Security-Policy") or "", r"default-src 'self'", "with a CSP of its own origin")
unlike(page, r"(?i)(src|href)\s*=\s*\"(?!data:)[^\"]*//", "no resource from another origin (no CDN)")
unlike(page, r"(?i)<(script|link)[^>]+(src|href)=\"(?!data:)", "scripts and styles are inline")
url = "http://127.0.0.1:%d/" % p.port("port_admin")


def browse(*args):
    prof = os.path.join(p.tmp, "chromium-profile")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--user-data-dir=" + prof, "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=4000", "--window-size=1280,900"] + list(args) + [url]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90,
                          stdin=subprocess.DEVNULL, text=True, errors="replace",
                          env=dict(os.environ, HOME=p.tmp))


cp = browse("--dump-dom")
is_(cp.returncode, 0, "chromium ran")
dom = cp.stdout
console = [l for l in cp.stderr.splitlines() if ":CONSOLE" in l]
is_(console, [], "no console message (no error, no failed load)")
for addr in (a.address, b.address):
    like(dom, r"<td>app</td><td>%s</td><td><span class=\"st st-up\">up</span></td>"
         % re.escape(addr), "the server table shows %s up" % addr)
like(dom, r'id="conn" class="">live<', "the page refreshed from /status (live)")
like(dom, r'id="generation">1<', "the generation")
like(dom, r'<section id="cache" class="">', "the cache section is shown (a cache is configured)")
like(dom, r'id="hit">75\.0 %<', "the cache hit ratio: 3 hits of 4 (75.0 %)")
st = status(p)
for s in st["upstreams"][0]["servers"]:
    like(dom, r'<td>%s</td>.*?<td class="n">1</td><td class="n">0</td><td class="n">%d</td>'
         r'<td class="n">0</td>' % (re.escape(s["address"]), s["requests"]),
         "%s: weight, active, requests (%d), failures as /status has them"
         % (s["address"], s["requests"]))
polls = lambda: len([l for l in p.access_log_lines() if '"GET /status ' in l])
ok(wait_for(lambda: polls() >= 2, 5), "the page polled /status more than once (%d)" % polls())

# -- a drained server shows as such
api_post(p, "/api/upstreams/app/servers/" + b.address, {"state": "down"})
cp = browse("--dump-dom")
like(cp.stdout, r"<td>%s</td><td><span class=\"st st-down\">down</span></td>" % re.escape(b.address),
     "a server taken down shows down")


# -- a screenshot that is not blank
def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), "unexpected PNG type"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride, rows, prev = w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, ul = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + left) & 255
            elif f == 2:
                line[i] = (line[i] + up) & 255
            elif f == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 255
            elif f == 4:
                pa, pb, pc = abs(up - ul), abs(left - ul), abs(left + up - 2 * ul)
                pr = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


shot = os.path.join(p.tmp, "status.png")
cp = browse("--screenshot=" + shot)
ok(os.path.exists(shot), "a screenshot was written")
is_([l for l in cp.stderr.splitlines() if ":CONSOLE" in l], [], "no console message there either")
if os.path.exists(shot):
    w, h, bpp, rows = png_pixels(shot)
    counts = {}
    for row in rows[::4]:
        for x in range(0, w * bpp, bpp * 4):
            px = row[x:x + 3]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    top = max(counts.values())
    diag("screenshot %dx%d: %d colours, %.1f %% not the background" %
         (w, h, len(counts), 100.0 * (total - top) / total))
    cmp_ok(len(counts), ">=", 8, "the screenshot has many colours")
    cmp_ok((total - top) / total, ">=", 0.02, "and at least 2 % of it is not the background")

done_testing()
