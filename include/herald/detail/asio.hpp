// The one place herald includes Asio: standalone Asio by default, Boost.Asio when
// HERALD_USE_BOOST_ASIO is defined (the CMake option of the same name defines it).
//
// herald's code and its examples spell Asio as `asio::` and error codes as herald::error_code, so
// one source serves both modes:
//   standalone: herald::asio is ::asio, herald::error_code is std::error_code;
//   Boost:      herald::asio is boost::asio, herald::error_code is boost::system::error_code, and a
//               global `namespace asio = boost::asio;` alias lets application code written for
//               standalone Asio compile unchanged (define HERALD_NO_GLOBAL_ASIO_ALIAS to opt out).
#ifndef HERALD_DETAIL_ASIO_HPP
#define HERALD_DETAIL_ASIO_HPP
#include <cerrno>
#include <system_error>
#include <type_traits>
#include <typeinfo>

#if defined(HERALD_USE_BOOST_ASIO)
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
// clang 14 has C++20 coroutines, but Asio does not detect them by itself.
#define BOOST_ASIO_HAS_CO_AWAIT 1
#define BOOST_ASIO_HAS_STD_COROUTINE 1
#endif
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio.hpp>
#include <boost/system/system_error.hpp>
#if !defined(HERALD_NO_GLOBAL_ASIO_ALIAS)
namespace asio = boost::asio;
#endif
namespace herald {
namespace asio = boost::asio;
using error_code = boost::system::error_code;
using system_error = boost::system::system_error;
}  // namespace herald
#else
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#define ASIO_HAS_STD_COROUTINE 1
#endif
#include <asio.hpp>
namespace herald {
namespace asio = ::asio;
using error_code = std::error_code;
using system_error = std::system_error;
}  // namespace herald
#endif

namespace herald::detail {

// The executor a polymorphic executor wraps, if it is a `Target`; else nullptr. (Asio's
// any_executor::target<T>() does not check the type itself: it casts whatever it holds.)
template <class Target, class Executor>
const Target* target_of(const Executor& ex) noexcept {
  if constexpr (std::is_same_v<Executor, Target>) {
    return &ex;
  } else if constexpr (requires { ex.target_type(); }) {
    return ex.target_type() == typeid(Target) ? ex.template target<Target>() : nullptr;
  } else {
    return nullptr;
  }
}

// True when the caller runs on `ex`'s thread, so work for it may run inline instead of posting.
template <class Executor>
bool running_in(const Executor& ex) noexcept {
  if constexpr (requires { ex.running_in_this_thread(); }) {
    return ex.running_in_this_thread();
  } else {
    if (auto* io = target_of<asio::io_context::executor_type>(ex)) return io->running_in_this_thread();
    if (auto* st = target_of<asio::strand<asio::io_context::executor_type>>(ex)) return st->running_in_this_thread();
    if (auto* sa = target_of<asio::strand<asio::any_io_executor>>(ex)) return sa->running_in_this_thread();
    return false;
  }
}

template <class T>
struct is_strand_type : std::false_type {};
template <class Inner>
struct is_strand_type<asio::strand<Inner>> : std::true_type {};

// True for a strand, or a polymorphic executor holding one: its handlers may run on any of the
// context's threads, so nothing may be left in a thread_local for "the end of this round".
template <class Executor>
bool is_strand(const Executor& ex) noexcept {
  if constexpr (is_strand_type<Executor>::value) return true;
  else return target_of<asio::strand<asio::io_context::executor_type>>(ex) || target_of<asio::strand<asio::any_io_executor>>(ex);
}

// ENFILE as an error code of either mode (Asio names EMFILE, not ENFILE).
inline bool is_system_file_table_full(const error_code& ec) noexcept {
  return ec.value() == ENFILE && ec.category() == asio::error::get_system_category();
}

}  // namespace herald::detail

#endif  // HERALD_DETAIL_ASIO_HPP
