#!/usr/bin/env bash
# Builds herald's libFuzzer targets with clang and runs each for a bounded time on a copy of
# its seed corpus. Exits non-zero if any target finds a crash (the reproducer is kept in
# $FUZZ_OUT/<target>/, with the log).
#
#   FUZZ_SECONDS=60        time per target (-max_total_time)
#   FUZZ_BUILD_DIR=...     build directory (default: build-fuzz at the top of the repository)
#   FUZZ_OUT=...           corpora, crash files and logs (default: $FUZZ_BUILD_DIR/fuzz-out)
#   FUZZ_JOBS=2            build parallelism
#
# Needs clang++-14 and Debian's libclang-rt-14-dev (libFuzzer and the sanitizer runtimes);
# installs the latter with apt-get when it is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
out="${FUZZ_OUT:-$build/fuzz-out}"
jobs="${FUZZ_JOBS:-2}"
targets=(fuzz_frame_parser fuzz_handshake fuzz_utf8)

cxx="$(command -v clang++-14 || command -v clang++ || true)"
if [[ -z "$cxx" ]]; then
  echo "run_fuzzers: clang++ not found (apt-get install clang-14)" >&2
  exit 2
fi
if ! dpkg -s libclang-rt-14-dev >/dev/null 2>&1; then
  echo "run_fuzzers: installing libclang-rt-14-dev" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get install -y libclang-rt-14-dev
fi

cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHERALD_BUILD_FUZZERS=ON -DHERALD_BUILD_BENCHMARKS=OFF >/dev/null
# fuzz_inflate (permessage-deflate) exists when CMake found zlib (Debian: zlib1g-dev).
build_targets="$(cmake --build "$build" --target help)"
if grep -qw fuzz_inflate <<<"$build_targets"; then
  targets+=(fuzz_inflate)
else
  echo "run_fuzzers: zlib not found, fuzz_inflate skipped (apt-get install zlib1g-dev)" >&2
fi
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  exe="$(find "$build" -type f -name "$t" -perm -u+x | head -n 1)"
  if [[ -z "$exe" ]]; then
    echo "run_fuzzers: $t was not built" >&2
    exit 2
  fi
  work="$out/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$here/corpus/$t/"* "$work/corpus/"
  echo "== $t: ${seconds}s on $(ls "$work/corpus" | wc -l) seed files"
  set +e
  # Crashes are written to artifacts/; -max_len keeps inputs near the size of real frames and heads.
  "$exe" "$work/corpus" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 >"$work/log" 2>&1
  rc=$?
  set -e
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$work/log" || true
  echo "   corpus now $(ls "$work/corpus" | wc -l) files"
  if [[ $rc -ne 0 ]] || ls "$work/artifacts/" | grep -q .; then
    echo "run_fuzzers: $t FAILED (exit $rc); artifacts:" >&2
    ls -l "$work/artifacts/" >&2 || true
    grep -E 'ERROR|SUMMARY|==[0-9]+==' "$work/log" | head -n 20 >&2 || true
    echo "   log: $work/log" >&2
    status=1
  fi
done
exit $status
