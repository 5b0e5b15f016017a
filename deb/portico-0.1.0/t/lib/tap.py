"""Tiny TAP producer for portico's integration tests (Python 3 standard library only).

    import tap
    tap.plan(3)                     # or tap.done_testing() at the end
    tap.ok(x == 1, "x is one")
    tap.is_(got, 200, "status")     # prints got/expected as diagnostics on failure
    tap.like(text, r"^HTTP/1\\.1 ", "status line")
    tap.skip("no IPv6", 2)

Robustness: an uncaught exception prints `not ok N - uncaught exception` and its traceback
and exits non-zero; a watchdog (SIGALRM, default 120 s, env PORTICO_TEST_TIMEOUT) ends a
hung script the same way. Cleanup functions registered with add_cleanup() (the portico
fixture and origin servers use it) run in every one of those cases, so no process survives.
"""

import atexit
import os
import re
import signal
import sys
import threading
import traceback

_lock = threading.RLock()
_count = 0
_failed = 0
_planned = None
_done = False
_cleanups = []
_cleaning = False


def _out(line):
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _diag_lines(text, stream=None):
    stream = stream or sys.stdout
    with _lock:
        for line in str(text).splitlines() or [""]:
            stream.write("# " + line + "\n")
        stream.flush()


def diag(*msg):
    """Print a diagnostic (to stdout, so prove -v shows it in order with the tests)."""
    _diag_lines(" ".join(str(m) for m in msg))


note = diag


def failed_count():
    return _failed


def test_count():
    return _count


def plan(n):
    global _planned
    with _lock:
        _planned = n
        _out("1..%d" % n)


def skip_all(reason):
    """Skip the whole script (prints `1..0 # SKIP reason` and exits 0)."""
    global _done, _planned
    _out("1..0 # SKIP %s" % reason)
    _done = True
    _planned = 0
    run_cleanups()
    sys.stdout.flush()
    os._exit(0)


def bail_out(reason):
    _out("Bail out!  %s" % reason)
    run_cleanups()
    os._exit(255)


def _name(name):
    name = str(name).replace("\n", " ").replace("#", "\\#")
    return (" - " + name) if name else ""


def ok(cond, name=""):
    global _count, _failed
    with _lock:
        _count += 1
        if cond:
            _out("ok %d%s" % (_count, _name(name)))
        else:
            _failed += 1
            _out("not ok %d%s" % (_count, _name(name)))
            caller = traceback.extract_stack()[:-1]
            # The innermost frame that is not in this module tells where the test is.
            for fr in reversed(caller):
                if os.path.basename(fr.filename) != "tap.py":
                    diag("  Failed test '%s'\n  at %s line %d." % (name, fr.filename, fr.lineno))
                    break
    return bool(cond)


def _show(v):
    if isinstance(v, (bytes, bytearray)) and len(v) > 600:
        return repr(bytes(v[:600])) + "... (%d bytes)" % len(v)
    if isinstance(v, str) and len(v) > 600:
        return repr(v[:600]) + "... (%d chars)" % len(v)
    return repr(v)


def is_(got, expected, name=""):
    r = ok(got == expected, name)
    if not r:
        diag("         got: %s\n    expected: %s" % (_show(got), _show(expected)))
    return r


def isnt(got, unexpected, name=""):
    r = ok(got != unexpected, name)
    if not r:
        diag("         got: %s\n    expected: anything else" % _show(got))
    return r


def in_(got, allowed, name=""):
    """got must be one of allowed (for outcomes the spec leaves open)."""
    r = ok(got in allowed, name)
    if not r:
        diag("         got: %s\n    expected one of: %s" % (_show(got), _show(list(allowed))))
    return r


def like(got, regex, name=""):
    """got (str or bytes) must match regex (re.search)."""
    try:
        r = got is not None and re.search(regex, got) is not None
    except TypeError:
        r = False
    r = ok(r, name)
    if not r:
        diag("                  %s\n    doesn't match '%s'" % (_show(got), regex if isinstance(regex, str) else _show(regex)))
    return r


def unlike(got, regex, name=""):
    try:
        r = got is not None and re.search(regex, got) is None
    except TypeError:
        r = False
    r = ok(r, name)
    if not r:
        diag("                  %s\n    matches '%s'" % (_show(got), regex if isinstance(regex, str) else _show(regex)))
    return r


