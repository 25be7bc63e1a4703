#!/usr/bin/env bash
# Per-uid history (issue 16), measured with history_bench on 127.0.0.1:
#
#   bash benchmarks/history_bench.sh            (builds into build-history-bench/, Release)
#
# 1. cpu: uid_push_server's CPU per unicast (closed loop, RECEIVERS receivers, MESSAGES
#    messages of SIZE bytes, WINDOW in flight), with --history 100 and without, alternating
#    ROUNDS times each, each run on a fresh server; medians and their ratio (target <= 1.2);
#    with --threads 1 (single_thread) and --threads 2 (multi_thread).
# 2. round trips: two cluster_node --history 100 on one redis-server, the same closed loop
#    from node a to receivers on node b: Redis commands per message (INFO commandstats): the
#    nodes send one FCALL per message; what Redis runs inside it is listed apart.
# 3. reconnect: SESSIONS sessions dropped at once (RST) while MISSED messages go to each uid,
#    then all reconnect and resume: time until every one is live again; in memory
#    (uid_push_server) and on the cluster (dropped from node a, resumed on node b), with the
#    Redis commands per resume.
# 4. memory per uid: in process (history_stats and the heap) and in Redis (used_memory).
# Writes benchmarks/results/<date>-<host>-history.md. Only processes started here are stopped
# (by PID). Needs redis-server and hiredis (libhiredis-dev).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-history-bench}
RECEIVERS=${RECEIVERS:-1000}
MESSAGES=${MESSAGES:-200000}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-64}
ROUNDS=${ROUNDS:-5}
SESSIONS=${SESSIONS:-5000}
MISSED=${MISSED:-20}
HISTORY=${HISTORY:-100}
LOG_DIR=$BUILD_DIR/history-bench-logs
OUT=${OUT:-$ROOT/benchmarks/results/$(date +%F)-$(hostname -s)-history.md}

hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 30000 ]]; then ulimit -n 30000; else ulimit -n "$hard"; fi
if (( $(ulimit -n) < 2 * SESSIONS + 200 )); then
  echo "history_bench: open-file limit $(ulimit -n) is too low for $SESSIONS sessions" >&2
  exit 2
fi

echo "== build (Release) in $BUILD_DIR"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DHERALD_BUILD_TESTS=OFF -DHERALD_BENCHMARK_PEERS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target uid_push_server cluster_node history_bench -j 2
SERVER=$BUILD_DIR/examples/uid_push_server
NODE=$BUILD_DIR/examples/cluster_node
BENCH=$BUILD_DIR/benchmarks/history_bench
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Runs history_bench; its RESULT line on stdout (all of its output goes to the log); stops the
# script with the output when it fails.
bench() {
  local log
  log=$(mktemp "$LOG_DIR/bench-$1-XXXX.log")
  if ! "$BENCH" "$@" >"$log" 2>&1; then
    echo "history_bench $* failed:" >&2
    tail -5 "$log" >&2
    exit 1
  fi
  grep '^RESULT' "$log" | tail -1
}

# Starts a server in the background; sets STARTED_PID and STARTED_PORT.
start() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  STARTED_PORT=""
  for _ in $(seq 1 100); do
    STARTED_PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2 || true)
    [[ -n $STARTED_PORT ]] && break
    sleep 0.05
  done
  [[ -n $STARTED_PORT ]] || { echo "no listening line in $log"; cat "$log"; exit 1; }
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
REPORT=()
note() { echo "$*"; REPORT+=("$*"); }

# ---- 1. CPU per unicast, in memory, with and without history (single_thread; multi_thread)
for threads in 1 2; do
  echo "== 1. cpu per unicast, --threads $threads: $RECEIVERS receivers, $MESSAGES messages of $SIZE B, window $WINDOW, $ROUNDS rounds"
  OFF=()
  ON=()
  for r in $(seq 1 "$ROUNDS"); do
    for mode in off on; do
      args=()
      flag=()
      if [[ $mode == on ]]; then args=(--history "$HISTORY"); flag=(--history); fi
      start "$LOG_DIR/cpu-$threads-$mode-$r.log" "$SERVER" --address 127.0.0.1 --port 0 --idle-timeout 600 --threads "$threads" "${args[@]}"
      line=$(bench cpu --port "$STARTED_PORT" --server-pid "$STARTED_PID" --receivers "$RECEIVERS" --messages "$MESSAGES" \
        --size "$SIZE" --window "$WINDOW" "${flag[@]}")
      stop "$STARTED_PID"
      ns=$(echo "$line" | field server_cpu_ns_per_message)
      echo "  round $r history $mode: ${ns} ns/message ($(echo "$line" | field messages_per_s) messages/s)"
      if [[ $mode == on ]]; then ON+=("$ns"); else OFF+=("$ns"); fi
    done
  done
  off_median=$(printf '%s\n' "${OFF[@]}" | median)
  on_median=$(printf '%s\n' "${ON[@]}" | median)
  ratio=$(awk -v a="$on_median" -v b="$off_median" 'BEGIN { printf "%.3f", a / b }')
  note "cpu per unicast (uid_push_server --threads $threads): without history ${off_median} ns, with --history $HISTORY ${on_median} ns: ratio $ratio (runs: off ${OFF[*]}; on ${ON[*]})"
