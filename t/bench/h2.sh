#!/bin/bash
# HTTP/2 benchmark: h2load against portico and nginx, with the same certificate (P-256)
# and the same origin (an nginx serving a 1 KiB file, pooled keep-alive), one worker each,
# TLS with ALPN h2 (--cleartext: prior knowledge instead), resumption off. As in the
# shared bench (../shared/bench): the proxy is pinned to CPU 1 (BENCH_PROXY_CPU), h2load
# and the origin to CPU 0 (BENCH_LOAD_CPU); us/req is the proxy's CPU time (utime +
# stime of its process tree, /proc) over the requests it served; targets alternate
# round by round (A B A B ...) and medians are printed.
#
#   t/bench/h2.sh [--rounds 5] [--requests 200000] [--clients 10] [--streams 10] [--cleartext]
#
# Needs nginx (with http_v2), h2load (nghttp2-client), openssl, taskset, curl.
# PORTICO_BIN defaults to ./build/server/portico.
set -euo pipefail

ROUNDS=5 REQS=200000 CLIENTS=10 STREAMS=10 CLEAR=0
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --requests) REQS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --cleartext) CLEAR=1; shift ;;
    *) echo "usage: $0 [--rounds N] [--requests N] [--clients N] [--streams N] [--cleartext]" >&2; exit 1 ;;
  esac
done
PORTICO_BIN=${PORTICO_BIN:-./build/server/portico}
NGINX_BIN=${NGINX_BIN:-nginx}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
BASE=${BENCH_PORT_BASE:-18200}
UP_PORT=$((BASE + 1)) LISTEN_PORT=$((BASE + 10))
HZ=$(getconf CLK_TCK)
D=$(mktemp -d /tmp/portico-h2bench-XXXXXX)
chmod 755 "$D"                  # the origin's worker (nobody when run as root) reads www/
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench.example -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
mkdir -p "$D/www" "$D/origin" "$D/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' >"$D/www/1k"

# the origin
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
taskset -c "$LOAD_CPU" "$NGINX_BIN" -e "$D/origin/error.log" -p "$D/origin" -c "$D/origin/nginx.conf" &
PIDS+=($!)

if ((CLEAR)); then
  NGX_LISTEN="listen 127.0.0.1:$LISTEN_PORT http2 backlog=4096;" NGX_TLS=""
  PT_LISTEN="http2 = true;" URL="http://127.0.0.1:$LISTEN_PORT/1k"
else
  NGX_LISTEN="listen 127.0.0.1:$LISTEN_PORT ssl http2 backlog=4096;"
  NGX_TLS="ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;"
  PT_LISTEN="tls = { certificates = ( { cert = \"$D/cert.pem\"; key = \"$D/key.pem\"; } ); alpn = [ \"h2\" ]; session_tickets = false; session_cache_size = 0; };"
  URL="https://127.0.0.1:$LISTEN_PORT/1k"
fi
cat >"$D/nginx/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1; pid $D/nginx/nginx.pid;
error_log $D/nginx/error.log warn;
events { worker_connections 10000; }
http {
  access_log off; keepalive_requests 100000000;
  http2_max_requests 100000000; http2_max_concurrent_streams 128;
  client_body_temp_path $D/nginx/t1; proxy_temp_path $D/nginx/t2; fastcgi_temp_path $D/nginx/t3;
  uwsgi_temp_path $D/nginx/t4; scgi_temp_path $D/nginx/t5;
  upstream b { server 127.0.0.1:$UP_PORT; keepalive 64; keepalive_requests 100000000; }
  server {
    $NGX_LISTEN
    $NGX_TLS
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffer_size 16k; proxy_buffers 8 16k; }
  }
}
EOF
cat >"$D/portico.conf" <<EOF
workers = 1;
pid_file = "$D/portico.pid";
error_log = { path = "$D/portico-error.log"; level = "notice"; };
listeners = ( { address = "127.0.0.1:$LISTEN_PORT"; $PT_LISTEN } );
upstreams = ( { name = "b"; servers = ( { address = "127.0.0.1:$UP_PORT"; } ); keepalive = 64; } );
routes = ( { path_prefix = "/"; upstream = "b"; } );
access_log = { enabled = false; };
EOF

tree_ticks() {   # utime + stime of a process and its children
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [[ -r /proc/$p/stat ]] || continue
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$total"
}

start_target() {
  case $1 in
    nginx) taskset -c "$PROXY_CPU" "$NGINX_BIN" -e "$D/nginx/error.log" -p "$D/nginx" -c "$D/nginx/nginx.conf" & ;;
    portico) taskset -c "$PROXY_CPU" "$PORTICO_BIN" -c "$D/portico.conf" & ;;
  esac
  T_PID=$!
  for _ in $(seq 100); do
    if curl -sk --http2 --http2-prior-knowledge -o /dev/null "$URL" 2>/dev/null \
       || curl -sk --http2 -o /dev/null "$URL" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$1 did not start" >&2; return 1
}

stop_target() { kill -TERM "$T_PID"; wait "$T_PID" 2>/dev/null || true; }

run_h2load() {
  taskset -c "$LOAD_CPU" h2load -n "$1" -c "$CLIENTS" -m "$STREAMS" -t 1 "$URL" 2>&1
}

printf "%-8s %5s %10s %10s %9s %8s\n" target round "req/s" "us/req" "mean_ms" failed
declare -A RPS USR
for r in $(seq "$ROUNDS"); do
  for t in nginx portico; do
    start_target "$t"
    run_h2load 20000 >/dev/null              # warm-up
    c0=$(tree_ticks "$T_PID")
    out=$(run_h2load "$REQS")
    c1=$(tree_ticks "$T_PID")
    stop_target
    rps=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' <<<"$out")
    ok=$(awk '/^requests:/ { print $8 }' <<<"$out")
    failed=$(awk '/^requests:/ { print $10 + $12 }' <<<"$out")
    mean=$(awk '/^time for request:/ { print $6 }' <<<"$out")
    us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$ok" 'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
    printf "%-8s %5s %10s %10s %9s %8s\n" "$t" "$r" "$rps" "$us" "$mean" "$failed"
    RPS[$t]+="$rps "; USR[$t]+="$us "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
printf "median over %s rounds (h2load -c %s -m %s, %s requests, 1 KiB, %s)\n" "$ROUNDS" "$CLIENTS" "$STREAMS" "$REQS" "$( ((CLEAR)) && echo cleartext || echo TLS)"
printf "%-8s %10s %10s %10s %10s\n" target "req/s" "us/req" "rps/ngx" "us/ngx"
nr=$(median <<<"${RPS[nginx]}") nu=$(median <<<"${USR[nginx]}")
for t in nginx portico; do
  rr=$(median <<<"${RPS[$t]}") uu=$(median <<<"${USR[$t]}")
  printf "%-8s %10s %10s %10.2f %10.2f\n" "$t" "$rr" "$uu" "$(awk -v a="$rr" -v b="$nr" 'BEGIN { print a / b }')" "$(awk -v a="$uu" -v b="$nu" 'BEGIN { print a / b }')"
done
