// The one place herald includes Asio.
#pragma once
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
// clang 14 has C++20 coroutines, but Asio 1.22 does not detect them by itself.
#define ASIO_HAS_CO_AWAIT 1
#define ASIO_HAS_STD_COROUTINE 1
#endif
#include <asio.hpp>

namespace herald::detail {

// True when the caller runs on `ex`'s thread, so work for it may run inline instead of posting.
template <class Executor>
bool running_in(const Executor& ex) noexcept {
  if constexpr (requires { ex.running_in_this_thread(); }) {
    return ex.running_in_this_thread();
  } else {
    if (auto* io = ex.template target<asio::io_context::executor_type>()) return io->running_in_this_thread();
    if (auto* st = ex.template target<asio::strand<asio::io_context::executor_type>>()) return st->running_in_this_thread();
    if (auto* sa = ex.template target<asio::strand<asio::any_io_executor>>()) return sa->running_in_this_thread();
    return false;
  }
}

}  // namespace herald::detail
