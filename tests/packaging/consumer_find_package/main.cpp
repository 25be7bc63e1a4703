// A consumer of the installed package: find_package(herald), herald::herald.
// herald::herald must bring what herald's own build uses; checked before anything is included.
#ifndef ASIO_NO_DEPRECATED
#error "herald::herald did not bring ASIO_NO_DEPRECATED"
#endif
#if defined(__clang__) && !(defined(ASIO_HAS_CO_AWAIT) && defined(ASIO_HAS_STD_COROUTINE))
#error "herald::herald did not bring clang's Asio coroutine macros"
#endif
#include <herald.hpp>

#define HERALD_CONSUMER "find_package"
#include "../echo_roundtrip.ipp"
