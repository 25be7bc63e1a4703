#!/usr/bin/env bash
# The first herald benchmark: uid_push_server under 19 000 sessions, measured by load_client.
#
#   benchmarks/run_first_benchmark.sh            (from anywhere; builds into build-bench/)
#
# 1. hold:      19 000 idle logged-in sessions -> server memory per session, login rate
# 2. broadcast: 19 000 sessions + 1 sender, 100 messages of 1 KiB -> deliveries/s, latency,
#               server CPU per delivery, every message checked in every session
# 3. broadcast: the same with 500 messages, when step 2's broadcast phase says it will take
#               less than BIG_RUN_LIMIT seconds (default 120: 5 x step 2's phase time)
# Every step uses a fresh server on a free loopback port and stops only that server.
# Tunables (environment): SESSIONS, SIZE, WINDOW, TIMEOUT (per load_client run, default 120),
# BIG_RUN_LIMIT, BUILD_DIR, SERVER_ARGS (extra uid_push_server options, e.g. "--threads 2").
# Exit status: 0 when every step passed, 1 when a step failed (its FAIL lines say why).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
SESSIONS=${SESSIONS:-19000}
SIZE=${SIZE:-1024}
WINDOW=${WINDOW:-4}
TIMEOUT=${TIMEOUT:-120}
BIG_RUN_LIMIT=${BIG_RUN_LIMIT:-120}
SERVER_ARGS=${SERVER_ARGS:-}
LOG_DIR=$BUILD_DIR/bench-logs

# Each side holds SESSIONS(+1) sockets: lift the soft descriptor limit to the hard one (20 000 here).
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 20000 ]]; then ulimit -n 20000; else ulimit -n "$hard"; fi
if (( $(ulimit -n) < SESSIONS + 50 )); then
  echo "run_first_benchmark: open-file limit $(ulimit -n) is too low for $SESSIONS sessions" >&2
  exit 2
fi

echo "== build (Release) in $BUILD_DIR"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DHERALD_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target uid_push_server load_client -j 2
SERVER=$BUILD_DIR/examples/uid_push_server
CLIENT=$BUILD_DIR/benchmarks/load_client
mkdir -p "$LOG_DIR"

SERVER_PID=""
SERVER_PORT=""

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  local pid=$SERVER_PID
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do  # up to 10 s for its closing handshakes
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "  server $pid still running 10 s after SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  echo "  server $pid exited with status $rc"
}
trap stop_server EXIT

# Starts uid_push_server on 127.0.0.1 with a port the kernel picked (--port 0) and reads
# the port back from its "listening on" line.
start_server() {
  local log=$1
  # shellcheck disable=SC2086  # SERVER_ARGS is a list of words
  "$SERVER" --address 127.0.0.1 --port 0 --idle-timeout 600 $SERVER_ARGS >"$log" 2>&1 &
  SERVER_PID=$!
  SERVER_PORT=""
  for _ in $(seq 1 100); do
    SERVER_PORT=$(sed -n 's/^uid_push_server listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
    [[ -n $SERVER_PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $SERVER_PORT ]]; then
    echo "run_first_benchmark: the server did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  echo "  server pid $SERVER_PID listening on 127.0.0.1:$SERVER_PORT"
}

FAILED=0
RESULTS=()

# run_step NAME CLIENT-ARGS...: fresh server, one load_client run, server stopped.
run_step() {
  local name=$1
  shift
  echo
  echo "== $name"
  start_server "$LOG_DIR/server-$name.log"
  local rc=0
  "$CLIENT" --host 127.0.0.1 --port "$SERVER_PORT" --server-pid "$SERVER_PID" --timeout "$TIMEOUT" "$@" \
    | tee "$LOG_DIR/client-$name.log" || rc=$?
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "  !! the server (pid $SERVER_PID) is gone after this step; its log:"
    sed 's/^/     /' "$LOG_DIR/server-$name.log"
    rc=1
  fi
  stop_server
  if (( rc != 0 )); then
    echo "  !! step $name FAILED (load_client exit status $rc)"
    FAILED=1
  fi
  RESULTS+=("$name: $(grep '^RESULT' "$LOG_DIR/client-$name.log" || echo 'no RESULT line')")
}

START=$SECONDS
run_step hold --scenario hold --sessions "$SESSIONS"
run_step broadcast-100 --scenario broadcast --sessions "$SESSIONS" --messages 100 --size "$SIZE" --window "$WINDOW"
# The 500-message run, when 5 x the 100-message phase fits in BIG_RUN_LIMIT seconds; its
# deadline leaves room for logins and a slower machine.
phase_s=$(sed -n 's/^RESULT .*status=PASS.* phase_s=\([0-9.]*\).*/\1/p' "$LOG_DIR/client-broadcast-100.log" 2>/dev/null || true)
if [[ -n $phase_s ]] && awk -v p="$phase_s" -v l="$BIG_RUN_LIMIT" 'BEGIN { exit !(5 * p < l) }'; then
  big_timeout=$(awk -v p="$phase_s" -v t="$TIMEOUT" 'BEGIN { x = int(10 * p + 60); print (x > t ? x : t) }')
  run_step broadcast-500 --scenario broadcast --sessions "$SESSIONS" --messages 500 --size "$SIZE" --window "$WINDOW" \
    --timeout "$big_timeout"
else
  echo
  echo "== broadcast-500 skipped: the 100-message phase took ${phase_s:-(no result)} s, 5x that exceeds BIG_RUN_LIMIT=$BIG_RUN_LIMIT s"
fi

echo
echo "== summary ($((SECONDS - START)) s; logs in $LOG_DIR)"
for r in "${RESULTS[@]}"; do echo "$r"; done
exit $FAILED
