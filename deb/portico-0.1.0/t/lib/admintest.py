"""Helpers for the admin listener tests (t/http/admin_*.t): a strict parser of the
Prometheus text exposition format (0.0.4), requests to the admin listener, waiting for a
metric to reach a value.

    from admintest import *
    p = Portico(proxy_config(..., extra=ADMIN))       # admin on {port_admin}
    wait_admin(p)
    m = scrape(p)                                      # Metrics, strictly parsed
    m.value("portico_http_requests_total", listener="main", code="2xx")
"""

import json
import math
import re

from proxytest import *
from proxytest import __all__ as _px_all

__all__ = list(_px_all) + ["ADMIN", "PromError", "Metrics", "parse_prometheus", "admin_get",
                           "admin_request", "scrape", "status", "wait_admin", "wait_metric",
                           "api_post"]

ADMIN = 'admin = { address = "127.0.0.1:{port_admin}"; };'

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class PromError(Exception):
    pass


def _parse_value(text, lineno):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", text):
        raise PromError("line %d: bad value %r" % (lineno, text))
    return float(text)


def _parse_labels(text, lineno):
    """`a="x",b="y"` -> tuple of pairs; escapes \\\\ \\" \\n only."""
    out, i = [], 0
    while i < len(text):
        m = re.match(_LABEL + "=\"", text[i:])
        if not m:
            raise PromError("line %d: bad label at %r" % (lineno, text[i:]))
        name = text[i:i + m.end() - 2]
        i += m.end()
        val = []
        while True:
            if i >= len(text):
                raise PromError("line %d: unterminated label value" % lineno)
            c = text[i]
            if c == "\\":
                if i + 1 >= len(text) or text[i + 1] not in '\\"n':
                    raise PromError("line %d: bad escape in a label value" % lineno)
                val.append({"\\": "\\", '"': '"', "n": "\n"}[text[i + 1]])
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise PromError("line %d: newline in a label value" % lineno)
            else:
                val.append(c)
                i += 1
        if name in [n for n, _ in out]:
            raise PromError("line %d: label %s twice" % (lineno, name))
        out.append((name, "".join(val)))
        if i < len(text):
            if text[i] != ",":
                raise PromError("line %d: expected ',' in labels" % lineno)
            i += 1
    return tuple(out)


class Metrics:
    def __init__(self):
        self.types = {}         # family -> type
        self.help = {}
        self.samples = {}       # (name, labels tuple sorted) -> value
        self.order = []         # (name, labels) in file order

    def get(self, metric, **labels):
        """Samples of metric whose labels include the given ones: [(labels dict, value)]."""
        out = []
        for (n, lab), v in self.samples.items():
            d = dict(lab)
            if n == metric and all(d.get(k) == str(w) for k, w in labels.items()):
                out.append((d, v))
        return out

    def value(self, metric, **labels):
        """The sum of the matching samples (None when there is none)."""
        got = self.get(metric, **labels)
        return sum(v for _, v in got) if got else None