done

# ---- 2. and 3. the cluster
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$LOG_DIR" >"$LOG_DIR/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
node() {  # node NAME HISTORY
  start "$LOG_DIR/node-$1.log" "$NODE" --address 127.0.0.1 --port 0 --redis "127.0.0.1:$REDIS_PORT" --prefix "bench$2" \
    --node-id "$1" --history "$2" --idle-timeout 600
}
echo "== 2. Redis commands per message on the cluster"
for h in 0 "$HISTORY"; do
  node "a$h" "$h"; A_PID=$STARTED_PID; A_PORT=$STARTED_PORT
  node "b$h" "$h"; B_PID=$STARTED_PID; B_PORT=$STARTED_PORT
  sleep 0.5
  flag=()
  [[ $h != 0 ]] && flag=(--history)
  line=$(bench cpu --port "$A_PORT" --port-b "$B_PORT" --server-pid "$A_PID" --server-pid-b "$B_PID" --receivers "$RECEIVERS" \
    --messages $((MESSAGES / 4)) --size "$SIZE" --window "$WINDOW" --redis-port "$REDIS_PORT" "${flag[@]}")
  stop "$A_PID"
  stop "$B_PID"
  note "cluster, --history $h: $(echo "$line" | field messages_per_s) messages/s, nodes' CPU $(echo "$line" | field server_cpu_ns_per_message) ns/message, Redis calls per message: $(echo "$line" | field redis_per_message)"
done

echo "== 3. mass reconnection: $SESSIONS sessions, $MISSED missed messages each"
start "$LOG_DIR/reconnect-memory.log" "$SERVER" --address 127.0.0.1 --port 0 --idle-timeout 600 --history "$HISTORY"
line=$(bench reconnect --port "$STARTED_PORT" --server-pid "$STARTED_PID" --sessions "$SESSIONS" --missed "$MISSED" --history)
stop "$STARTED_PID"
note "reconnect in memory (uid_push_server): all $SESSIONS live again $(echo "$line" | field seconds_until_all_live) s after the first reconnection ($(echo "$line" | field resumes_per_s) resumes/s, server CPU $(echo "$line" | field server_cpu_ms) ms)"
node ra "$HISTORY"; A_PID=$STARTED_PID; A_PORT=$STARTED_PORT
node rb "$HISTORY"; B_PID=$STARTED_PID; B_PORT=$STARTED_PORT
sleep 0.5
line=$(bench reconnect --port "$A_PORT" --port-b "$B_PORT" --server-pid "$A_PID" --server-pid "$B_PID" --sessions "$SESSIONS" \
  --missed "$MISSED" --history --redis-port "$REDIS_PORT")
stop "$A_PID"
stop "$B_PID"
note "reconnect on the cluster (dropped from node a, resumed on node b): all $SESSIONS live again $(echo "$line" | field seconds_until_all_live) s after the first reconnection ($(echo "$line" | field resumes_per_s) resumes/s, nodes' CPU $(echo "$line" | field server_cpu_ms) ms), Redis calls per resume: $(echo "$line" | field redis_per_resume)"

echo "== 4. memory per uid"
for shape in "10000 20 64" "2000 100 512"; do
  set -- $shape
  while read -r line; do
    case $line in
      *where=process*) note "memory in process: $1 uids x $2 messages of $3 B: $(echo "$line" | field heap_bytes_per_uid) heap bytes per uid (history_stats estimate $(echo "$line" | field estimated_bytes_per_uid)), $(echo "$line" | field heap_bytes_per_message) per message" ;;
      *where=redis*) note "memory in Redis: $1 uids x $2 messages of $3 B: $(echo "$line" | field used_memory_bytes_per_uid) bytes of used_memory per uid" ;;
    esac
  done < <("$BENCH" memory --uids "$1" --per-uid "$2" --size "$3" --redis-port "$REDIS_PORT" | grep RESULT || echo "memory bench failed" >&2)
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# history_bench, $(date +%F) on $(hostname -s)"
  echo
  echo "\`bash benchmarks/history_bench.sh\` (RECEIVERS=$RECEIVERS MESSAGES=$MESSAGES SIZE=$SIZE WINDOW=$WINDOW ROUNDS=$ROUNDS"
  echo "SESSIONS=$SESSIONS MISSED=$MISSED HISTORY=$HISTORY), Release build, $(nproc) cores,"
  echo "load average before $LOAD_BEFORE, after $LOAD_AFTER. Redis $(redis-server --version | awk '{ print $3 }')."
  echo
  for line in "${REPORT[@]}"; do echo "- $line"; done
} >"$OUT"
echo "== wrote $OUT"
