#!/usr/bin/env bash
# Packaging tests: herald the way users get it (ctest runs this as the test "packaging").
#
#   bash tests/packaging/run_packaging_tests.sh <herald source dir> <C++ compiler>
#
# Nothing is built beforehand: a fresh clone is enough. Checks, in order:
#   1. the amalgamation (cmake/amalgamate.cmake) on a fixture: nesting, cycles, duplicates,
#      unused headers, two inputs, include guards kept, characters CMake lists treat
#      specially, and a header without its guard refused; the committed single header
#      include/single/herald.hpp preprocesses to exactly the tokens of include/herald.hpp +
#      include/herald/http_api.hpp (that it is byte for byte current is ctest single-header-fresh);
#   2. install right after configure, with no build step: the README's commands
#      (configure with -DHERALD_BUILD_TESTS=OFF, cmake --install) and the defaults with
#      -DCMAKE_INSTALL_PREFIX install the same files; with doctest hidden, a configure with
#      tests off succeeds and one with tests on says how to do without; the prefix is then
#      moved (the package must be relocatable) and must hold no path of the source or build tree;
#   3. in parallel, each consumer built with <C++ compiler> (no sanitizers, -Werror) and run:
#        find_package   tests/packaging/consumer_find_package, CMAKE_PREFIX_PATH=<prefix>
#        subdirectory   tests/packaging/consumer_subdirectory, add_subdirectory(<source dir>)
#        fetchcontent   tests/packaging/consumer_fetchcontent, URL file://<tmp>/herald-src.tar.gz
#                       (these three serve one echo round trip over loopback)
#        single_header  tests/packaging/consumer_single_header/main.cpp (the HTTP push API to a
#                       WebSocket client), compiled by the README's one command line with -I
#                       only a directory holding the committed include/single/herald.hpp, then
#                       again with -Wall -Wextra -Wpedantic -Werror;
#        optional_parts consumer_single_header/optional_parts.cpp: the single header, then
#                       <herald/tls.hpp> and <herald/policy/redis_cluster.hpp> from include/,
#                       one command line (when OpenSSL and hiredis are installed);
#        boost          both single-header consumers with HERALD_USE_BOOST_ASIO (when Boost is
#                       installed);
#        examples       examples/echo_server.cpp and uid_push_server.cpp, unchanged, compiled
#                       (-fsyntax-only) against include/single/herald.hpp: nothing else of
#                       include/ is read but http_api.hpp, which the guard then skips.
# Temporary files go to one mktemp directory, removed at exit (HERALD_KEEP_TMP=1 keeps it).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <herald source dir> <C++ compiler>" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
cxx=$2
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
warnings=(-Wall -Wextra -Wpedantic -Werror)
if "$cxx" --version 2>/dev/null | grep -qi clang; then
  target_flags+=(-DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1)
else
  # g++ 12, a false positive inside Asio's coroutine frame allocator (seen with Boost.Asio at -O2).
  target_flags+=(-Wno-mismatched-new-delete)
  warnings+=(-Wno-mismatched-new-delete)
fi
single="$src/include/single/herald.hpp"
[ -f "$single" ] || fail "$single is missing (it is committed; regenerate it with: cmake -P cmake/amalgamate.cmake)"

echo "== amalgamation"
# A fixture: two inputs (the second reached by the first as well), a cycle (x includes top), a
# header reached twice, a header nobody includes, a <system> include, lines with ; [ ] \ and a
# continuation. Every header has the guard its path names.
fx="$tmp/fixture"
mkdir -p "$fx/include/p/a"
printf '// top\n#ifndef TOP_HPP\n#define TOP_HPP\n#include "p/b.hpp"\n#include <vector>\n  #  include "p/a/x.hpp"  // again\n#endif  // TOP_HPP\n' >"$fx/include/top.hpp"
printf '#ifndef P_B_HPP\n#define P_B_HPP\n#include "a/x.hpp"\nint b[2] = {1, 2}; // [unbalanced\n#define M(x) \\\n  x;\\;\n\n\nchar s[] = "]]\\\\;";\n#endif\n' >"$fx/include/p/b.hpp"
printf '#ifndef P_A_X_HPP\n#define P_A_X_HPP\n#include "../../top.hpp"\nint x;\n#endif  // P_A_X_HPP\n\n' >"$fx/include/p/a/x.hpp"
printf '#ifndef P_UNUSED_HPP\n#define P_UNUSED_HPP\nint optional_part;\n#endif\n' >"$fx/include/p/unused.hpp"
printf '#ifndef P_SECOND_HPP\n#define P_SECOND_HPP\n#include "b.hpp"\nint second;\n#endif\n' >"$fx/include/p/second.hpp"
cmake -DROOT="$fx/include" -DINPUTS="top.hpp;p/second.hpp" -DOUTPUT="$fx/out.hpp" -P "$src/cmake/amalgamate.cmake"
cat >"$fx/expected.hpp" <<'EXPECTED'
#ifndef HERALD_SINGLE_HEADER_HPP
#define HERALD_SINGLE_HEADER_HPP
// ---- begin top.hpp ----
// top
#ifndef TOP_HPP
#define TOP_HPP
// ---- begin p/b.hpp ----
#ifndef P_B_HPP
#define P_B_HPP
// ---- begin p/a/x.hpp ----
#ifndef P_A_X_HPP
#define P_A_X_HPP
int x;
#endif  // P_A_X_HPP

