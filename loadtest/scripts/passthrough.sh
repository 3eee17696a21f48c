#!/usr/bin/env bash
# Passthrough throughput: wrk against the emulator directly, through sequoia,
# and through HAProxy (when installed), in one run on loopback. Prints
# requests/s for each and the ratio to direct, and for each proxy its CPU
# time per request (user+system, from /proc/PID/stat): the per-request cost,
# which unlike throughput does not depend on what else shares the cores.
#
#   loadtest/scripts/passthrough.sh [duration] [connections]
#
# With PIN=1 each proxy runs alone on CPU 0 (so sequoia's GOMAXPROCS is 1
# and HAProxy runs one thread) and wrk (one thread) and the emulator on
# CPU 1, as a sidecar with a core of its own would: needs taskset and two
# CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-64}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
PROXYCPU=() LOADCPU=() WRKT=2
if [ "${PIN:-0}" = 1 ]; then
  command -v taskset >/dev/null || { echo "PIN=1 needs taskset (apt-get install util-linux)" >&2; exit 1; }
  [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs two CPUs" >&2; exit 1; }
  PROXYCPU=(taskset -c 0) LOADCPU=(taskset -c 1) WRKT=1
fi
BIN=$(mktemp -d)/sequoia
go build -o "$BIN" ./cmd/sequoia
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

"${LOADCPU[@]}" "$BIN" emulate --listen 127.0.0.1:18081 --limit 100000 --exec 0 --cold-start 0 >/dev/null 2>&1 & PIDS+=($!)
declare -A PID
SEQUOIA_LISTEN=127.0.0.1:18080 SEQUOIA_ADMIN_LISTEN=127.0.0.1:19090 SEQUOIA_BACKEND=openwhisk \
  SEQUOIA_BACKEND_URL=http://127.0.0.1:18081 SEQUOIA_MAX_CONCURRENCY=1000 SEQUOIA_LOG_LEVEL=warn \
  "${PROXYCPU[@]}" "$BIN" serve & PIDS+=($!)
PID[18080]=$!
HAPROXY=$(command -v haproxy || true)
if [ -n "$HAPROXY" ]; then
  CFG=$(mktemp)
  cat >"$CFG" <<CFG
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
  "${PROXYCPU[@]}" "$HAPROXY" -f "$CFG" -db >/dev/null 2>&1 & PIDS+=($!)
  PID[18082]=$!
fi
for p in 18081 18080; do
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
done
sleep 0.3

LUA=$(mktemp --suffix=.lua)
cat >"$LUA" <<'LUA'
wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
PATH_=/api/v1/namespaces/guest/actions/hello?blocking=true\&result=true
TICK=$(getconf CLK_TCK)
# cpu PID: the process's user+system time so far, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run PORT: wrk against PORT; sets RPS, and CPUREQ (µs of the proxy's CPU
# per request) when PORT is a proxy.
run() {
  local before=0 out
  [ -n "${PID[$1]:-}" ] && before=$(cpu "${PID[$1]}")
  out=$("${LOADCPU[@]}" wrk -t"$WRKT" -c"$CONNS" -d"$DUR" -s "$LUA" "http://127.0.0.1:$1$PATH_")
  RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  CPUREQ=-
  if [ -n "${PID[$1]:-}" ]; then
    local n ticks
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    ticks=$(( $(cpu "${PID[$1]}") - before ))
    CPUREQ=$(printf "%.1f" "$(echo "$ticks * 1000000 / $TICK / $n" | bc -l)")
  fi
}
printf "%-8s %12s %8s %14s\n" target "requests/s" "ratio" "cpu µs/req"
run 18081; direct=$RPS
printf "%-8s %12.0f %8.2f %14s\n" direct "$direct" 1 -
run 18080
printf "%-8s %12.0f %8.2f %14s\n" sequoia "$RPS" "$(echo "$RPS / $direct" | bc -l)" "$CPUREQ"
if [ -n "$HAPROXY" ]; then
  run 18082
  printf "%-8s %12.0f %8.2f %14s\n" haproxy "$RPS" "$(echo "$RPS / $direct" | bc -l)" "$CPUREQ"
else
  echo "haproxy: not installed (apt-get install haproxy); row skipped"
fi
