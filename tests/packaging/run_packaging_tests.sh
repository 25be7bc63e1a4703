#!/usr/bin/env bash
# Packaging tests: herald the way users get it (ctest runs this as the test "packaging").
#
#   bash tests/packaging/run_packaging_tests.sh <herald build dir> <herald source dir> <C++ compiler>
#
# The build dir must be built: its default target generates single_include/herald_single.hpp
# (target herald_single), which the install step needs. Checks, in order:
#   1. the amalgamation: cmake/amalgamate.cmake on a fixture (nesting, cycles, duplicates,
#      unused headers, characters CMake lists treat specially); the built herald_single.hpp is
#      what a fresh run makes of the current include/; it preprocesses to exactly the tokens
#      of include/herald.hpp;
#   2. cmake --install <build dir> into a temporary prefix, which is then moved (the package
#      must be relocatable) and must hold no path of the source or build tree;
#   3. in parallel, each consumer built with <C++ compiler> (no sanitizers, -Werror) and run
#      (it serves one echo round trip over loopback):
#        find_package   tests/packaging/consumer_find_package, CMAKE_PREFIX_PATH=<prefix>
#        subdirectory   tests/packaging/consumer_subdirectory, add_subdirectory(<source dir>)
#        fetchcontent   tests/packaging/consumer_fetchcontent, URL file://<tmp>/herald-src.tar.gz
#        single_header  tests/packaging/consumer_single_header/main.cpp, one compiler command,
#                       -I only a directory holding the installed herald_single.hpp
#        examples       examples/echo_server.cpp and uid_push_server.cpp, unchanged, compiled
#                       (-fsyntax-only) against a shim herald.hpp that includes herald_single.hpp
# Temporary files go to one mktemp directory, removed at exit (HERALD_KEEP_TMP=1 keeps it).
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 <herald build dir> <herald source dir> <C++ compiler>" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cxx=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-packaging.XXXXXX")
cleanup() {
  if [ "${HERALD_KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# What herald::herald must put on a consumer's compile line, however it is consumed.
target_flags=(-DASIO_NO_DEPRECATED)
if "$cxx" --version 2>/dev/null | grep -qi clang; then
  compiler_flags=()
  target_flags+=(-DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1)
else
  compiler_flags=(-Wno-mismatched-new-delete)  # g++ 12, a false positive inside Asio
  target_flags+=(-Wno-mismatched-new-delete)
fi
strict=(-std=c++20 -pthread -Wall -Wextra -Wpedantic -Werror "${compiler_flags[@]}")
single="$build/single_include/herald_single.hpp"
[ -f "$single" ] || fail "$single is missing: build $build first (its default target includes herald_single)"

echo "== amalgamation"
# A fixture: a cycle (x includes top), a header reached twice, a header nobody includes, a
# <system> include, and lines with ; [ ] \ and a continuation.
fx="$tmp/fixture"
mkdir -p "$fx/include/p/a"
printf '#pragma once\n#include "p/b.hpp"\n#include <vector>\n  #  include "p/a/x.hpp"  // again\n' >"$fx/include/top.hpp"
printf '#pragma once\n#include "a/x.hpp"\nint b[2] = {1, 2}; // [unbalanced\n#define M(x) \\\n  x;\\;\n\n\nchar s[] = "]]\\\\;";\n' >"$fx/include/p/b.hpp"
printf '  #pragma   once  \n#include "../../top.hpp"\nint x;\n' >"$fx/include/p/a/x.hpp"
printf '#pragma once\nint optional_part;\n' >"$fx/include/p/unused.hpp"
cmake -DINPUT="$fx/include/top.hpp" -DOUTPUT="$fx/out.hpp" -P "$src/cmake/amalgamate.cmake"
cat >"$fx/expected.hpp" <<'EOF'
#pragma once
// ---- begin top.hpp ----
// ---- begin p/b.hpp ----
// ---- begin p/a/x.hpp ----
int x;
// ---- end p/a/x.hpp ----
int b[2] = {1, 2}; // [unbalanced
#define M(x) \
  x;\;


char s[] = "]]\\;";
// ---- end p/b.hpp ----
#include <vector>
// ---- end top.hpp ----
EOF
sed -n '/^#pragma once$/,$p' "$fx/out.hpp" | diff -u "$fx/expected.hpp" - || fail "amalgamate.cmake: fixture output differs"

# The built file is current: a fresh amalgamation of include/ equals it (banner line aside).
cmake -DINPUT="$src/include/herald.hpp" -DOUTPUT="$tmp/fresh/herald_single.hpp" -P "$src/cmake/amalgamate.cmake"
diff -q <(tail -n +2 "$single") <(tail -n +2 "$tmp/fresh/herald_single.hpp") >/dev/null ||
  fail "$single is stale: rebuild $build (target herald_single)"
grep -q '#include "' "$single" && fail "herald_single.hpp still has a quoted #include"
# The same program: herald.hpp from include/ and herald_single.hpp alone preprocess alike.
mkdir -p "$tmp/alone"
cp "$single" "$tmp/alone/"
preprocess() {  # <header> <include dir>
  printf '#include <%s>\n' "$1" | "$cxx" -std=c++20 -DASIO_NO_DEPRECATED -E -P -x c++ -I "$2" - | grep -v '^[[:space:]]*$'
}
preprocess herald.hpp "$src/include" >"$tmp/tree.i"
preprocess herald_single.hpp "$tmp/alone" >"$tmp/single.i"
cmp -s "$tmp/tree.i" "$tmp/single.i" || fail "herald_single.hpp and include/herald.hpp preprocess differently"
echo "ok: fixture; current; $(grep -c '^// ---- begin' "$single") headers; preprocesses as include/herald.hpp ($(wc -l <"$tmp/tree.i") lines)"

echo "== install"
cmake --install "$build" --prefix "$tmp/staging" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
mv "$tmp/staging" "$tmp/prefix"  # relocated: nothing may point at the staging prefix
prefix="$tmp/prefix"
for f in include/herald.hpp include/herald/ws_session.hpp include/herald_single.hpp \
         lib/cmake/herald/heraldConfig.cmake lib/cmake/herald/heraldConfigVersion.cmake \
         lib/cmake/herald/heraldTargets.cmake; do
  [ -f "$prefix/$f" ] || fail "not installed: $f"
done
cmp -s "$single" "$prefix/include/herald_single.hpp" || fail "installed herald_single.hpp differs from the built one"
if grep -rlF -e "$src" -e "$build" -e "$tmp/staging" "$prefix/lib/cmake/herald"; then
  fail "the installed package names a path of the source, build or staging tree"
fi
echo "ok: $(find "$prefix" -type f | wc -l) files"

echo "== consumers ($cxx)"
logs="$tmp/logs"
mkdir -p "$logs"
cmake_consumer() {  # <name> <cmake args...>: configure, build, run ./app (and any probes)
  local name=$1
  shift
  local dir="$tmp/$name"
  cmake -S "$here/consumer_$name" -B "$dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@"
  cmake --build "$dir" -j 2
  # The compile line of main.cpp carries herald::herald's usage requirements.
  local line flag
  line=$(grep -F '"command"' "$dir/compile_commands.json" | grep -F "consumer_$name/main.cpp")
  [[ $line == *"++20 "* ]] || fail "$name: main.cpp is not compiled as C++20: $line"
  for flag in "${target_flags[@]}"; do
    [[ $line == *" $flag "* ]] || fail "$name: main.cpp is compiled without $flag: $line"
  done
  echo "ok compile line has C++20 ${target_flags[*]}"
  "$dir/app"
  local probe
  for probe in "$dir"/*_probe; do
    if [ -x "$probe" ]; then "$probe"; fi
  done
}
single_header() {
  local dir="$tmp/single_header"
  mkdir -p "$dir/include"
  cp "$prefix/include/herald_single.hpp" "$dir/include/"
  local main="$here/consumer_single_header/main.cpp"
  "$cxx" "${strict[@]}" -I "$dir/include" -M "$main" >"$dir/deps"
  grep -q "$dir/include/herald_single.hpp" "$dir/deps" || fail "herald_single.hpp not used"
  if grep -E '/include/herald(\.hpp|/)' "$dir/deps"; then fail "a header of include/ was used"; fi
  echo "$cxx ${strict[*]} -I $dir/include $main -o $dir/app"
  "$cxx" "${strict[@]}" -I "$dir/include" "$main" -o "$dir/app"
  "$dir/app"
}
examples() {
  local dir="$tmp/examples"
  mkdir -p "$dir/single" "$dir/shim"
  cp "$prefix/include/herald_single.hpp" "$dir/single/"
  printf '#include "herald_single.hpp"\n' >"$dir/shim/herald.hpp"
  local example
  for example in echo_server uid_push_server; do
    "$cxx" "${strict[@]}" -I "$dir/shim" -I "$dir/single" -M "$src/examples/$example.cpp" >"$dir/$example.deps"
    grep -q "$dir/single/herald_single.hpp" "$dir/$example.deps" || fail "$example: herald_single.hpp not used"
    if grep -E '/include/herald(\.hpp|/)' "$dir/$example.deps"; then fail "$example: a header of include/ was used"; fi
    "$cxx" "${strict[@]}" -I "$dir/shim" -I "$dir/single" -fsyntax-only "$src/examples/$example.cpp"
    echo "ok $example compiles against herald_single.hpp alone"
  done
}

tar -czf "$tmp/herald-src.tar.gz" -C "$src" --transform 's,^,herald-src/,' \
  CMakeLists.txt cmake include LICENSE
sha=$(sha256sum "$tmp/herald-src.tar.gz" | cut -d' ' -f1)

declare -A pids
(cmake_consumer find_package -DCMAKE_PREFIX_PATH="$prefix" -DHERALD_EXPECTED_PREFIX="$prefix") >"$logs/find_package.log" 2>&1 &
pids[find_package]=$!
(cmake_consumer subdirectory -DCONSUMER_HERALD_SOURCE="$src") >"$logs/subdirectory.log" 2>&1 &
pids[subdirectory]=$!
(cmake_consumer fetchcontent -DCONSUMER_HERALD_URL="file://$tmp/herald-src.tar.gz" -DCONSUMER_HERALD_SHA256="$sha") \
  >"$logs/fetchcontent.log" 2>&1 &
pids[fetchcontent]=$!
(single_header) >"$logs/single_header.log" 2>&1 &
pids[single_header]=$!
(examples) >"$logs/examples.log" 2>&1 &
pids[examples]=$!

failed=()
for name in find_package subdirectory fetchcontent single_header examples; do
  if wait "${pids[$name]}"; then
    echo "ok: $name"
    grep -E '^(ok |-- herald |-- component )' "$logs/$name.log" | sed 's/^/    /'
  else
    failed+=("$name")
    echo "FAIL: $name; its log:"
    sed 's/^/    /' "$logs/$name.log"
  fi
done
[ ${#failed[@]} -eq 0 ] || fail "consumers: ${failed[*]}"
echo "packaging: all passed"