// ---- end p/a/x.hpp ----
int b[2] = {1, 2}; // [unbalanced
#define M(x) \
  x;\;


char s[] = "]]\\;";
#endif
// ---- end p/b.hpp ----
#include <vector>
#endif  // TOP_HPP
// ---- end top.hpp ----
// ---- begin p/second.hpp ----
#ifndef P_SECOND_HPP
#define P_SECOND_HPP
int second;
#endif
// ---- end p/second.hpp ----
#endif  // HERALD_SINGLE_HEADER_HPP
EXPECTED
sed -n '/^#ifndef HERALD_SINGLE_HEADER_HPP$/,$p' "$fx/out.hpp" | diff -u "$fx/expected.hpp" - || fail "amalgamate.cmake: fixture output differs"
grep -q "$fx" "$fx/out.hpp" && fail "amalgamate.cmake: the output names an absolute path"
# A header without its guard (even one nobody includes) is refused, by name.
printf '#pragma once\nint unguarded;\n' >"$fx/include/p/unused.hpp"
if cmake -DROOT="$fx/include" -DINPUTS="top.hpp" -DOUTPUT="$fx/out2.hpp" -P "$src/cmake/amalgamate.cmake" >"$fx/refused.log" 2>&1; then
  fail "amalgamate.cmake accepted a header without an include guard"
fi
grep -q "p/unused.hpp: #ifndef P_UNUSED_HPP" "$fx/refused.log" || { cat "$fx/refused.log"; fail "amalgamate.cmake: the refusal does not name the header and its guard"; }

# The same program: include/herald.hpp + include/herald/http_api.hpp from include/, and the
# committed single header alone, preprocess alike (standalone Asio and Boost.Asio modes).
grep -q '#include "' "$single" && fail "include/single/herald.hpp still has a quoted #include"
mkdir -p "$tmp/alone/single"
cp "$single" "$tmp/alone/single/"
preprocess() {  # <include dir> <headers...>
  local dir=$1
  shift
  printf '#include <%s>\n' "$@" | "$cxx" -std=c++20 -DASIO_NO_DEPRECATED ${boost_mode:+-DHERALD_USE_BOOST_ASIO} \
    -E -P -x c++ -I "$dir" - | grep -v '^[[:space:]]*$'
}
modes=(standalone)
have_boost() {  # Boost 1.74's Asio needs <utility> before it (see include/herald/detail/asio.hpp)
  printf '#include <utility>\n#include <boost/asio.hpp>\n' | "$cxx" -std=c++20 -fsyntax-only -x c++ - 2>/dev/null
}
if have_boost; then modes+=(boost); fi
for mode in "${modes[@]}"; do
  boost_mode=""
  [ "$mode" = boost ] && boost_mode=1
  preprocess "$src/include" herald.hpp herald/http_api.hpp >"$tmp/tree.i"
  preprocess "$tmp/alone/single" herald.hpp >"$tmp/single.i"
  cmp -s "$tmp/tree.i" "$tmp/single.i" ||
    fail "include/single/herald.hpp and include/herald.hpp + herald/http_api.hpp preprocess differently ($mode Asio)"
  echo "ok: the single header preprocesses as include/herald.hpp + herald/http_api.hpp ($mode Asio, $(wc -l <"$tmp/tree.i") lines)"
