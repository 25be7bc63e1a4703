#!/usr/bin/env bash
# The herald benchmark suite: one command that installs, builds and measures herald's
# uid_push_server against the floor (peers/floor_server.cpp: the least a server can do on
# epoll), Boost.Beast, websocketpp and Node's ws, all on one server thread.
#
#   bash benchmarks/run_suite.sh            # full: issue 13's operating points, 3 runs
#   bash benchmarks/run_suite.sh --quick    # smaller, 1 run (about 3-4 min once built)
#
# Steps: install what is missing (Debian packages; npm ci for the Node peer), build Release
# into build-bench/, check that every server speaks the protocol, then run every server x
# every scenario, run r of all of them before run r+1, a fresh server process for every run,
# each run bounded by timeouts. Scenarios (full size; --quick in the parameters below):
#   hold            19,000 idle logged-in sessions: RSS per session
#   broadcast-1k    19,000 sessions, 1 KiB messages, 10 in flight: CPU per delivery
#   broadcast-64    19,000 sessions, 64-byte messages, 10 in flight
#   broadcast-few   1,000 sessions, 128-byte messages, 50 in flight
#   unicast         5,000 sessions, 128-byte messages, 200 in flight (closed loop): CPU per message
#   churn           5,000 idle sessions + 32 workers cycling connect, upgrade, login, one
#                   128-byte unicast, leave: CPU per cycle
# After the measured runs, one more run of every server x broadcast/unicast/churn counts the
# server's syscalls during its measured phase (load_client --syscalls: perf stat, or strace -c
# where perf is missing). It is a separate run because counting slows every syscall down (by
# 6-30% of the CPU per operation here, see README), more for the servers that make more
# syscalls; its CPU figures are shown beside the counts but are in no median.
# Writes benchmarks/results/<date>-<host>[-quick].{md,png,results.txt}: medians, ratios to the
# floor, issue 13's target verdicts, syscalls per operation, a chart. A failed run (loss, wrong
# delivery, crash, timeout) is printed loudly, marked in the report, and makes the script exit
# 1 at the end.
#
# Options: --quick, --runs N, --servers "floor herald beast websocketpp node-ws" (add herald-2t
#          for uid_push_server --threads 2, reported beside herald),
#          --scenarios "hold broadcast-1k broadcast-64 broadcast-few unicast churn",
#          --syscalls auto|perf|strace|off (auto), --no-install, --out-dir DIR
# Environment: BUILD_DIR (default build-bench), and the per-scenario knobs below.
set -euo pipefail
ARGS_GIVEN="$*"  # for the report's "command" line

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/benchmarks
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
QUICK=0
RUNS=""
SERVERS="floor herald beast websocketpp node-ws"
SCENARIOS="hold broadcast-1k broadcast-64 broadcast-few unicast churn"
SYSCALLS=auto
INSTALL=1
OUT_DIR=$BENCH/results

while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --syscalls) SYSCALLS=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --out-dir) OUT_DIR=$2; shift ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
    *) echo "run_suite: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---- parameters (full / quick): issue 13's operating points; --quick keeps sizes and
# windows and shrinks sessions and counts.
if (( QUICK )); then
  RUNS=${RUNS:-1}
  SESSIONS=${SESSIONS:-2000}              # hold, broadcast-1k, broadcast-64
  BCAST_MESSAGES=${BCAST_MESSAGES:-60}
  FEW_SESSIONS=${FEW_SESSIONS:-1000}      # broadcast-few
  FEW_MESSAGES=${FEW_MESSAGES:-200}
  UNI_SESSIONS=${UNI_SESSIONS:-1000}
  UNI_MESSAGES=${UNI_MESSAGES:-30000}
  CHURN_SESSIONS=${CHURN_SESSIONS:-500}
  CHURN_SECONDS=${CHURN_SECONDS:-4}
  SUFFIX=-quick
