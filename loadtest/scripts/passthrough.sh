#!/usr/bin/env bash
# Passthrough cost: wrk against the emulator directly, through sequoia,
# through HAProxy and through nginx, in one run on loopback. Prints for each
# requests/s and its ratio to direct, and for each proxy its CPU time per
# request (user+system of all its processes, from /proc/PID/stat): the
# per-request cost, which unlike throughput does not depend much on what
# else shares the cores. The last lines compare sequoia with the best of
# HAProxy and nginx.
#
#   loadtest/scripts/passthrough.sh [duration] [connections]
#
# REPEAT=n runs the proxies n times in turn (sequoia, haproxy, nginx, then
# the next order), so that a shared machine's load falls on each alike, and
# reports each run and the median of each proxy's CPU per request.
#
# With PIN=1 each proxy runs alone on CPU 0 (so sequoia's GOMAXPROCS is 1,
# HAProxy runs one thread, nginx one worker) and wrk (one thread) and the
# emulator on CPU 1, as a sidecar with a core of its own would: needs
# taskset and two CPUs.
#
# With CLUSTER=1 a second sequoia runs in cluster mode (sequoia-cl): on a
# NATS JetStream server (the nats-server of go.mod, built here) with a
# second, idle replica of its cluster beside it, so that it shares its
# budget by lease and puts an admission ticket on every chain id it
# assigns. The last line then compares its CPU per request with the
# replica alone (the embedded NATS) of the same run.
#
# SEQUOIA_* variables set in the environment reach sequoia (e.g.
# SEQUOIA_ADAPTIVE=false to measure without the adaptive limit). The
# latency signal is off by default here (SEQUOIA_ADAPTIVE_TOLERANCE=0):
# the emulator shares the machine, its round trips grow with the load wrk
# puts on it, and sequoia would rightly hold calls in its queue, which is
# not the pass-through path this script measures.
#
# Needs wrk; HAProxy and nginx rows are skipped when they are not installed
# (apt-get install wrk haproxy nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-64}
REPEAT=${REPEAT:-1}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
PROXYCPU=() LOADCPU=() WRKT=2 WORKERS=auto
if [ "${PIN:-0}" = 1 ]; then
  command -v taskset >/dev/null || { echo "PIN=1 needs taskset (apt-get install util-linux)" >&2; exit 1; }
  [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs two CPUs" >&2; exit 1; }
  PROXYCPU=(taskset -c 0) LOADCPU=(taskset -c 1) WRKT=1 WORKERS=1
fi
TMP=$(mktemp -d)
BIN=$TMP/sequoia
go build -o "$BIN" ./cmd/sequoia
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

"${LOADCPU[@]}" "$BIN" emulate --listen 127.0.0.1:18081 --limit 100000 --exec 0 --cold-start 0 >/dev/null 2>&1 & PIDS+=($!)
declare -A PID NAME
SEQUOIA_ADAPTIVE_TOLERANCE=${SEQUOIA_ADAPTIVE_TOLERANCE:-0} \
SEQUOIA_LISTEN=127.0.0.1:18080 SEQUOIA_ADMIN_LISTEN=127.0.0.1:19090 SEQUOIA_BACKEND=openwhisk \
  SEQUOIA_BACKEND_URL=http://127.0.0.1:18081 SEQUOIA_MAX_CONCURRENCY=1000 SEQUOIA_LOG_LEVEL=warn \
  SEQUOIA_STATE_DIR="$TMP/state" "${PROXYCPU[@]}" "$BIN" serve & PIDS+=($!)
PID[18080]=$! NAME[18080]=sequoia
PORTS=(18080)
if [ "${CLUSTER:-0}" = 1 ]; then
  go build -o "$TMP/nats-server" github.com/nats-io/nats-server/v2
  "${LOADCPU[@]}" "$TMP/nats-server" -a 127.0.0.1 -p 14222 -js -sd "$TMP/nats" >/dev/null 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.05; done
  for port in 18084 18085; do
    SEQUOIA_ADAPTIVE_TOLERANCE=${SEQUOIA_ADAPTIVE_TOLERANCE:-0} \
    SEQUOIA_LISTEN=127.0.0.1:$port SEQUOIA_ADMIN_LISTEN=127.0.0.1:$((port + 1000)) SEQUOIA_BACKEND=openwhisk \
      SEQUOIA_BACKEND_URL=http://127.0.0.1:18081 SEQUOIA_MAX_CONCURRENCY=1000 SEQUOIA_LOG_LEVEL=warn \
      SEQUOIA_NATS_URL=nats://127.0.0.1:14222 SEQUOIA_CLUSTER=passthrough \
      SEQUOIA_STATE_DIR="$TMP/state-$port" "${PROXYCPU[@]}" "$BIN" serve 2>"$TMP/sequoia-$port.log" & PIDS+=($!)
    PID[$port]=$!
  done
  NAME[18084]=sequoia-cl
  unset 'PID[18085]' # the idle replica: not measured
  PORTS+=(18084)
fi
if HAPROXY=$(command -v haproxy); then
  cat >"$TMP/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout queue 60s
frontend fe
  bind 127.0.0.1:18082
  default_backend be
backend be
  server emu 127.0.0.1:18081 maxconn 1000
CFG
  "${PROXYCPU[@]}" "$HAPROXY" -f "$TMP/haproxy.cfg" -db >/dev/null 2>&1 & PIDS+=($!)
  PID[18082]=$! NAME[18082]=haproxy
  PORTS+=(18082)
else
  echo "haproxy: not installed (apt-get install haproxy); row skipped"
fi
if NGINX=$(command -v nginx); then
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx/nginx.conf" <<CFG
daemon off;
master_process on;
worker_processes $WORKERS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream emu { server 127.0.0.1:18081; keepalive 256; }
  server {
    listen 127.0.0.1:18083;
    location / {
      proxy_pass http://emu;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
CFG
  "${PROXYCPU[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >/dev/null 2>&1 & PIDS+=($!)
  PID[18083]=$! NAME[18083]=nginx
  PORTS+=(18083)
else
  echo "nginx: not installed (apt-get install nginx-light); row skipped"
fi
for p in 18081 "${PORTS[@]}"; do
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
done
sleep 0.3

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
PATH_=/api/v1/namespaces/guest/actions/hello?blocking=true\&result=true
TICK=$(getconf CLK_TCK)
# cpu PID: user+system time so far of PID and its children processes
# (nginx's workers), in clock ticks.
cpu() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
# run PORT: wrk against PORT; sets RPS, and CPUREQ (µs of the proxy's CPU
# per request) when PORT is a proxy.
run() {
  local before=0 out
  [ -n "${PID[$1]:-}" ] && before=$(cpu "${PID[$1]}")
  out=$("${LOADCPU[@]}" wrk -t"$WRKT" -c"$CONNS" -d"$DUR" -s "$TMP/post.lua" "http://127.0.0.1:$1$PATH_")
  RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  CPUREQ=-
  if [ -n "${PID[$1]:-}" ]; then
    local n ticks
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    ticks=$(( $(cpu "${PID[$1]}") - before ))
    CPUREQ=$(printf "%.1f" "$(echo "$ticks * 1000000 / $TICK / $n" | bc -l)")
  fi
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); pinned: ${PIN:-0}; $DUR per run, $CONNS connections"
printf "%-8s %4s %12s %8s %14s\n" target run "requests/s" "ratio" "cpu µs/req"
run 18081; direct=$RPS
printf "%-8s %4s %12.0f %8.2f %14s\n" direct - "$direct" 1 -
declare -A ALL
for r in $(seq "$REPEAT"); do
  order=("${PORTS[@]}")
  # Rotate the order each run so that none always goes first.
  for _ in $(seq $(( (r - 1) % ${#PORTS[@]} ))); do order=("${order[@]:1}" "${order[0]}"); done
  for p in "${order[@]}"; do
    run "$p"
    printf "%-8s %4s %12.0f %8.2f %14s\n" "${NAME[$p]}" "$r" "$RPS" "$(echo "$RPS / $direct" | bc -l)" "$CPUREQ"
    ALL[$p]="${ALL[$p]:-} $CPUREQ"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# What sequoia's adaptive limit did: calls that had to wait take another path.
curl -s 127.0.0.1:19090/metrics 2>/dev/null | grep -E '^sequoia_(effective_concurrency_limit|adaptive_queueing_cuts_total|queue_wait_seconds_count) ' | tr '\n' ' ' && echo
best=
for p in "${PORTS[@]}"; do
  m=$(median <<<"${ALL[$p]}")
  printf "median cpu µs/req %-8s %8.1f\n" "${NAME[$p]}" "$m"
  if [ "$p" != 18080 ] && [ "$p" != 18084 ] && { [ -z "$best" ] || (( $(echo "$m < $best" | bc -l) )); }; then best=$m; bestname=${NAME[$p]}; fi
done
if [ "${CLUSTER:-0}" = 1 ]; then
  printf "sequoia in cluster mode / alone: %.2fx cpu per request\n" \
    "$(echo "$(median <<<"${ALL[18084]}") / $(median <<<"${ALL[18080]}")" | bc -l)"
  curl -s 127.0.0.1:19084/metrics 2>/dev/null | grep -E '^sequoia_cluster_(nats_operations_total\{op="[a-z_]+",path="request"\}|replicas) ' | awk '{s[$1 ~ /replicas/ ? "replicas" : "request-path NATS operations"] += $2} END {for (k in s) printf "sequoia-cl %s: %d\n", k, s[k]}'
fi
if [ -n "$best" ]; then
  printf "sequoia / best peer (%s): %.2fx cpu per request\n" "$bestname" "$(echo "$(median <<<"${ALL[18080]}") / $best" | bc -l)"
fi
