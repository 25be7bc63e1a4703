// --deflate for the example servers: permessage-deflate (RFC 7692) with herald/deflate.hpp,
// which needs zlib. examples/CMakeLists.txt defines HERALD_EXAMPLE_DEFLATE=1 and links zlib
// when it finds it; without it the option says so and the server does not start (like
// --tls-cert without OpenSSL).
#pragma once
#include <herald.hpp>

#include <cstdio>
#include <cstdlib>

#if HERALD_EXAMPLE_DEFLATE
#include <herald/deflate.hpp>
#endif

// Parsing --deflate: true; built without zlib, the error and exit 2 (so that even
// `--deflate --help` tells whether this build has it).
inline bool deflate_option([[maybe_unused]] const char* program) {
#if HERALD_EXAMPLE_DEFLATE
  return true;
#else
  std::fprintf(stderr,
               "%s: built without zlib, so --deflate is not available "
               "(Debian: apt-get install zlib1g-dev, then rebuild)\n",
               program);
  std::exit(2);
#endif
}

// Lets sessions made with `so` accept permessage-deflate with herald's defaults: messages of
// 256 bytes and more are compressed once for all their deflate receivers, no context
// takeover either way (no zlib state per session). Only after deflate_option() said yes.
inline void enable_example_deflate([[maybe_unused]] herald::session_options& so) {
#if HERALD_EXAMPLE_DEFLATE
  herald::enable_deflate(so);
#endif
}