else
  RUNS=${RUNS:-3}
  SESSIONS=${SESSIONS:-19000}
  BCAST_MESSAGES=${BCAST_MESSAGES:-100}
  FEW_SESSIONS=${FEW_SESSIONS:-1000}
  FEW_MESSAGES=${FEW_MESSAGES:-2000}
  UNI_SESSIONS=${UNI_SESSIONS:-5000}
  UNI_MESSAGES=${UNI_MESSAGES:-200000}
  CHURN_SESSIONS=${CHURN_SESSIONS:-5000}
  CHURN_SECONDS=${CHURN_SECONDS:-20}
  SUFFIX=""
fi
BCAST_WINDOW=${BCAST_WINDOW:-10}  # broadcast-1k (1024 bytes) and broadcast-64 (64 bytes)
FEW_SIZE=${FEW_SIZE:-128}
FEW_WINDOW=${FEW_WINDOW:-50}
UNI_SIZE=${UNI_SIZE:-128}
UNI_WINDOW=${UNI_WINDOW:-200}
CHURN_SIZE=${CHURN_SIZE:-128}
CHURN_WINDOW=${CHURN_WINDOW:-32}
# load_client's own deadline per run, and the hard one around it.
TIMEOUT_HOLD=${TIMEOUT_HOLD:-120}
TIMEOUT_BROADCAST=${TIMEOUT_BROADCAST:-300}
TIMEOUT_UNICAST=${TIMEOUT_UNICAST:-240}
TIMEOUT_CHURN=$(( CHURN_SECONDS + ${TIMEOUT_CHURN_EXTRA:-90} ))

STAMP_DATE=$(date +%F)
HOST=$(hostname -s 2>/dev/null || hostname)
NAME=$STAMP_DATE-$HOST$SUFFIX
LOG_DIR=$BUILD_DIR/suite-logs/$NAME-$(date +%H%M%S)
START=$SECONDS

say() { printf '[%s %5ds] %s\n' "$(date +%T)" "$((SECONDS - START))" "$*"; }

# ---- install what is missing
if (( INSTALL )); then
  say "checking packages"
  bash "$ROOT/.ci/install-deps.sh" g++ cmake make libasio-dev libboost-dev libwebsocketpp-dev
  # gnuplot without X11 (the "gnuplot" package pulls in Qt); any installed gnuplot will do.
  command -v gnuplot >/dev/null || bash "$ROOT/.ci/install-deps.sh" gnuplot-nox
  command -v node >/dev/null && command -v npm >/dev/null || bash "$ROOT/.ci/install-deps.sh" nodejs npm
  # perf counts the syscalls (strace where perf cannot be had; without both: n/a).
  if [[ $SYSCALLS != off ]] && ! command -v perf >/dev/null; then
    bash "$ROOT/.ci/install-deps.sh" linux-perf || echo "run_suite: linux-perf not installed; syscalls counted with strace if present" >&2
  fi
fi
for tool in cmake g++ gnuplot node npm; do
  command -v "$tool" >/dev/null || { echo "run_suite: $tool is missing (run without --no-install)" >&2; exit 2; }
done
ws_pinned=$(sed -n 's/.*"ws": *"\([^"]*\)".*/\1/p' "$BENCH/peers/node/package.json" | head -n 1)
ws_have=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$BENCH/peers/node/node_modules/ws/package.json" 2>/dev/null | head -n 1 || true)
if [[ $ws_have != "$ws_pinned" ]]; then
  say "npm ci in benchmarks/peers/node (ws $ws_pinned)"
  (cd "$BENCH/peers/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- descriptors: each side holds up to SESSIONS + 1 sockets
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 20000 ]]; then ulimit -n 20000; else ulimit -n "$hard"; fi
MOST_SESSIONS=$(printf '%s\n' "$SESSIONS" "$FEW_SESSIONS" "$UNI_SESSIONS" "$CHURN_SESSIONS" | sort -n | tail -n 1)
if (( $(ulimit -n) < MOST_SESSIONS + 100 )); then
  echo "run_suite: open-file limit $(ulimit -n) is too low for $MOST_SESSIONS sessions (set SESSIONS lower)" >&2
  exit 2
