#!/usr/bin/env bash
# Sets up (Debian 12 packages, npm), builds and runs every test:
#   g++ 12 (-Werror), clang++ 14 (-Werror), g++ on Boost.Asio instead of standalone Asio
#   (HERALD_USE_BOOST_ASIO), g++ with ASan+UBSan (every test), and g++ with TSan (the tests where
#   threads meet); ctest for each.
# HERALD_CONFIGS="gcc" (or any of "gcc clang boost asan tsan") picks a subset; then the fuzzers run
# for HERALD_FUZZ_SECONDS (default 30, 0 to skip) per target.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/.ci/install-deps.sh" g++ clang cmake make libasio-dev doctest-dev python3-websockets ca-certificates \
  libboost-dev libssl-dev openssl libhiredis-dev redis-server redis-tools php-cli chromium libclang-rt-14-dev \
  zlib1g-dev python3-prometheus-client prometheus
command -v node >/dev/null && command -v npm >/dev/null || bash "$root/.ci/install-deps.sh" nodejs npm
for dir in tests/interop tests/browser; do
  (cd "$root/$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
# Tests that depend on optional packages are left out by CMake, or skip themselves (ctest:
# "Skipped", e.g. the Node tests without their npm packages), when those are missing; here
# they must all be present and run: a required test left out or skipped fails the run.
required_tests=(interop-python interop-node interop-node-threads interop-tls browser cluster-redis unit-redis-cluster
                packaging unit-multi-thread readme-snippets interop-http-api interop-http-api-threads single-header-fresh
                metrics-exposition unit-deflate unit-history interop-history interop-history-threads cluster-history
                unit-tls-session)

jobs=$(nproc)
configs=${HERALD_CONFIGS:-"gcc clang boost asan tsan"}
for config in $configs; do
  case $config in
    gcc)   args=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_BENCHMARK_PEERS=OFF) ;;
    # The benchmark tools are built (and so compile-checked) in the gcc configuration only.
    clang) args=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_BUILD_BENCHMARKS=OFF) ;;
    boost) args=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_USE_BOOST_ASIO=ON -DHERALD_BUILD_BENCHMARKS=OFF) ;;
    # README snippets are compile checks: the other configurations build them.
    asan)  args=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=address,undefined -DHERALD_BUILD_BENCHMARKS=OFF -DHERALD_README_SNIPPETS=OFF) ;;
    tsan)  args=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=thread -DHERALD_BUILD_BENCHMARKS=OFF) ;;
    *) echo "unknown config $config"; exit 2 ;;
  esac
  dir="$root/build-test-$config"
  config_start=$SECONDS
  echo "=== $config: configure and build"
  cmake -S "$root" -B "$dir" "${args[@]}" >/dev/null
  filter=()
  targets=()
  if [ "$config" = tsan ]; then
    # unit-message and unit-deflate: threads racing for a message's compressed frame;
    # unit-history: senders on other threads while clients resume.
    filter=(-R "^(unit-multi-thread|unit-session|unit-message|unit-deflate|unit-history|interop-.*-threads)$")
    targets=(--target unit-multi-thread unit-session unit-message unit-deflate unit-history uid_push_server)
  elif [ "$config" != gcc ]; then
    # The packaged consumers are standalone-Asio builds without sanitizers: once (gcc) is enough.
    filter=(-E "^packaging$")
  fi
  cmake --build "$dir" -j"$jobs" "${targets[@]}"
  if [ "$config" != tsan ]; then
    listed=$(cd "$dir" && ctest -N)
    for t in "${required_tests[@]}"; do
      [ "$config" = asan ] && [ "$t" = readme-snippets ] && continue
      grep -q ": $t\$" <<<"$listed" || { echo "test $t is not configured (a package missing?)"; exit 1; }
    done
  fi
  echo "=== $config: test"
  (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j"$jobs" --timeout 300 "${filter[@]}") |
    tee "$dir/ctest.log"
  # ctest passes a run with skipped tests; a required one skipped fails it here.
  skipped=$(sed -nE 's/^ *[0-9]+\/[0-9]+ +Test +#[0-9]+: ([^ ]+) .*\*\*\*Skipped.*/\1/p' "$dir/ctest.log")
  for t in $skipped; do
    if printf '%s\n' "${required_tests[@]}" | grep -qx -- "$t"; then
      echo "required test $t was skipped (its output: ctest -R '^$t\$' -V in $dir)"
      exit 1
    fi
  done
  echo "=== $config: done in $((SECONDS - config_start)) s"
done
# libFuzzer targets (frame parser, handshake parser, UTF-8 validator, permessage-deflate's inflate)
# under ASan+UBSan, each for a bounded time on its seed corpus (tests/fuzz/corpus); a crash fails
# the run.
if [ "${HERALD_FUZZ_SECONDS:-30}" != 0 ]; then
  echo "=== fuzz: ${HERALD_FUZZ_SECONDS:-30} s per target"
  FUZZ_SECONDS="${HERALD_FUZZ_SECONDS:-30}" FUZZ_BUILD_DIR="$root/build-fuzz" bash "$root/tests/fuzz/run_fuzzers.sh"
fi
echo "all test configurations passed: $configs"

