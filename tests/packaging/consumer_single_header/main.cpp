// A consumer of the single header alone: compiled with -I pointing only at a directory
// holding herald_single.hpp (no include/, no CMake), as someone who copied that one file.
#include "herald_single.hpp"

#define HERALD_CONSUMER "single_header"
#include "../echo_roundtrip.ipp"
