#!/usr/bin/env bash
# permessage-deflate (issue 15) on herald's uid_push_server, measured by load_client:
#
#   bash benchmarks/deflate_bench.sh        (builds Release into build-bench/)
#
# Cases, run in turn RUNS times, each with a fresh server on a free loopback port:
#   plain          uid_push_server without --deflate; N sessions + 1 sender; M broadcasts of a
#                  4 KiB JSON document (load_client --payload json), W in flight
#   deflate-off    the server with --deflate, clients that do not offer it (the plain path of a
#                  server that has the extension)
#   deflate        the server with --deflate, every client negotiating it: each broadcast is
#                  compressed once for all N + 1 receivers
#   hold-plain     the server with --deflate, N idle clients without it: RSS per session
#   hold-deflate   the same, every client with permessage-deflate negotiated
# For each: bytes on the wire per delivery, server CPU per delivery (all its threads, from
# /proc/PID/task/*/schedstat), RSS per idle session; then the medians and the two targets of
# issue 15 (CPU per delivery with deflate <= 1.2 x without; RSS per idle session with it
# negotiated <= 64 bytes more than without). The load client (one thread) inflates what the
# deflate sessions receive, so it may limit the delivery rate there: server CPU per delivery
# is the figure to compare, not deliveries/s.
# Environment: SESSIONS (19000), MESSAGES (100), WINDOW (10), SIZE (4096), RUNS (3),
# CASES ("plain deflate-off deflate hold-plain hold-deflate"), TIMEOUT (300 per run), BUILD_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
SESSIONS=${SESSIONS:-19000}
MESSAGES=${MESSAGES:-100}
WINDOW=${WINDOW:-10}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
CASES=${CASES:-plain deflate-off deflate hold-plain hold-deflate}
TIMEOUT=${TIMEOUT:-300}
LOGS=$BUILD_DIR/deflate-bench-logs/$(date +%F-%H%M%S)

hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 20000 ]]; then ulimit -n 20000; else ulimit -n "$hard"; fi
(( $(ulimit -n) >= SESSIONS + 50 )) || { echo "deflate_bench: open-file limit $(ulimit -n) < $SESSIONS + 50" >&2; exit 2; }

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DHERALD_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" -j 2 --target uid_push_server load_client
mkdir -p "$LOGS"
echo "deflate_bench: $RUNS x ($CASES), $SESSIONS sessions; logs in $LOGS; load average $(cut -d' ' -f1-3 /proc/loadavg)"

PID=""
stop() {  # the server this script started, by its PID
  [[ -n $PID ]] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
trap stop EXIT

RESULTS=$LOGS/results.txt
FAILED=0
for (( r = 1; r <= RUNS; ++r )); do
  for c in $CASES; do
    server_args="--address 127.0.0.1 --port 0 --idle-timeout 600"
    client_args="--sessions $SESSIONS --timeout $TIMEOUT"
    case $c in
      plain) client_args+=" --scenario broadcast --messages $MESSAGES --size $SIZE --window $WINDOW --payload json" ;;
      deflate-off) server_args+=" --deflate"
                   client_args+=" --scenario broadcast --messages $MESSAGES --size $SIZE --window $WINDOW --payload json" ;;
      deflate) server_args+=" --deflate"
               client_args+=" --scenario broadcast --messages $MESSAGES --size $SIZE --window $WINDOW --payload json --deflate" ;;
      hold-plain) server_args+=" --deflate"; client_args+=" --scenario hold" ;;
      hold-deflate) server_args+=" --deflate"; client_args+=" --scenario hold --deflate" ;;
      *) echo "deflate_bench: unknown case $c" >&2; exit 2 ;;
    esac
    slog=$LOGS/run$r-$c.server.log
    clog=$LOGS/run$r-$c.client.log
    # shellcheck disable=SC2086  # word lists
    "$BUILD_DIR/examples/uid_push_server" $server_args >"$slog" 2>&1 &
    PID=$!
    port=""
    for _ in $(seq 1 100); do
      port=$(sed -n 's/^uid_push_server listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$slog" | head -n 1)
      [[ -n $port ]] && break
      sleep 0.1
    done
    [[ -n $port ]] || { echo "deflate_bench: the server did not start:"; cat "$slog"; exit 1; }
    # shellcheck disable=SC2086
    timeout -k 5 $(( TIMEOUT + 30 )) "$BUILD_DIR/benchmarks/load_client" --host 127.0.0.1 --port "$port" \
      --server-pid "$PID" $client_args >"$clog" 2>&1 || true
    stop
    if line=$(grep -m 1 '^RESULT .*status=PASS' "$clog"); then
      echo "case=$c run=$r ${line#RESULT }" >>"$RESULTS"
      echo "[run $r] $c: $(grep -m 1 -E '^on the wire|^hold: server memory' "$clog")"
      grep -m 1 -E '^server CPU' "$clog" | sed "s/^/[run $r] $c: /" || true
      grep -m 1 -E '^WARNING' "$clog" | sed "s/^/[run $r] $c: /" || true
    else
      FAILED=$(( FAILED + 1 ))
      echo "[run $r] $c: !!!!!!!! FAIL: $(grep -m 1 '^FAIL' "$clog" || echo "no RESULT line; see $clog")"
    fi
  done
done

# Medians per case of the figures that matter, and the targets.
echo
echo "medians over $RUNS runs ($SESSIONS sessions; load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
awk '
  function field(k,   i, kv) { for (i = 1; i <= NF; ++i) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
  function median(c, k,   n, i, j, t, v) {
    n = cnt[c, k]; if (!n) return ""
    for (i = 1; i <= n; ++i) v[i] = val[c, k, i]
    for (i = 1; i <= n; ++i) for (j = i + 1; j <= n; ++j) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  {
    c = field("case")
    if (!(c in seen)) { seen[c] = 1; order[++ncases] = c }
    split("server_cpu_us_per_delivery wire_bytes_per_delivery deliveries_per_s lat_p99_ms server_bytes_per_session client_cpu_pct other_cpu_s", keys, " ")
    for (k in keys) { v = field(keys[k]); if (v != "") val[c, keys[k], ++cnt[c, keys[k]]] = v + 0 }
  }
  END {
    for (i = 1; i <= ncases; ++i) {
      c = order[i]
      if (c ~ /^hold/) printf "  %-12s RSS per idle session %s B\n", c, median(c, "server_bytes_per_session")
      else printf "  %-12s %s us server CPU per delivery, %s bytes on the wire per delivery, %s deliveries/s, p99 %s ms, load client %s%% busy, other processes %s core-s\n",
        c, median(c, "server_cpu_us_per_delivery"), median(c, "wire_bytes_per_delivery"), median(c, "deliveries_per_s"),
        median(c, "lat_p99_ms"), median(c, "client_cpu_pct"), median(c, "other_cpu_s")
    }
    p = median("plain", "server_cpu_us_per_delivery"); d = median("deflate", "server_cpu_us_per_delivery")
    if (p != "" && d != "") printf "target: CPU per delivery with deflate / without = %.2f (<= 1.2: %s)\n", d / p, d <= 1.2 * p ? "met" : "NOT met"
    h = median("hold-plain", "server_bytes_per_session"); g = median("hold-deflate", "server_bytes_per_session")
    if (h != "" && g != "") printf "target: RSS per idle session with deflate negotiated - without = %+.0f B (<= 64: %s)\n", g - h, g - h <= 64 ? "met" : "NOT met"
  }' "$RESULTS"
echo "raw results: $RESULTS"
exit $(( FAILED > 0 ))