fi

# ---- build
say "building (Release) in $BUILD_DIR"
# (Peers on explicitly: a build directory configured without them before is reused.)
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DHERALD_BUILD_TESTS=OFF -DHERALD_BENCHMARK_PEERS=ON >/dev/null
targets=(uid_push_server load_client floor_server)
for s in $SERVERS; do
  case $s in beast|websocketpp) targets+=("${s}_server") ;; esac
done
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}"
CLIENT=$BUILD_DIR/benchmarks/load_client
mkdir -p "$LOG_DIR" "$OUT_DIR"

server_cmd() {  # the command line of server $1 on 127.0.0.1, a port the kernel picks
  case $1 in
    floor) echo "$BUILD_DIR/benchmarks/floor_server --address 127.0.0.1 --port 0" ;;
    herald) echo "$BUILD_DIR/examples/uid_push_server --address 127.0.0.1 --port 0 --idle-timeout 600" ;;
    # The multi_thread policy, for comparison with herald's one thread (not a peer: not in the targets).
    herald-2t) echo "$BUILD_DIR/examples/uid_push_server --address 127.0.0.1 --port 0 --idle-timeout 600 --threads 2" ;;
    beast) echo "$BUILD_DIR/benchmarks/beast_server --address 127.0.0.1 --port 0" ;;
    websocketpp) echo "$BUILD_DIR/benchmarks/websocketpp_server --address 127.0.0.1 --port 0" ;;
    node-ws) echo "node $BENCH/peers/node/server.mjs --address 127.0.0.1 --port 0" ;;
    *) echo "run_suite: unknown server $1" >&2; exit 2 ;;
  esac
}

SERVER_PID=""
SERVER_PORT=""
SERVER_STATUS=""

