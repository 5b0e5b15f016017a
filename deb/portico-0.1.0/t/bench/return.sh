#!/usr/bin/env bash
# Side-by-side benchmark of generated answers: nginx `return 200` against a portico `return`
# route, one worker each, small keep-alive requests (wrk -t1 -c50), interleaved rounds.
# Prints per-round and median req/s, p99 and CPU time per request (us/req, the figure that
# compares servers when the load generator shares a 2-core machine). Not a test.
#
#   t/bench/return.sh [--rounds N] [--duration S] [--connections C]
#   PORTICO_BIN (default ./server/portico), NGINX_BIN, WRK_BIN
set -euo pipefail
ROUNDS=5 DURATION=5 CONNS=50
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration S] [--connections C]" >&2; exit 1 ;;
  esac
done
PORTICO_BIN=${PORTICO_BIN:-./server/portico}
NGINX_BIN=${NGINX_BIN:-nginx}
WRK_BIN=${WRK_BIN:-wrk}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
for t in "$PORTICO_BIN" "$NGINX_BIN" "$WRK_BIN" taskset; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/return-bench.XXXXXX)
chmod 755 "$tmp"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

NPORT=$(port)
cat >"$tmp/nginx.conf" <<C
daemon off; master_process on; worker_processes 1; pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_timeout 75s; keepalive_requests 100000000;
  client_body_temp_path $tmp/b; proxy_temp_path $tmp/p; fastcgi_temp_path $tmp/f;
  uwsgi_temp_path $tmp/u; scgi_temp_path $tmp/s;
  server { listen 127.0.0.1:$NPORT backlog=4096; default_type text/plain;
           location / { return 200 "$BODY"; } }
}
C
PPORT=$(port)
cat >"$tmp/portico.conf" <<C
workers = 1; pid_file = "$tmp/portico.pid";
error_log = { path = "$tmp/portico-error.log"; level = "warn"; };
access_log = { enabled = false; };
listeners = ( { address = "127.0.0.1:$PPORT"; backlog = 4096; } );
routes = ( { return = { status = 200; body = "$BODY"; }; } );
C

# cpu_ticks PID: utime+stime of a process and its children (clock ticks)
worker_of() { ps -o pid= --ppid "$1" | head -1 | tr -d ' '; }
# fields after the ")" closing the command name (which may contain spaces): utime is the
# 12th, stime the 13th
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)

run_one() {   # name cmd... -> "rps p99_ms us_per_req"
  local name=$1 port=$2; shift 2
  taskset -c "$PROXY_CPU" "$@" >"$tmp/$name.out" 2>&1 &
  local master=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  local w; w=$(worker_of "$master")
  taskset -c "$LOAD_CPU" "$WRK_BIN" -t1 -c"$CONNS" -d1s "http://127.0.0.1:$port/" >/dev/null
  local t0; t0=$(ticks "$w")
  local out; out=$(taskset -c "$LOAD_CPU" "$WRK_BIN" -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
  local t1; t1=$(ticks "$w")
  kill -TERM "$master"; wait "$master" 2>/dev/null || true
  local reqs; reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local p99; p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  local us; us=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
  echo "$rps $p99 $us"
}

printf '%-6s %-8s %10s %8s %8s\n' round server req/s p99ms us/req
declare -A R
for r in $(seq "$ROUNDS"); do
  for s in nginx portico; do
    if [[ $s == nginx ]]; then
      res=$(run_one nginx "$NPORT" "$NGINX_BIN" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log")
    else
      res=$(run_one portico "$PPORT" "$PORTICO_BIN" -c "$tmp/portico.conf")
    fi
    R[$s]+="$res"$'\n'
    read -r rps p99 us <<<"$res"
    printf '%-6s %-8s %10.0f %8.2f %8.2f\n' "$r" "$s" "$rps" "$p99" "$us"
  done
done
med() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
printf '%-8s %10s %8s %8s\n' median req/s p99ms us/req
for s in nginx portico; do
  rps=$(awk '{print $1}' <<<"${R[$s]}" | grep . | med)
  p99=$(awk '{print $2}' <<<"${R[$s]}" | grep . | med)
  us=$(awk '{print $3}' <<<"${R[$s]}" | grep . | med)
  printf '%-8s %10.0f %8.2f %8.2f\n' "$s" "$rps" "$p99" "$us"
  eval "M_${s}_rps=$rps M_${s}_p99=$p99 M_${s}_us=$us"
done
awk -v a="$M_portico_rps" -v b="$M_nginx_rps" -v c="$M_portico_p99" -v d="$M_nginx_p99" \
    -v e="$M_portico_us" -v f="$M_nginx_us" \
    'BEGIN {printf "portico/nginx: req/s %.2fx  p99 %.2fx  us/req %.2fx\n", a/b, c/d, e/f}'
