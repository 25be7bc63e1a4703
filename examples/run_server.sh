#!/usr/bin/env bash
# Sets up (Debian 12 packages), builds and starts uid_push_server (default 0.0.0.0:1234).
# Arguments go to the server, e.g.: bash examples/run_server.sh --port 8080 --duplicates replace
#   bash examples/run_server.sh --help                          the server's options
#   bash examples/run_server.sh --http-port 8080 --api-key K    with the HTTP push API
# It builds uid_push_server (Release) in <repository>/build-release, or in $HERALD_BUILD_DIR,
# and says so first. What it prints while building goes to stderr: stdout is the server's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${HERALD_BUILD_DIR:-$root/build-release}"
bash "$root/.ci/install-deps.sh" g++ cmake make libasio-dev >&2
echo "run_server.sh: building uid_push_server (Release) in $build" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DHERALD_BUILD_TESTS=OFF -DHERALD_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" --target uid_push_server -j"$(nproc)" >&2
echo "run_server.sh: starting $build/examples/uid_push_server $*" >&2
exec "$build/examples/uid_push_server" "$@"
