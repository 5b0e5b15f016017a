#!/usr/bin/env bash
# What filtering costs, on the shared side-by-side benchmark (../shared/bench/run.sh): a
# copy of the harness gets two more portico targets, rendered from the same portico
# configuration as the "portico" target plus
#   portico_rules   the shipped rule set (etc/rules/portico-rules.conf, 50 rules) applied
#                   to every request (filters.global, all five groups)
#   portico_deny    a 100,000-range deny list applied to every request (filters.global);
#                   the benchmark's client (127.0.0.1) is not in it, so every request is
#                   looked up and let through
# so that one run compares them with plain portico (and nginx, HAProxy) under the same
# load. Options are run.sh's, e.g.
#
#   t/bench/filters.sh --rounds 5 --targets nginx,portico,portico_rules,portico_deny \
#                      --scenarios small
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
shared=${BENCH_SHARED:-$src/../shared/bench}
[[ -f $shared/run.sh ]] || { echo "no shared bench at $shared (set BENCH_SHARED)" >&2; exit 1; }

copy=$(mktemp -d /tmp/portico-bench-filters.XXXXXX)
trap 'rm -rf "$copy"' EXIT
cp -r "$shared/." "$copy/"
chmod -R u+w "$copy"
sed -i 's/^ALL_TARGETS=\(.*\)$/ALL_TARGETS=\1,portico_rules,portico_deny/' "$copy/run.sh"

# 100,000 ranges: /32s and /24s across the IPv4 space (none holding 127.0.0.1) and IPv6
# /64s, in the form an @include inside an access list's cidrs array takes
python3 - "$copy/deny100k.inc" <<'EOF'
import random, sys
random.seed(11)
out, seen = [], set()
while len(out) < 100000:
    if len(out) % 10 == 9:
        r = "2001:db8:%x:%x::/64" % (random.getrandbits(16), random.getrandbits(16))
    else:
        a = random.randrange(1, 224)
        if a in (10, 127):
            continue
        if len(out) % 10 < 7:
            r = "%d.%d.%d.%d" % (a, random.getrandbits(8), random.getrandbits(8), random.getrandbits(8))
        else:
            r = "%d.%d.%d.0/24" % (a, random.getrandbits(8), random.getrandbits(8))
    if r not in seen:
        seen.add(r)
        out.append('"%s"' % r)
open(sys.argv[1], "w").write(",\n".join(out) + "\n")
EOF

cat >>"$copy/lib/targets.sh" <<EOF

# ---- appended by portico's t/bench/filters.sh: portico with filters ----
PT_RULESET="$src/etc/rules/portico-rules.conf"
PT_DENY_INC="$copy/deny100k.inc"
EOF
cat >>"$copy/lib/targets.sh" <<'EOF'
check_portico_rules() { check_portico; }
check_portico_deny() { check_portico; }
supports_portico_rules() { [[ $1 == small || $1 == large || $1 == close || $1 == upstream-close ]] || { echo "filters are measured on plain HTTP"; return 1; }; }
supports_portico_deny() { supports_portico_rules "$1"; }

render_portico_rules() {
  local conf
  conf=$(render_portico_config "$1")
  cat >>"$conf" <<CONF
filters = {
  rules = (
@include "$PT_RULESET"
  );
  global = { rules = [ "sqli", "xss", "traversal", "cmdi", "scanner" ]; };
};
CONF
  T_CMD=("$PORTICO_BIN" -c "$conf")
  T_CONF=$conf
}

render_portico_deny() {
  local conf
  conf=$(render_portico_config "$1")
  cat >>"$conf" <<CONF
filters = {
  acls = ( { name = "deny100k"; cidrs = [
@include "$PT_DENY_INC"
  ]; } );
  global = { deny = [ "deny100k" ]; };
};
CONF
  T_CMD=("$PORTICO_BIN" -c "$conf")
  T_CONF=$conf
}
EOF
PORTICO_BIN=${PORTICO_BIN:-$src/build/server/portico} bash "$copy/run.sh" "$@"
