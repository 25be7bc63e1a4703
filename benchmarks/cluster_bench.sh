#!/usr/bin/env bash
# Measures the redis_cluster policy with cluster_node processes on one Redis (all on 127.0.0.1).
#
#   bash benchmarks/cluster_bench.sh           (builds into build-cluster-bench/)
#
# 1. broadcast: NODES nodes x SESSIONS logged-in sessions (default 4 x 15,000 = 60,000), one
#    cluster_bench driver per node; a sender on node 0 sends BROADCASTS broadcasts of SIZE
#    bytes ("all:..."), one every PAUSE_MS. Every session must get every broadcast exactly
#    once, in order. Reported: for each broadcast, the time from sending to the last of the
#    60,000 receipts; each node's CPU (and Redis's) per broadcast; node memory.
# 2. unicast stream: RECEIVERS sessions on node 1, a sender on node 0 that sends
#    UNICAST_MESSAGES messages to them (at most WINDOW unanswered): delivered/s and latency.
# Only processes started here are stopped (by PID). Needs redis-server (apt-get install
# redis-server) and hiredis (libhiredis-dev). Exit status 0 when both phases passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-cluster-bench}
NODES=${NODES:-4}
SESSIONS=${SESSIONS:-15000}
BROADCASTS=${BROADCASTS:-5}
SIZE=${SIZE:-1024}
PAUSE_MS=${PAUSE_MS:-3000}
RECEIVERS=${RECEIVERS:-1000}
UNICAST_MESSAGES=${UNICAST_MESSAGES:-200000}
WINDOW=${WINDOW:-64}
UNICAST_SIZE=${UNICAST_SIZE:-64}
LOG_DIR=$BUILD_DIR/cluster-bench-logs

hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 20000 ]]; then ulimit -n 20000; else ulimit -n "$hard"; fi
if (( $(ulimit -n) < SESSIONS + 100 )); then
  echo "cluster_bench: open-file limit $(ulimit -n) is too low for $SESSIONS sessions per process" >&2
  exit 2
fi

echo "== build (Release) in $BUILD_DIR"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DHERALD_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" --target cluster_node -j 2
g++ -std=c++20 -O2 -DNDEBUG -DASIO_NO_DEPRECATED -Wall -Wextra -Wno-mismatched-new-delete -I"$ROOT/include" \
  "$ROOT/benchmarks/cluster_bench.cpp" -o "$BUILD_DIR/cluster_bench" -pthread