def parse_prometheus(text):
    """Parses the text format strictly: every line is a HELP, a TYPE or a sample; a family
    has at most one HELP and one TYPE, both before its samples; the samples of a family
    are together; no series twice; histograms have ascending le with non-decreasing
    cumulative counts, a +Inf bucket equal to _count, and a _sum; counter families end in
    _total. Raises PromError."""
    m = Metrics()
    if not text.endswith("\n"):
        raise PromError("the text does not end with a newline")
    fam_of_sample = {}
    closed = set()          # families whose samples are over
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            raise PromError("line %d: empty line" % lineno)
        if line.startswith("#"):
            mm = re.match(r"^# (HELP|TYPE) (" + _NAME + r") (.*)$", line)
            if not mm:
                raise PromError("line %d: bad comment %r" % (lineno, line))
            kind, fam, rest = mm.groups()
            if fam in closed or fam == current:
                raise PromError("line %d: %s for %s after its samples" % (lineno, kind, fam))
            if kind == "HELP":
                if fam in m.help:
                    raise PromError("line %d: second HELP for %s" % (lineno, fam))
                m.help[fam] = rest
            else:
                if fam in m.types:
                    raise PromError("line %d: second TYPE for %s" % (lineno, fam))
                if rest not in _TYPES:
                    raise PromError("line %d: bad type %r" % (lineno, rest))
                m.types[fam] = rest
                if rest == "counter" and not fam.endswith("_total"):
                    raise PromError("line %d: counter %s does not end in _total" % (lineno, fam))
            continue
        mm = re.match(r"^(" + _NAME + r")(?:\{(.*)\})? (\S+)$", line)
        if not mm:
            raise PromError("line %d: bad sample %r" % (lineno, line))
        name, labtext, val = mm.groups()
        labels = _parse_labels(labtext or "", lineno)
        value = _parse_value(val, lineno)
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and m.types.get(name[:-len(suf)]) == "histogram":
                fam = name[:-len(suf)]
        if fam not in m.types:
            raise PromError("line %d: sample of %s without a TYPE before it" % (lineno, fam))
        if fam != current:
            if fam in closed:
                raise PromError("line %d: samples of %s are not together" % (lineno, fam))
            if current:
                closed.add(current)
            current = fam
        key = (name, tuple(sorted(labels)))
        if key in m.samples:
            raise PromError("line %d: series %s%s twice" % (lineno, name, labels))
        m.samples[key] = value
        m.order.append(key)
        fam_of_sample[key] = fam
        if m.types[fam] == "counter" and (value < 0 or math.isnan(value)):
            raise PromError("line %d: negative counter" % lineno)
    # histograms
    for fam, t in m.types.items():
        if t != "histogram":
            continue
        series = {}
        for (name, labels), v in m.samples.items():
            if name == fam + "_bucket":
                d = dict(labels)
                if "le" not in d:
                    raise PromError("%s bucket without le" % fam)
                le = d.pop("le")
                series.setdefault(tuple(sorted(d.items())), []).append((_parse_value(le, 0), v))
        for lab, buckets in series.items():
            buckets.sort()
            if buckets[-1][0] != math.inf:
                raise PromError("%s%s has no +Inf bucket" % (fam, lab))
            for (a, x), (b, y) in zip(buckets, buckets[1:]):
                if y < x:
                    raise PromError("%s%s: buckets not cumulative" % (fam, lab))
            cnt = m.samples.get((fam + "_count", lab))
            if cnt is None or (fam + "_sum", lab) not in m.samples:
                raise PromError("%s%s: no _count or _sum" % (fam, lab))
            if cnt != buckets[-1][1]:
                raise PromError("%s%s: +Inf bucket %s != count %s" % (fam, lab, buckets[-1][1], cnt))
    return m


def admin_request(p, method, target, headers=(), body=None, timeout=10):
    with Client(p.port("port_admin"), timeout=timeout) as c:
        h = list(headers) + [("Connection", "close")]
        if body is not None:
            h.append(("Content-Type", "application/json"))
        c.send(build_request(method, target, host="admin", headers=h, body=body))
        return c.read_response(method=method, timeout=timeout)


def admin_get(p, target, **kw):
    return admin_request(p, "GET", target, **kw)


def api_post(p, path, obj, token=None):
    headers = [("Authorization", "Bearer " + token)] if token else []
    body = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    if isinstance(body, str):
        body = body.encode()
    return admin_request(p, "POST", path, headers=headers, body=body)


def scrape(p):
    r = admin_get(p, "/metrics")
    if r.status != 200:
        raise PromError("/metrics: status %d %r" % (r.status, r.body[:200]))
    return parse_prometheus(r.body.decode("utf-8"))


def status(p):
    r = admin_get(p, "/status")
    if r.status != 200:
        raise PromError("/status: status %d" % r.status)
    return json.loads(r.body)


def wait_admin(p, timeout=10):
    def up():
        try:
            with Client(p.port("port_admin"), timeout=1):
                return True
        except OSError:
            return False
    if not wait_for(up, timeout):
        raise PorticoError("the admin listener does not accept\n" + p.logs_text())


def wait_metric(p, metric, want, timeout=5.0, **labels):
    """Scrapes until the metric's value is want; returns the last value seen."""
    last = [None]

    def check():
        last[0] = scrape(p).value(metric, **labels)
        return last[0] == want
    wait_for(check, timeout, 0.05)
    return last[0]