# start_server NAME LOG: starts it, reads the port from its "listening on A:P" line.
start_server() {
  : >"$2"  # exists before the server (started in the background) opens it
  # shellcheck disable=SC2046  # the command is a list of words
  $(server_cmd "$1") >"$2" 2>&1 &
  SERVER_PID=$!
  SERVER_PORT=""
  for _ in $(seq 1 100); do
    SERVER_PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9][0-9]*\).*/\1/p' "$2" | head -n 1)
    [[ -n $SERVER_PORT ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# stop_server: SIGTERM to the server we started, up to 15 s, then SIGKILL; SERVER_STATUS says how it ended.
stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  local pid=$SERVER_PID
  SERVER_PID=""
  SERVER_STATUS=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      SERVER_STATUS="did not exit within 15 s of SIGTERM (killed)"
    fi
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  if [[ -z $SERVER_STATUS && $rc -ne 0 ]]; then SERVER_STATUS="exited with status $rc after SIGTERM"; fi
}
trap 'stop_server' EXIT
trap 'echo; echo "run_suite: interrupted"; exit 130' INT TERM

# ---- protocol check: every server must speak the same protocol before it is measured
for s in $SERVERS; do
  log=$LOG_DIR/protocol-$s.server.log
  check=$LOG_DIR/protocol-$s.check.log
  if ! start_server "$s" "$log"; then
    echo "!!!!!!!! $s did not start; its log:"; sed 's/^/   /' "$log"; exit 1
  fi
  if ! timeout 20 node "$BENCH/peers/node/protocol_check.mjs" "ws://127.0.0.1:$SERVER_PORT/" >"$check" 2>&1; then
    stop_server
    echo "!!!!!!!! $s failed the protocol check:"; sed 's/^/   /' "$check" "$log"; exit 1
  fi
  stop_server
  if [[ -n $SERVER_STATUS ]]; then echo "!!!!!!!! $s $SERVER_STATUS"; exit 1; fi
  say "protocol check: $s $(tail -n 1 "$check") $(sed -n 's/.*listening on [^ ]* //p' "$log" | head -n 1)"
done

client_args() {  # load_client arguments of scenario $1; $2: how to count syscalls (off in a measured run)
  local bc="--scenario broadcast --timeout $TIMEOUT_BROADCAST --syscalls $2"
  case $1 in
    hold) echo "--scenario hold --sessions $SESSIONS --timeout $TIMEOUT_HOLD" ;;
    broadcast-1k) echo "$bc --sessions $SESSIONS --messages $BCAST_MESSAGES --size 1024 --window $BCAST_WINDOW" ;;
    broadcast-64) echo "$bc --sessions $SESSIONS --messages $BCAST_MESSAGES --size 64 --window $BCAST_WINDOW" ;;
    broadcast-few) echo "$bc --sessions $FEW_SESSIONS --messages $FEW_MESSAGES --size $FEW_SIZE --window $FEW_WINDOW" ;;
    unicast) echo "--scenario unicast --sessions $UNI_SESSIONS --messages $UNI_MESSAGES --size $UNI_SIZE --window $UNI_WINDOW --timeout $TIMEOUT_UNICAST --syscalls $2" ;;
    churn) echo "--scenario churn --sessions $CHURN_SESSIONS --window $CHURN_WINDOW --duration $CHURN_SECONDS --size $CHURN_SIZE --timeout $TIMEOUT_CHURN --syscalls $2" ;;
    *) echo "run_suite: unknown scenario $1" >&2; exit 2 ;;
  esac
}
client_timeout() {
  case $1 in hold) echo "$TIMEOUT_HOLD" ;; broadcast*) echo "$TIMEOUT_BROADCAST" ;; unicast) echo "$TIMEOUT_UNICAST" ;; churn) echo "$TIMEOUT_CHURN" ;; esac
}
# The figures the progress line shows for a RESULT line.
summary() {
  local line=$1
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  local calls
  calls=$(get sys_per_op)
  if [[ -n $calls && $calls != n/a ]]; then calls=", $calls syscalls/$(get scenario | sed 's/broadcast/delivery/; s/unicast/message/; s/churn/cycle/')"; else calls=""; fi
  case $(get scenario) in
    hold) echo "$(get server_bytes_per_session) B/session, $(get logins_per_s) logins/s, $(get login_server_cpu_us_per_login) us/login" ;;
    broadcast) echo "$(get deliveries_per_s) deliveries/s, $(get server_cpu_us_per_delivery) us/delivery, p99 $(get lat_p99_ms) ms$calls" ;;
    unicast) echo "$(get delivered_per_s) msg/s, $(get server_cpu_us_per_message) us/msg, p99 $(get lat_p99_ms) ms$calls" ;;
    churn) echo "$(get cycles_per_s) cycles/s, $(get server_cpu_us_per_cycle) us/cycle$calls, RSS $(get server_rss_start) -> $(get server_rss_end)" ;;
  esac
  unset -f get
}

RESULTS=$OUT_DIR/$NAME.results.txt
META=$LOG_DIR/meta.txt
: >"$RESULTS"
read -r -a server_list <<<"$SERVERS"
read -r -a scenario_list <<<"$SCENARIOS"
# The syscall-counting run: every scenario but hold (which has no operations to count per).
count_list=()
if [[ $SYSCALLS != off ]]; then
  for sc in "${scenario_list[@]}"; do [[ $sc == hold ]] || count_list+=("$sc"); done
