# Writes herald's single header, include/single/herald.hpp (pure CMake, run with `cmake -P`).
#
#   cmake -P cmake/amalgamate.cmake               regenerate include/single/herald.hpp (commit it)
#   cmake -DCHECK=ON -P cmake/amalgamate.cmake    fail unless the committed file is current
#                                                 (ctest single-header-fresh); -DFRESH=<file>
#                                                 also writes what it should be, for a diff
#   cmake --build <build dir> --target herald_single   the same as the first line
#
# The single header is include/herald.hpp and include/herald/http_api.hpp with every herald
# header they reach: everything that needs no library beyond Asio. The optional parts
# (herald/tls.hpp: OpenSSL; herald/policy/redis_cluster.hpp: hiredis) stay out and can be
# included after it from include/: every header keeps its include guard in the single
# header, so the real file of a part already in it expands to nothing.
#
# Starting from each input, every quoted `#include "..."` is replaced by the text of that
# header, depth first (each header's dependencies come before it, as the preprocessor sees
# them) and exactly once. A quoted path is resolved against the including file's directory,
# then against ROOT (herald's include/), and must lie inside ROOT. `#include <...>` lines stay
# as they are. Quoted includes are followed even inside `#if` blocks; herald's headers have
# none there. The output holds no date and no absolute path: the same sources give the same
# bytes on any machine.
#
# Every header under ROOT (the single header's directory aside) must have the include guard
# its path names: include/herald/detail/asio.hpp opens with
#   #ifndef HERALD_DETAIL_ASIO_HPP
#   #define HERALD_DETAIL_ASIO_HPP
# (after its leading comment) and ends with `#endif  // HERALD_DETAIL_ASIO_HPP`; a header
# without it is an error here, since without it the optional parts could not be included
# after the single header.
#
# Variables (all optional; tests/packaging uses them on a fixture):
#   ROOT     the include directory (default: include/ next to this script's directory)
#   INPUTS   headers to start from, relative to ROOT (default: herald.hpp;herald/http_api.hpp)
#   OUTPUT   the file to write or check (default: ROOT/single/herald.hpp)
#   VERSION  for the banner (default: project(herald VERSION ...) of ../CMakeLists.txt)
#   CHECK, FRESH   see above
cmake_minimum_required(VERSION 3.20)

get_filename_component(_herald_project "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT DEFINED ROOT)
  set(ROOT "${_herald_project}/include")
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)
if(NOT DEFINED INPUTS)
  set(INPUTS "herald.hpp;herald/http_api.hpp")
endif()
if(NOT DEFINED OUTPUT)
  set(OUTPUT "${ROOT}/single/herald.hpp")
endif()
get_filename_component(OUTPUT "${OUTPUT}" ABSOLUTE)
get_filename_component(_output_dir "${OUTPUT}" DIRECTORY)
if(NOT DEFINED VERSION AND EXISTS "${_herald_project}/CMakeLists.txt" AND ROOT STREQUAL "${_herald_project}/include")
  file(STRINGS "${_herald_project}/CMakeLists.txt" _project_line REGEX "^project\\(herald VERSION [0-9.]+")
  string(REGEX REPLACE "^project\\(herald VERSION ([0-9.]+).*" "\\1" VERSION "${_project_line}")
endif()

# CMake lists split on ';' and treat '[', ']' and '\' specially, so those characters are
# swapped for control characters (never present in herald's sources) while lines are
# handled as list elements, and swapped back when the result is written.
string(ASCII 1 _esc_semi)
string(ASCII 2 _esc_open)
string(ASCII 3 _esc_close)
string(ASCII 4 _esc_bslash)

