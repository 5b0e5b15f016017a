#!/usr/bin/env bash
# The shared side-by-side benchmark (../shared/bench/run.sh) with one more target,
# "portico4": portico balancing over 4 upstream servers instead of 1, so the cost of
# picking among several servers (per-server pools, shared state) shows next to the
# single-server figure in the same run. A temporary copy of the harness is run, in which:
#   - the backend nginx also listens on 127.0.0.2, .3 and .4 (same port, same content), so
#     the 4 servers are distinct addresses (and have distinct shared slots);
#   - render_portico4 writes portico's configuration with those 4 servers (balance from
#     BENCH_BALANCE, default round_robin); every other target is rendered as before.
# Options are run.sh's, e.g.
#
#   t/bench/balance.sh --rounds 5 --targets nginx,portico,portico4 --scenarios small
#   BENCH_BALANCE=least_conn t/bench/balance.sh --rounds 5 --targets portico,portico4 --scenarios small
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shared=${BENCH_SHARED:-$here/../../../shared/bench}
[[ -f $shared/run.sh ]] || { echo "no shared bench at $shared (set BENCH_SHARED)" >&2; exit 1; }

copy=$(mktemp -d /tmp/portico-bench.XXXXXX)
trap 'rm -rf "$copy"' EXIT
cp -r "$shared/." "$copy/"
chmod -R u+w "$copy"
sed -i 's/^ALL_TARGETS=\(.*\)$/ALL_TARGETS=\1,portico4/' "$copy/run.sh"
sed -i 's|server { listen 127.0.0.1:$BACKEND_KA_PORT backlog=4096;|server { listen 127.0.0.1:$BACKEND_KA_PORT backlog=4096; listen 127.0.0.2:$BACKEND_KA_PORT backlog=4096; listen 127.0.0.3:$BACKEND_KA_PORT backlog=4096; listen 127.0.0.4:$BACKEND_KA_PORT backlog=4096;|' "$copy/lib/targets.sh"
grep -q '127.0.0.4:$BACKEND_KA_PORT' "$copy/lib/targets.sh" || { echo "could not patch the backend" >&2; exit 1; }
cat >>"$copy/lib/targets.sh" <<'EOF'

# ---- appended by portico's t/bench/balance.sh: portico over 4 upstream servers ----
check_portico4() { check_portico; }
render_portico4() {
  local d=$1 out=$1/portico.conf keepalive=64 bal=${BENCH_BALANCE:-round_robin}
  ((S_UPCLOSE)) && keepalive=0
  cat >"$out" <<CONF
# rendered by portico t/bench/balance.sh (render_portico4)
workers = 1;
listeners = ( { address = "127.0.0.1:$LISTEN_PORT"; } );
upstreams = ( { name = "b"; balance = "$bal";
  servers = ( { address = "127.0.0.1:$UP_PORT"; }, { address = "127.0.0.2:$UP_PORT"; },
              { address = "127.0.0.3:$UP_PORT"; }, { address = "127.0.0.4:$UP_PORT"; } );
  keepalive = $keepalive; } );
routes = ( { path_prefix = "/"; upstream = "b"; } );
access_log = { enabled = false; };
CONF
  T_CMD=("$PORTICO_BIN" -c "$out")
  T_CONF=$out
}
EOF
bash "$copy/run.sh" "$@"
