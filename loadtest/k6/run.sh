#!/usr/bin/env bash
# Run a k6 scenario against `sequoia serve` in front of `sequoia emulate`,
# both started here on free loopback ports and stopped on exit.
#
#   loadtest/k6/run.sh SCENARIO [k6 run flags...]
#
# SCENARIO is a file in loadtest/k6 without .js: smoke, chain_burst,
# sync_flood, spike, fanout. The exit status is k6's (99: a threshold failed).
#
# Environment:
#   PLATFORM_LIMIT  the emulated account's concurrency limit, and sequoia's
#                   SEQUOIA_MAX_CONCURRENCY (default 20)
#   EXEC_MS         default execution time per invocation (default 50)
#   COLD_START      the emulator's cold start (default 100ms)
#   TARGET          sequoia (default) or direct: send the load straight at
#                   the emulator, to see the thresholds sequoia meets fail
#   K6              a k6 binary to use instead of the cached one
#   K6_CACHE_DIR    where k6 is installed (default ~/.cache/sequoia/k6/VERSION)
#   SEQUOIA_*       passed to `sequoia serve` as they are
set -euo pipefail
cd "$(dirname "$0")/../.."

K6_VERSION=v1.8.1
scenario=${1:-}
if [ -z "$scenario" ] || [ ! -f "loadtest/k6/$scenario.js" ]; then
  echo "usage: $0 SCENARIO [k6 run flags...]; scenarios:" >&2
  for f in loadtest/k6/*.js; do basename "$f" .js; done >&2
  exit 2
fi
shift

# k6: a cached binary of the pinned version, built with the Go toolchain.
if [ -z "${K6:-}" ]; then
  dir=${K6_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sequoia/k6/$K6_VERSION}
  K6=$dir/k6
  if [ ! -x "$K6" ]; then
    echo "installing k6 $K6_VERSION into $dir (a few minutes on a cold Go build cache)" >&2
    start=$(date +%s)
    GOBIN=$dir GOFLAGS= go install "go.k6.io/k6@$K6_VERSION"
    echo "k6 installed in $(( $(date +%s) - start ))s" >&2
  fi
fi

work=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$status" -ne 0 ] && [ -n "${KEEP_LOGS:-}" ]; then
    echo "logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$work/sequoia" ./cmd/sequoia

# waitlog FILE PID PATTERN: the first match of PATTERN in FILE, written by
# PID once it listens (ports are chosen by the kernel: :0).
waitlog() {
  local file=$1 pid=$2 pattern=$3 match
  for _ in $(seq 200); do
    if match=$(grep -o -m1 -E "$pattern" "$file" 2>/dev/null); then
      echo "$match"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid exited before listening:" >&2
      cat "$file" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "no '$pattern' in $file after 10s:" >&2
  cat "$file" >&2
  return 1
}

LIMIT=${PLATFORM_LIMIT:-20}
"$work/sequoia" emulate --listen 127.0.0.1:0 --limit "$LIMIT" --exec "${EXEC_MS:-50}ms" \
  --cold-start "${COLD_START:-100ms}" >"$work/emulate.log" 2>&1 &
pids+=($!)
emulator=$(waitlog "$work/emulate.log" "$!" 'listening on http://[0-9.]+:[0-9]+')
emulator=${emulator#listening on }

SEQUOIA_LISTEN=127.0.0.1:0 SEQUOIA_ADMIN_LISTEN=127.0.0.1:0 SEQUOIA_STATE_DIR="${SEQUOIA_STATE_DIR:-$work/state}" \
  SEQUOIA_BACKEND=openwhisk SEQUOIA_BACKEND_URL="$emulator" \
  SEQUOIA_MAX_CONCURRENCY="${SEQUOIA_MAX_CONCURRENCY:-$LIMIT}" \
  SEQUOIA_SHUTDOWN_TIMEOUT="${SEQUOIA_SHUTDOWN_TIMEOUT:-5s}" SEQUOIA_LOG_FORMAT=json \
  "$work/sequoia" serve >"$work/serve.log" 2>&1 &
pids+=($!)
serve_pid=$!
listen=$(waitlog "$work/serve.log" "$serve_pid" '"listen":"[^"]+"')
admin=$(waitlog "$work/serve.log" "$serve_pid" '"admin":"[^"]+"')
listen=${listen#\"listen\":\"}; listen=${listen%\"}
admin=${admin#\"admin\":\"}; admin=${admin%\"}
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://$admin/readyz" && break
  sleep 0.05
done
curl -fsS -o /dev/null "http://$admin/readyz"

target="http://$listen"
admin_url="http://$admin"
if [ "${TARGET:-sequoia}" = direct ]; then
  target=$emulator
  admin_url=
fi
echo "== k6 $scenario: $target (platform $emulator, limit $LIMIT)" >&2
status=0
"$K6" run --no-usage-report --quiet \
  -e SEQUOIA_URL="$target" -e EMULATOR_URL="$emulator" -e ADMIN_URL="$admin_url" \
  -e PLATFORM_LIMIT="$LIMIT" -e EXEC_MS="${EXEC_MS:-50}" \
  "$@" "loadtest/k6/$scenario.js" || status=$?
if [ "$status" -ne 0 ]; then
  echo "== k6 exited $status; sequoia's log:" >&2
  tail -n 20 "$work/serve.log" >&2
fi
exit "$status"
