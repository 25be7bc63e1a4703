#!/usr/bin/env bash
# Sets up (Debian 12 packages), builds and starts uid_push_server (default 0.0.0.0:1234).
# Arguments go to the server, e.g.: bash examples/run_server.sh --port 8080 --duplicates replace
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/.ci/install-deps.sh" g++ cmake make libasio-dev
cmake -S "$root" -B "$root/build-release" -DCMAKE_BUILD_TYPE=Release \
  -DHERALD_BUILD_TESTS=OFF -DHERALD_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$root/build-release" --target uid_push_server -j"$(nproc)"
exec "$root/build-release/examples/uid_push_server" "$@"
