// An accept loop that survives running out of file descriptors.
#ifndef HERALD_LISTEN_HPP
#define HERALD_LISTEN_HPP
#include <chrono>
#include <functional>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/asio.hpp"

namespace herald {

struct accept_loop_options {
  // Pause after accept fails for lack of descriptors (EMFILE/ENFILE/ENOBUFS/ENOMEM), so the
  // loop waits for sessions to end instead of spinning on a listening socket that stays readable.
  std::chrono::steady_clock::duration backoff = std::chrono::milliseconds(100);
  // Executors to place accepted sockets on, in turn (one per thread for multi_thread);
  // empty: the acceptor's own.
  std::vector<asio::any_io_executor> executors;
  // Told of every failed accept before the loop goes on (to log it or count it); optional.
  std::function<void(const error_code&)> on_error;
};

// Accepts until the acceptor is closed, handing every connection to `on_socket` (which
// typically co_spawns a session coroutine). Returns when the acceptor is closed.
template <class OnSocket>
asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor, OnSocket on_socket, accept_loop_options options = {}) {
  asio::steady_timer pause(acceptor.get_executor());
  std::size_t turn = 0;
  while (acceptor.is_open()) {
    error_code ec;
    const auto& executors = options.executors;
    auto ex = executors.empty() ? acceptor.get_executor() : executors[turn++ % executors.size()];
    asio::ip::tcp::socket socket = co_await acceptor.async_accept(ex, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      on_socket(std::move(socket));
      continue;
    }
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (options.on_error) options.on_error(ec);
    if (ec == asio::error::no_descriptors || detail::is_system_file_table_full(ec) ||
        ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
      pause.expires_after(options.backoff);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    // Other errors (ECONNABORTED, EPERM from a firewall, ...) concern one connection only.
  }
}

}  // namespace herald

#endif  // HERALD_LISTEN_HPP