done
echo "ok: fixture; $(grep -c '^// ---- begin' "$single") headers in include/single/herald.hpp"

echo "== install right after configure (no build step)"
# The README's commands: configure without tests, install. Nothing is built.
cmake -S "$src" -B "$tmp/configured" -DHERALD_BUILD_TESTS=OFF >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; fail "configure -DHERALD_BUILD_TESTS=OFF"; }
cmake --install "$tmp/configured" --prefix "$tmp/staging" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install right after configure"; }
grep -q HERALD_DOCTEST "$tmp/configured/CMakeCache.txt" && fail "a configure with HERALD_BUILD_TESTS=OFF looked for doctest"
# The issue's commands, with the defaults: the same files.
cmake -S "$src" -B "$tmp/configured-defaults" -DCMAKE_INSTALL_PREFIX="$tmp/staging-defaults" >"$tmp/configure-defaults.log" 2>&1 ||
  { cat "$tmp/configure-defaults.log"; fail "configure with the defaults"; }
cmake --install "$tmp/configured-defaults" >"$tmp/install-defaults.log" 2>&1 ||
  { cat "$tmp/install-defaults.log"; fail "cmake --install (defaults) right after configure"; }
diff -r "$tmp/staging" "$tmp/staging-defaults" >/dev/null || fail "the defaults install other files than -DHERALD_BUILD_TESTS=OFF"
# doctest hidden (its directory ignored; Asio's given): tests off configures, tests on says what to do.
doctest_dir=$(printf '#include <doctest/doctest.h>\n' | "$cxx" -M -x c++ - 2>/dev/null | tr ' ' '\n' | grep '/doctest/doctest.h$' | head -1 || true)
asio_dir=$(printf '#include <asio.hpp>\n' | "$cxx" -M -x c++ - 2>/dev/null | tr ' ' '\n' | grep '/asio.hpp$' | head -1 || true)
if [ -n "$doctest_dir" ] && [ -n "$asio_dir" ]; then
  hide=(-DCMAKE_IGNORE_PATH="$(dirname "$(dirname "$doctest_dir")")" -DHERALD_ASIO_INCLUDE_DIR="$(dirname "$asio_dir")")
  cmake -S "$src" -B "$tmp/no-doctest-off" -DHERALD_BUILD_TESTS=OFF "${hide[@]}" >"$tmp/no-doctest-off.log" 2>&1 ||
    { cat "$tmp/no-doctest-off.log"; fail "without doctest, a configure with HERALD_BUILD_TESTS=OFF failed"; }
  if cmake -S "$src" -B "$tmp/no-doctest-on" "${hide[@]}" >"$tmp/no-doctest-on.log" 2>&1; then
    fail "doctest hidden, yet a configure with the tests on succeeded (is it hidden?)"
  fi
  grep -q "HERALD_BUILD_TESTS=OFF" "$tmp/no-doctest-on.log" || { cat "$tmp/no-doctest-on.log"; fail "without doctest, configure does not say -DHERALD_BUILD_TESTS=OFF"; }
  echo "ok: without doctest, tests off configures; tests on says -DHERALD_BUILD_TESTS=OFF"
fi
mv "$tmp/staging" "$tmp/prefix"  # relocated: nothing may point at the staging prefix
prefix="$tmp/prefix"
for f in include/herald.hpp include/herald/ws_session.hpp include/herald/http_api.hpp include/herald_single.hpp \
         lib/cmake/herald/heraldConfig.cmake lib/cmake/herald/heraldConfigVersion.cmake \
         lib/cmake/herald/heraldTargets.cmake; do
  [ -f "$prefix/$f" ] || fail "not installed: $f"
done
[ -e "$prefix/include/single" ] && fail "include/single/ installed as a directory of its own"
cmp -s "$single" "$prefix/include/herald_single.hpp" || fail "the installed herald_single.hpp is not include/single/herald.hpp"
if grep -rlF -e "$src" -e "$tmp/configured" -e "$tmp/staging" "$prefix/lib/cmake/herald"; then
  fail "the installed package names a path of the source, build or staging tree"