NODE_BIN=$BUILD_DIR/examples/cluster_node
DRIVER=$BUILD_DIR/cluster_bench
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU time of a process (all threads) in seconds, from /proc/PID/stat (utime + stime).
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
# On-CPU time of a process's threads in seconds, from /proc/PID/task/*/schedstat (ns resolution).
sched_s() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.4f", s / 1e9 }'; }
# Busy core-seconds of the whole machine so far (first line of /proc/stat).
machine_busy_s() { awk -v t="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) / t; exit }' /proc/stat; }
rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$LOG_DIR" >"$LOG_DIR/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
echo "redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"

NODE_PIDS=()
NODE_PORTS=()
for i in $(seq 0 $((NODES - 1))); do
  "$NODE_BIN" --address 127.0.0.1 --port 0 --redis "127.0.0.1:$REDIS_PORT" --prefix bench --node-id "node$i" \
    --idle-timeout 600 >"$LOG_DIR/node-$i.log" 2>&1 &
  NODE_PIDS+=($!)
  PIDS+=($!)
done
for i in $(seq 0 $((NODES - 1))); do
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^cluster_node .* listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$LOG_DIR/node-$i.log")
    [[ -n $port ]] && grep -q "redis subscriber: connected" "$LOG_DIR/node-$i.log" && break
    sleep 0.1
  done
  [[ -n $port ]] || { echo "node $i did not start"; cat "$LOG_DIR/node-$i.log"; exit 1; }
  NODE_PORTS+=("$port")
  echo "node $i pid ${NODE_PIDS[$i]} on 127.0.0.1:$port"
done

# ---------------------------------------------------------------- 1. broadcast
echo
echo "== broadcast: $NODES nodes x $SESSIONS sessions, $BROADCASTS broadcasts of $SIZE bytes"
GO=$LOG_DIR/go
DRIVER_PIDS=()
for i in $(seq 0 $((NODES - 1))); do
  extra=()
  [[ $i == 0 ]] && extra=(--sender --go-file "$GO" --pause-ms "$PAUSE_MS")
  "$DRIVER" hold --port "${NODE_PORTS[$i]}" --sessions "$SESSIONS" --uid-prefix "n${i}u" --messages "$BROADCASTS" \
    --size "$SIZE" --timeout 600 "${extra[@]}" >"$LOG_DIR/driver-$i.log" 2>&1 &
  DRIVER_PIDS+=($!)
  PIDS+=($!)
done
login_start=$SECONDS
for i in $(seq 0 $((NODES - 1))); do
  until grep -q '^READY' "$LOG_DIR/driver-$i.log"; do
    if ! kill -0 "${DRIVER_PIDS[$i]}" 2>/dev/null; then echo "driver $i failed:"; cat "$LOG_DIR/driver-$i.log"; exit 1; fi
    sleep 0.2
  done
  echo "  driver $i: $(grep '^READY' "$LOG_DIR/driver-$i.log")"
done
echo "  all $((NODES * SESSIONS)) sessions logged in after $((SECONDS - login_start)) s"
sleep 3  # the last SUBSCRIBEs settle; the nodes go idle
for i in $(seq 0 $((NODES - 1))); do
  subs=$(redis-cli -p "$REDIS_PORT" PUBSUB NUMSUB "bench:uid:n${i}u0" | tail -n 1)
  echo "  node $i: RSS $(rss_mb "${NODE_PIDS[$i]}") MiB; bench:uid:n${i}u0 has $subs subscriber"
done
declare -A CPU0 SCHED0
for pid in "${NODE_PIDS[@]}" "$REDIS_PID"; do CPU0[$pid]=$(cpu_s "$pid"); SCHED0[$pid]=$(sched_s "$pid"); done
M0=$(machine_busy_s)
T0=$(date +%s.%N)
touch "$GO"
rc=0
for i in $(seq 0 $((NODES - 1))); do
  wait "${DRIVER_PIDS[$i]}" || rc=$?
done
M1=$(machine_busy_s)
T1=$(date +%s.%N)
echo "  node CPU during the $BROADCASTS broadcasts (per broadcast; the nodes are idle between them):"
for i in $(seq 0 $((NODES - 1))); do
  pid=${NODE_PIDS[$i]}
  awk -v a="${SCHED0[$pid]}" -v b="$(sched_s "$pid")" -v n="$BROADCASTS" -v i="$i" -v r="$(rss_mb "$pid")" \
    'BEGIN { printf "    node %d: %.1f ms CPU per broadcast (%.3f s for %d); RSS %d MiB\n", i, (b - a) * 1000 / n, b - a, n, r }'
done
awk -v a="${SCHED0[$REDIS_PID]}" -v b="$(sched_s "$REDIS_PID")" -v n="$BROADCASTS" \
  'BEGIN { printf "    redis-server: %.2f ms CPU per broadcast\n", (b - a) * 1000 / n }'
for i in $(seq 0 $((NODES - 1))); do
  grep -E '^(FAIL|RESULT)' "$LOG_DIR/driver-$i.log" | sed "s/^/  driver $i: /"
done
ours=0
for pid in "${NODE_PIDS[@]}" "$REDIS_PID"; do ours=$(awk -v a="$ours" -v b="${SCHED0[$pid]}" -v c="$(sched_s "$pid")" 'BEGIN { print a + c - b }'); done
drivers=$(cat "$LOG_DIR"/driver-*.log | sed -n 's/.*driver_cpu_ms_per_broadcast=\([0-9.]*\).*/\1/p' | awk -v n="$BROADCASTS" '{ s += $1 } END { print s * n / 1000 }')
awk -v m="$(awk -v a="$M0" -v b="$M1" 'BEGIN { print b - a }')" -v t="$(awk -v a="$T0" -v b="$T1" 'BEGIN { print b - a }')" \
    -v o="$ours" -v d="$drivers" -v c="$(nproc)" \
  'BEGIN { printf "  machine during the phase: %.1f of %.1f core-s busy: nodes + redis %.1f, drivers %.1f, other processes %.1f\n", m, t * c, o, d, (m - o - d > 0 ? m - o - d : 0) }'
echo "  time from sending each broadcast to the last of the $((NODES * SESSIONS)) receipts (max over the nodes' drivers):"
cat "$LOG_DIR"/driver-*.log | awk '/^DONE/ { split($2, s, "="); split($3, m, "="); if (m[2] > max[s[2]]) max[s[2]] = m[2]; n[s[2]]++ }
  END { for (k in max) { printf "    broadcast %s: %.1f ms (%d of the nodes complete)\n", k, max[k], n[k]; sum += max[k]; c++ }
        if (c) printf "    mean %.1f ms\n", sum / c }' | sort -V
if (( rc != 0 )); then echo "!! broadcast phase FAILED"; exit 1; fi
sleep 2  # the drivers' 60,000 sessions are gone; the nodes unbind them

# ---------------------------------------------------------------- 2. unicast stream
echo
echo "== unicast stream: node 0 -> node 1, $RECEIVERS receivers, $UNICAST_MESSAGES messages of $UNICAST_SIZE bytes, window $WINDOW"
P0=${NODE_PIDS[0]}
P1=${NODE_PIDS[1]}
c0=$(sched_s "$P0"); c1=$(sched_s "$P1"); cr=$(sched_s "$REDIS_PID"); t0=$(date +%s.%N)
"$DRIVER" unicast --port-a "${NODE_PORTS[0]}" --port-b "${NODE_PORTS[1]}" --receivers "$RECEIVERS" \
  --messages "$UNICAST_MESSAGES" --window "$WINDOW" --size "$UNICAST_SIZE" --timeout 600 | tee "$LOG_DIR/unicast.log"
t1=$(date +%s.%N)
awk -v a="$c0" -v b="$(sched_s "$P0")" -v c="$c1" -v d="$(sched_s "$P1")" -v e="$cr" -v f="$(sched_s "$REDIS_PID")" \
  -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" 'BEGIN { printf "  CPU over the whole run (%.1f s, including logins and probes): node 0 %.2f s, node 1 %.2f s, redis-server %.2f s\n", t, b - a, d - c, f - e }'
grep -q '^RESULT' "$LOG_DIR/unicast.log" || { echo "!! unicast phase FAILED"; exit 1; }

echo
for i in $(seq 0 $((NODES - 1))); do
  kill -TERM "${NODE_PIDS[$i]}"
  wait "${NODE_PIDS[$i]}" || true
  grep '^cluster_node stopped' "$LOG_DIR/node-$i.log" | sed "s/^/node $i: /"
done
echo "logs in $LOG_DIR"