# The lines of a file as a list, with those characters swapped.
function(_herald_lines path out_var)
  file(READ "${path}" content)
  string(REPLACE "\\" "${_esc_bslash}" content "${content}")
  string(REPLACE ";" "${_esc_semi}" content "${content}")
  string(REPLACE "[" "${_esc_open}" content "${content}")
  string(REPLACE "]" "${_esc_close}" content "${content}")
  string(REGEX REPLACE "\n$" "" content "${content}")
  string(REPLACE "\n" ";" lines "${content}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# The guard a header's path names: herald/detail/asio.hpp -> HERALD_DETAIL_ASIO_HPP.
function(_herald_guard_of path out_var)
  file(RELATIVE_PATH rel "${ROOT}" "${path}")
  string(TOUPPER "${rel}" guard)
  string(REGEX REPLACE "[^A-Z0-9]" "_" guard "${guard}")
  set(${out_var} "${guard}" PARENT_SCOPE)
endfunction()

# Every header under ROOT carries its guard: `#ifndef G` as the first directive, `#define G`
# right after it, `#endif` as the last non-blank line.
file(GLOB_RECURSE _all_headers LIST_DIRECTORIES false "${ROOT}/*.hpp" "${ROOT}/*.ipp")
set(_unguarded "")
foreach(header IN LISTS _all_headers)
  get_filename_component(dir "${header}" DIRECTORY)
  if(dir STREQUAL _output_dir)
    continue()
  endif()
  _herald_guard_of("${header}" guard)
  _herald_lines("${header}" lines)
  set(directives "")
  set(last "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*#")
      list(APPEND directives "${line}")
    endif()
    if(line MATCHES "[^ \t\r]")
      set(last "${line}")
    endif()
  endforeach()
  list(LENGTH directives n)
  set(ok FALSE)
  if(n GREATER_EQUAL 3)
    list(GET directives 0 first)
    list(GET directives 1 second)
    if(first MATCHES "^#ifndef ${guard}[ \t\r]*$" AND second MATCHES "^#define ${guard}[ \t\r]*$"
       AND last MATCHES "^#endif([ \t]|$)")
      set(ok TRUE)
    endif()
  endif()
  if(NOT ok)
    file(RELATIVE_PATH rel "${ROOT}" "${header}")
    string(APPEND _unguarded "\n  ${rel}: #ifndef ${guard} / #define ${guard} ... #endif  // ${guard}")
  endif()
endforeach()
if(_unguarded)
  message(FATAL_ERROR "amalgamate: these headers lack the include guard their path names "
    "(first directive, second directive, last line):${_unguarded}")
endif()

set_property(GLOBAL PROPERTY herald_amalgamate_seen "")

function(_herald_inline path out_var)
  file(RELATIVE_PATH label "${ROOT}" "${path}")
  set_property(GLOBAL APPEND PROPERTY herald_amalgamate_seen "${path}")
  _herald_lines("${path}" lines)
  get_filename_component(dir "${path}" DIRECTORY)
  set(result "// ---- begin ${label} ----\n")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*#[ \t]*pragma[ \t]+once[ \t\r]*(//.*)?$")
      continue()
    endif()
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(name "${CMAKE_MATCH_1}")
      set(target "")
      foreach(base "${dir}" "${ROOT}")
        cmake_path(ABSOLUTE_PATH name BASE_DIRECTORY "${base}" NORMALIZE OUTPUT_VARIABLE candidate)
        if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
          set(target "${candidate}")
          break()
        endif()
      endforeach()
      if(target STREQUAL "")
        message(FATAL_ERROR "amalgamate: ${label} includes \"${name}\", which is not found relative to it or to ${ROOT}")
      endif()
      cmake_path(IS_PREFIX ROOT "${target}" NORMALIZE inside)
      if(NOT inside)
        message(FATAL_ERROR "amalgamate: ${label} includes \"${name}\" (${target}), which is outside ${ROOT}")
      endif()
      get_property(seen GLOBAL PROPERTY herald_amalgamate_seen)
      if(NOT target IN_LIST seen)
        _herald_inline("${target}" inlined)
        string(APPEND result "${inlined}")
      endif()
      continue()
    endif()
    string(APPEND result "${line}\n")
  endforeach()
  string(APPEND result "// ---- end ${label} ----\n")
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

set(body "")
set(_input_names "")
foreach(input IN LISTS INPUTS)
  set(path "${ROOT}/${input}")
  if(NOT EXISTS "${path}")
    message(FATAL_ERROR "amalgamate: ${path} does not exist")
  endif()
  get_property(seen GLOBAL PROPERTY herald_amalgamate_seen)
  if(NOT path IN_LIST seen)
    _herald_inline("${path}" inlined)
    string(APPEND body "${inlined}")
  endif()
  list(APPEND _input_names "${input}")
endforeach()

string(REPLACE "${_esc_semi}" ";" body "${body}")
string(REPLACE "${_esc_open}" "[" body "${body}")
string(REPLACE "${_esc_close}" "]" body "${body}")
string(REPLACE "${_esc_bslash}" "\\" body "${body}")

get_property(seen GLOBAL PROPERTY herald_amalgamate_seen)
list(LENGTH seen count)
list(JOIN _input_names ", " _inputs_text)
set(banner "// herald")
if(DEFINED VERSION AND NOT VERSION STREQUAL "")
  string(APPEND banner " ${VERSION}")
endif()
string(APPEND banner " as one header: ${_inputs_text} with every herald header they reach (${count} in all).\n"
  "// Generated by cmake/amalgamate.cmake (`cmake -P cmake/amalgamate.cmake`); do not edit.\n"
  "// Needs C++20 and standalone Asio (or Boost.Asio with HERALD_USE_BOOST_ASIO), nothing else:\n"
  "//   g++ -std=c++20 -I include/single app.cpp -pthread      (app.cpp: #include <herald.hpp>)\n"
  "// The optional parts can be included after it from include/ (-I include): <herald/tls.hpp>,\n"
  "// <herald/policy/redis_cluster.hpp>. Each header below keeps its include guard, so a header\n"
  "// already in this file and included again from include/ expands to nothing.\n"
  "// Distributed under the Boost Software License, Version 1.0\n"
  "// (see LICENSE or https://www.boost.org/LICENSE_1_0.txt).\n"
  "#ifndef HERALD_SINGLE_HEADER_HPP\n"
  "#define HERALD_SINGLE_HEADER_HPP\n")
set(result "${banner}${body}#endif  // HERALD_SINGLE_HEADER_HPP\n")

set(_output_label "${OUTPUT}")
cmake_path(IS_PREFIX _herald_project "${OUTPUT}" NORMALIZE _output_inside)
if(_output_inside)
  file(RELATIVE_PATH _output_label "${_herald_project}" "${OUTPUT}")
endif()
set(existing "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" existing)
endif()
if(CHECK)
  if(DEFINED FRESH)
    file(WRITE "${FRESH}" "${result}")
  endif()
  if(NOT existing STREQUAL result)
    set(how "cmake -P cmake/amalgamate.cmake")
    if(DEFINED FRESH)
      string(APPEND how "\n(what it should be: ${FRESH}; diff -u ${OUTPUT} ${FRESH})")
    endif()
    message(FATAL_ERROR "${_output_label} is not what the headers under include/ make of it "
      "(a header changed since it was generated). Regenerate it from the source tree and commit it:\n  ${how}")
  endif()
  message(STATUS "${_output_label} is current (${count} headers)")
else()
  # Rewritten only when it changes, so that its time stamp says when its contents did.
  if(NOT existing STREQUAL result)
    file(WRITE "${OUTPUT}" "${result}")
    message(STATUS "amalgamate: wrote ${_output_label} (${count} headers)")
  else()
    message(STATUS "amalgamate: ${_output_label} is already current (${count} headers)")
  endif()
endif()