def cmp_ok(got, op, expected, name=""):
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    try:
        r = got is not None and ops[op](got, expected)
    except TypeError:
        r = False
    r = ok(r, name)
    if not r:
        diag("    %s\n        %s\n    %s" % (_show(got), op, _show(expected)))
    return r


def skip(reason, count=1):
    global _count
    with _lock:
        for _ in range(count):
            _count += 1
            _out("ok %d # skip %s" % (_count, reason))


def todo_ok(cond, name, why):
    """A known-failing check: reported as TODO, never fails the script."""
    global _count
    with _lock:
        _count += 1
        _out("%sok %d%s # TODO %s" % ("" if cond else "not ", _count, _name(name), why))
    return bool(cond)


def done_testing(n=None):
    global _done, _planned
    # fixtures' cleanups may still assert (e.g. "no sanitizer report"): run them first
    run_cleanups()
    with _lock:
        if _planned is None:
            _planned = _count if n is None else n
            _out("1..%d" % _planned)
        _done = True


# ---------------------------------------------------------------------------------------
# Cleanup, exceptions, watchdog

def add_cleanup(fn):
    """Run fn() (once) when the script ends, however it ends."""
    _cleanups.append(fn)
    return fn


def remove_cleanup(fn):
    try:
        _cleanups.remove(fn)
    except ValueError:
        pass


def run_cleanups():
    global _cleaning
    if _cleaning:
        return
    _cleaning = True
    try:
        while _cleanups:
            fn = _cleanups.pop()
            try:
                fn()
            except Exception:  # a cleanup failure must not hide the others
                _diag_lines("cleanup failed:\n" + traceback.format_exc())
    finally:
        _cleaning = False


def _excepthook(etype, value, tb):
    global _count, _failed
    if etype is KeyboardInterrupt:
        diag("interrupted")
    with _lock:
        _count += 1
        _failed += 1
        _out("not ok %d - uncaught exception: %s" % (_count, etype.__name__))
        _diag_lines("".join(traceback.format_exception(etype, value, tb)))
    run_cleanups()
    _finish(255)


def _thread_excepthook(args):
    global _count, _failed
    if args.exc_type is SystemExit:
        return
    with _lock:
        _count += 1
        _failed += 1
        _out("not ok %d - uncaught exception in thread %s: %s"
             % (_count, args.thread.name if args.thread else "?", args.exc_type.__name__))
        _diag_lines("".join(traceback.format_exception(args.exc_type, args.exc_value,
                                                       args.exc_traceback)))


def _finish(code=None):
    with _lock:
        if code is None:
            code = 0
            if _planned is None:
                if _count or not _done:
                    _diag_lines("no plan: done_testing() was not called (%d tests run)" % _count)
                    code = 255
            elif _planned != _count:
                _diag_lines("planned %d tests but ran %d" % (_planned, _count))
                code = 255
            if _failed and code == 0:
                code = min(_failed, 254)
                _diag_lines("failed %d of %d tests" % (_failed, _count))
        sys.stdout.flush()
        sys.stderr.flush()
    if code:
        os._exit(code)


def _at_exit():
    run_cleanups()
    _finish()


_timeout = None


def watchdog(seconds):
    """(Re)arm the script's global time limit."""
    global _timeout
    _timeout = int(seconds)
    signal.alarm(_timeout)


def _on_alarm(signum, frame):
    global _count, _failed
    with _lock:
        _count += 1
        _failed += 1
        _out("not ok %d - watchdog: script still running after %s s" % (_count, _timeout))
        _diag_lines("".join(traceback.format_stack(frame)))
    run_cleanups()
    _finish(254)


def _on_term(signum, frame):
    _out("Bail out!  killed by signal %d" % signum)
    run_cleanups()
    os._exit(128 + signum)


sys.excepthook = _excepthook
threading.excepthook = _thread_excepthook
atexit.register(_at_exit)
signal.signal(signal.SIGALRM, _on_alarm)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_term)
# The server's tests write to sockets the server may have closed: a broken pipe is an
# EPIPE error we look at, not a reason to die.
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
watchdog(int(os.environ.get("PORTICO_TEST_TIMEOUT", "120")))