fi
total=$(( (RUNS * ${#scenario_list[@]} + ${#count_list[@]}) * ${#server_list[@]} ))
done_runs=0
FAILED=0
say "suite: $total runs ($RUNS x ${#scenario_list[@]} scenarios x ${#server_list[@]} servers, then ${#count_list[@]} x ${#server_list[@]} counting syscalls); logs in $LOG_DIR"

for (( r = 1; r <= RUNS + 1; ++r )); do
  # Runs 1..RUNS measure; run RUNS+1 counts syscalls (purpose=syscalls in the results).
  if (( r <= RUNS )); then
    cases=("${scenario_list[@]}"); counting=off; purpose=measure
  else
    (( ${#count_list[@]} )) || break
    cases=("${count_list[@]}"); counting=$SYSCALLS; purpose=syscalls
  fi
  # Each run starts the server order one further along, so no server is always first.
  order=()
  for (( i = 0; i < ${#server_list[@]}; ++i )); do order+=("${server_list[(i + r - 1) % ${#server_list[@]}]}"); done
  for sc in "${cases[@]}"; do
    for s in "${order[@]}"; do
      done_runs=$(( done_runs + 1 ))
      tag="[$done_runs/$total] run $r $sc $s"
      if [[ $purpose == syscalls ]]; then tag="[$done_runs/$total] syscall-counting run $sc $s"; fi
      slog=$LOG_DIR/run$r-$sc-$s.server.log
      clog=$LOG_DIR/run$r-$sc-$s.client.log
      t0=$SECONDS
      reason=""
      if ! start_server "$s" "$slog"; then
        reason="the server did not start: $(tail -n 3 "$slog" | tr '\n' ' ')"
        stop_server
      else
        to=$(client_timeout "$sc")
        rc=0
        # shellcheck disable=SC2046  # the arguments are a list of words
        timeout -k 5 $(( to + 30 )) "$CLIENT" --host 127.0.0.1 --port "$SERVER_PORT" --server-pid "$SERVER_PID" \
          $(client_args "$sc" "$counting") >"$clog" 2>&1 || rc=$?
        alive=1
        kill -0 "$SERVER_PID" 2>/dev/null || alive=0
        stop_server
        if ! grep -q '^RESULT .*status=PASS' "$clog"; then
          reason=$(grep -m 1 '^FAIL' "$clog" || true)
          if [[ -z $reason ]]; then
            reason="load_client exit status $rc without a RESULT line"
            if (( rc == 124 || rc == 137 )); then reason="$reason (killed by the hard timeout)"; fi
          fi
        fi
        if (( ! alive )); then reason="${reason:+$reason; }the server process died during the run"; fi
        if [[ -n $SERVER_STATUS ]]; then reason="${reason:+$reason; }server $SERVER_STATUS"; fi
      fi
      wall=$(( SECONDS - t0 ))
      if [[ -z $reason ]]; then
        line=$(grep -m 1 '^RESULT ' "$clog")
        echo "run=$r purpose=$purpose server=$s case=$sc wall_s=$wall ${line#RESULT }" >>"$RESULTS"
        say "$tag: PASS ($wall s) $(summary "$line")"
      else
        FAILED=$(( FAILED + 1 ))
        reason=${reason//\"/\'}
        echo "run=$r purpose=$purpose server=$s case=$sc wall_s=$wall status=FAIL reason=\"$reason\" log=\"${clog#"$ROOT"/}\"" >>"$RESULTS"
        say "$tag: !!!!!!!! FAIL ($wall s): $reason"
        say "   client log: $clog"
        grep -E '^  |^FAIL|^RESULT' "$clog" 2>/dev/null | head -n 30 | sed 's/^/   | /' || true
        say "   server log (tail): $slog"
        tail -n 5 "$slog" 2>/dev/null | sed 's/^/   | /' || true
      fi
    done
  done
done

# ---- report
{
  printf 'title\therald benchmark suite%s: %s on %s\n' "$( (( QUICK )) && echo ' (quick)')" "$STAMP_DATE" "$HOST"
  peers=""
  for s in $SERVERS; do
    case $s in beast) peers+=", Boost.Beast" ;; websocketpp) peers+=", websocketpp" ;; node-ws) peers+=", Node ws" ;; esac
  done
  printf 'chart_title\therald vs the floor (minimal epoll server)%s: one server thread (%s, %s%s)\n' \
    "$peers" "$STAMP_DATE" "$HOST" "$( (( QUICK )) && echo ', quick')"
  printf 'command\tbash benchmarks/run_suite.sh%s\n' "${ARGS_GIVEN:+ $ARGS_GIVEN}"
  printf 'suite time\t%s s\n' "$((SECONDS - START))"
  printf 'runs\t%s per server and scenario, interleaved (run r of every server before run r+1, server order rotated per run), fresh server process per run\n' "$RUNS"
  printf 'hold\t%s idle logged-in sessions; RSS growth per session 2 s after the last login\n' "$SESSIONS"
  printf 'broadcast-1k\t%s sessions + 1 sender, %s messages of 1024 bytes, %s in flight\n' "$SESSIONS" "$BCAST_MESSAGES" "$BCAST_WINDOW"
  printf 'broadcast-64\t%s sessions + 1 sender, %s messages of 64 bytes, %s in flight\n' "$SESSIONS" "$BCAST_MESSAGES" "$BCAST_WINDOW"
  printf 'broadcast-few\t%s sessions + 1 sender, %s messages of %s bytes, %s in flight\n' "$FEW_SESSIONS" "$FEW_MESSAGES" "$FEW_SIZE" "$FEW_WINDOW"
  printf 'unicast\t%s sessions, %s messages of %s bytes, closed loop with %s in flight\n' "$UNI_SESSIONS" "$UNI_MESSAGES" "$UNI_SIZE" "$UNI_WINDOW"
  printf 'churn\t%s idle sessions + 1 control, %s workers for %s s; each cycle: connect, handshake, login (new uid), 1 unicast of %s bytes received, leave (1/2 clean close, 1/4 FIN, 1/4 RST), 1 ghost message to the departed uid\n' \
    "$CHURN_SESSIONS" "$CHURN_WINDOW" "$CHURN_SECONDS" "$CHURN_SIZE"
  printf 'syscall counting\tone more run per server and case, not in the medians (--syscalls %s; %s)\n' "$SYSCALLS" "$(perf --version 2>/dev/null || echo 'no perf')"
  printf 'servers\tfloor_server (benchmarks/peers, level-triggered epoll, 1 thread); herald uid_push_server (1 thread, --idle-timeout 600); beast_server (Boost %s, 1 thread); websocketpp_server (websocketpp %s, asio no-TLS, 1 thread); node-ws (Node %s, ws %s)\n' \
    "$(dpkg-query -W -f='${Version}' libboost-dev 2>/dev/null || echo '?')" \
    "$(dpkg-query -W -f='${Version}' libwebsocketpp-dev 2>/dev/null || echo '?')" "$(node --version)" "$ws_pinned"
  printf 'herald\tgit %s%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes in the work tree')"
  printf 'compiler\t%s, Release (-O3 -DNDEBUG)\n' "$(g++ --version | head -n 1)"
  printf 'machine\t%s; %s cores; %s GiB RAM; %s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
    "$(nproc)" "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(uname -sr)"
  printf 'load client\tload_client (herald client sessions, 1 thread), 16 source addresses 127.0.0.1-16; shares the 2 cores with the server\n'
  printf 'load average at the end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$META"
say "writing the report"
report_rc=0
node "$BENCH/report.mjs" "$RESULTS" "$META" "$OUT_DIR/$NAME.md" "$OUT_DIR/$NAME.png" || report_rc=$?

echo
sed -n '/^## Targets/,/^## Medians/p' "$OUT_DIR/$NAME.md" | sed '$d'
echo "report: $OUT_DIR/$NAME.md"
echo "chart:  $OUT_DIR/$NAME.png"
echo "raw:    $RESULTS"
echo "logs:   $LOG_DIR"
if (( FAILED )); then
  echo
  echo "!!!!!!!! $FAILED of $total runs FAILED (see the report's 'Failed runs' and the logs above) !!!!!!!!"
  exit 1
fi
if (( report_rc )); then echo "run_suite: the report could not be written completely"; exit 1; fi
say "done: $total runs passed"
