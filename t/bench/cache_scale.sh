#!/bin/bash
# Cache hits with 1 and 2 workers (issue 10: a hit takes no global lock, 2 workers
# scale): portico in front of an nginx origin serving a 1 KiB file with a route cache, the
# object stored once, then wrk -t2 -c64 on it; rounds alternate 1 and 2 workers. Prints
# per run: req/s, the workers' CPU per request (utime + stime from /proc), and the
# futex(2) calls the workers make during 2 s of the same load (strace -c): 0 means no
# lock was ever contended on a hit (lookups are seqlock reads; the store's lock is the
# writers'). Unpinned: both cores are shared with wrk, so x2 is out of reach on 2 cores;
# the CPU per hit staying flat and the futex count are what show the absence of a lock.
#
#   t/bench/cache_scale.sh [--rounds 3] [--seconds 8]
#
# Needs nginx, wrk, strace, curl. PORTICO_BIN defaults to ./server/portico.
set -euo pipefail

ROUNDS=3 SECS=8
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--seconds N]" >&2; exit 1 ;;
  esac
done
PORTICO_BIN=${PORTICO_BIN:-./server/portico}
BASE=${BENCH_PORT_BASE:-18300}
UP_PORT=$((BASE + 1)) LISTEN_PORT=$((BASE + 10))
HZ=$(getconf CLK_TCK)
D=$(mktemp -d /tmp/portico-cachescale-XXXXXX)
chmod 755 "$D"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

mkdir -p "$D/www" "$D/origin"
head -c 1024 /dev/zero | tr '\0' 'x' >"$D/www/1k"
cat >"$D/origin/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1; pid $D/origin/nginx.pid;
error_log $D/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 100000000;
  client_body_temp_path $D/origin/t1; proxy_temp_path $D/origin/t2; fastcgi_temp_path $D/origin/t3;
  uwsgi_temp_path $D/origin/t4; scgi_temp_path $D/origin/t5;
  server { listen 127.0.0.1:$UP_PORT backlog=4096; root $D/www; }
}
EOF
nginx -e "$D/origin/error.log" -p "$D/origin" -c "$D/origin/nginx.conf" &
PIDS+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$UP_PORT/1k" && break; sleep 0.1; done

URL="http://127.0.0.1:$LISTEN_PORT/1k"
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

for ((r = 1; r <= ROUNDS; r++)); do
  for w in 1 2; do
    cat >"$D/portico.conf" <<EOF
workers = $w;
error_log = { path = "$D/error.log"; level = "warn"; };
listeners = ( { address = "127.0.0.1:$LISTEN_PORT"; } );
upstreams = ( { name = "b"; servers = ( { address = "127.0.0.1:$UP_PORT"; } ); keepalive = 64; } );
cache = { size_mb = 64; };
routes = ( { path_prefix = "/"; upstream = "b"; cache = { enabled = true; default_ttl_s = 60; }; } );
access_log = { enabled = false; };
EOF
    "$PORTICO_BIN" -c "$D/portico.conf" &
    pp=$!
    for _ in $(seq 50); do curl -sf -o /dev/null "$URL" && break; sleep 0.1; done
    status=$(curl -s -D - -o /dev/null "$URL" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-cache-status" {print $2}')
    wrk -t2 -c64 -d2s "$URL" >/dev/null                      # warm-up
    mapfile -t workers < <(pgrep -P "$pp")
    t0=$(ticks "${workers[@]}")
    out=$(wrk -t2 -c64 -d"${SECS}s" "$URL")
    t1=$(ticks "${workers[@]}")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    us=$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    wrk -t2 -c64 -d3s "$URL" >/dev/null &
    load=$!
    sleep 0.5
    args=(); for p in "${workers[@]}"; do args+=(-p "$p"); done
    futex=$( (timeout 2 strace -f -c -e trace=futex "${args[@]}" 2>&1 || true) | awk '$NF == "futex" {print $4}')
    wait "$load" || true
    printf 'round %d  workers=%d  %s  req/s=%s  worker-cpu-us/req=%s  futex-calls-2s=%s\n' \
      "$r" "$w" "${status:-?}" "$rps" "$us" "${futex:-0}"
    kill -TERM "$pp"; wait "$pp" 2>/dev/null || true
  done
done
