#!/usr/bin/env bash
# The shared side-by-side proxy benchmark (../shared/bench/run.sh: portico, nginx, HAProxy
# on the same load), with portico's configuration rendered for the schema portico has
# today. The shared harness already writes the response cache's keys (a top-level `cache`
# and a route `cache`) into every scenario's config; portico rejects keys it does not
# know, and has no cache module yet, so a copy of the harness is run whose
# render_portico_config leaves them out. Once the cache module exists, run the shared
# harness directly. Options are run.sh's, e.g.
#
#   t/bench/proxy.sh --rounds 5 --targets nginx,haproxy,portico \
#                    --scenarios small,large,close,upstream-close
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shared=${BENCH_SHARED:-$here/../../../shared/bench}
[[ -x $shared/run.sh || -f $shared/run.sh ]] || { echo "no shared bench at $shared (set BENCH_SHARED)" >&2; exit 1; }

copy=$(mktemp -d /tmp/portico-bench.XXXXXX)
trap 'rm -rf "$copy"' EXIT
cp -r "$shared/." "$copy/"
chmod -R u+w "$copy"
cat >>"$copy/lib/targets.sh" <<'EOF'

# ---- appended by portico's t/bench/proxy.sh: today's schema (no cache keys) ----
render_portico_config() {
  local d=$1 out=$1/portico.conf tls="" keepalive=64 limits=""
  ((S_TLS)) && tls=" tls = { certificates = ( { cert = \"$TLS_CERT\"; key = \"$TLS_KEY\"; } ); };"
  ((S_UPCLOSE)) && keepalive=0
  ((S_IDLE)) && limits="limits = { keepalive_timeout_ms = 300000; max_connections = $S_MAXCONN; };"
  cat >"$out" <<CONF
# rendered by portico t/bench/proxy.sh (render_portico_config)
workers = 1;
listeners = ( { address = "127.0.0.1:$LISTEN_PORT";$tls } );
upstreams = ( { name = "b"; servers = ( { address = "127.0.0.1:$UP_PORT"; } ); keepalive = $keepalive; } );
routes = ( { path_prefix = "/"; upstream = "b"; } );
access_log = { enabled = false; };
CONF
  [[ -n $limits ]] && echo "$limits" >>"$out"
  echo "$out"
}
EOF
bash "$copy/run.sh" "$@"