fi
echo "ok: $(find "$prefix" -type f | wc -l) files, the same with the defaults"

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
# The committed single header alone in a directory, as someone who copied that one file.
copy_single() {  # <dir>: <dir>/include/single/herald.hpp
  mkdir -p "$1/include/single"
  cp "$single" "$1/include/single/"
}
single_header() {  # [extra flags...]: the README's command line, then with warnings as errors
  local dir="$tmp/single_header$*"
  dir=${dir// /}
  copy_single "$dir"
  cd "$dir"
  local main="$here/consumer_single_header/main.cpp"
  "$cxx" -std=c++20 "$@" -I include/single -M "$main" -pthread >deps
  grep -q "include/single/herald.hpp" deps || fail "include/single/herald.hpp not used"
  if grep -F "$src/include" deps; then fail "a header of include/ was used"; fi
  echo "ok compiled by: $cxx -std=c++20 ${*:+$* }-I include/single main.cpp -pthread"
  "$cxx" -std=c++20 "$@" -I include/single "$main" -pthread -o app
  ./app
  "$cxx" -std=c++20 "$@" "${warnings[@]}" -O2 -I include/single -c "$main" -o main.o
  echo "ok no warning with ${warnings[*]} -O2"
}
optional_parts() {  # [extra flags...]
  local dir="$tmp/optional_parts$*"
  dir=${dir// /}
  copy_single "$dir"
  cd "$dir"
  local main="$here/consumer_single_header/optional_parts.cpp"
  echo "ok compiled by: $cxx -std=c++20 ${*:+$* }-I include/single -I $src/include optional_parts.cpp -pthread -lssl -lcrypto -lhiredis"
  "$cxx" -std=c++20 "$@" "${warnings[@]}" -I include/single -I "$src/include" "$main" -pthread -lssl -lcrypto -lhiredis -o app
  ./app
}
have_optional_libraries() {
  printf '#include <openssl/ssl.h>\n#include <hiredis/hiredis.h>\n' | "$cxx" -fsyntax-only -x c++ - 2>/dev/null
}
boost() {
  single_header -DHERALD_USE_BOOST_ASIO
  if have_optional_libraries; then optional_parts -DHERALD_USE_BOOST_ASIO; fi
}
examples() {
  local dir="$tmp/examples"
  copy_single "$dir"
  local example
  for example in echo_server uid_push_server; do
    "$cxx" -std=c++20 "${warnings[@]}" -I "$dir/include/single" -I "$src/include" -M "$src/examples/$example.cpp" >"$dir/$example.deps"
    grep -q "$dir/include/single/herald.hpp" "$dir/$example.deps" || fail "$example: include/single/herald.hpp not used"
    # From include/ only http_api.hpp is opened, and its guard (defined by the single header) skips it.
    if tr ' ' '\n' <"$dir/$example.deps" | grep -F "$src/include/" | grep -v '/include/herald/http_api.hpp$'; then
      fail "$example: a header of include/ was used beside the single header"
    fi
    "$cxx" -std=c++20 "${warnings[@]}" -I "$dir/include/single" -I "$src/include" -fsyntax-only "$src/examples/$example.cpp"
    echo "ok $example compiles against include/single/herald.hpp"
  done
}

tar -czf "$tmp/herald-src.tar.gz" -C "$src" --transform 's,^,herald-src/,' \
  CMakeLists.txt cmake include LICENSE
sha=$(sha256sum "$tmp/herald-src.tar.gz" | cut -d' ' -f1)

declare -A pids
names=()
start() {  # <name> <command...>: runs the command in the background, its output in <name>.log
  local name=$1
  shift
  ("$@") >"$logs/$name.log" 2>&1 &
  pids[$name]=$!
  names+=("$name")
}
start find_package cmake_consumer find_package -DCMAKE_PREFIX_PATH="$prefix" -DHERALD_EXPECTED_PREFIX="$prefix"
start subdirectory cmake_consumer subdirectory -DCONSUMER_HERALD_SOURCE="$src"
start fetchcontent cmake_consumer fetchcontent -DCONSUMER_HERALD_URL="file://$tmp/herald-src.tar.gz" \
  -DCONSUMER_HERALD_SHA256="$sha"
start single_header single_header
if have_optional_libraries; then
  start optional_parts optional_parts
else
  echo "skipped: optional_parts (OpenSSL or hiredis headers missing: apt-get install libssl-dev libhiredis-dev)"
fi
if have_boost; then
  start boost boost
else
  echo "skipped: boost (Boost.Asio missing: apt-get install libboost-dev)"
fi
start examples examples

failed=()
for name in "${names[@]}"; do
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
