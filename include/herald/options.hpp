// Every limit and deadline of a session, with its default, in one place.
#ifndef HERALD_OPTIONS_HPP
#define HERALD_OPTIONS_HPP
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "http/request.hpp"
#include "metrics.hpp"

namespace herald {

using namespace std::chrono_literals;

// What a session does when a send would take its queue over `send_queue_limit`.
enum class overflow_action {
  close,  // close the slow consumer with 1008 "send queue limit exceeded" (default)
  drop,   // drop the message and count it
};

// A cap on concurrent sessions, shared by every session made with the same options: past
// it, upgrade requests are answered 503 before any WebSocket state exists.
class session_limit {
 public:
  explicit session_limit(std::size_t max_sessions) noexcept : max_(max_sessions) {}
  bool try_acquire() noexcept {
    std::size_t n = live_.load(std::memory_order_relaxed);
    do {
      if (n >= max_) return false;
    } while (!live_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  void release() noexcept { live_.fetch_sub(1, std::memory_order_relaxed); }
  std::size_t live() const noexcept { return live_.load(std::memory_order_relaxed); }
  std::size_t max() const noexcept { return max_; }

 private:
  std::size_t max_;
  std::atomic<std::size_t> live_{0};
};

struct session_options {
  // Largest message accepted from the peer, after reassembly; beyond it: close 1009.
  std::size_t max_message_size = 64 * 1024;
  // Largest HTTP request head of the opening handshake; beyond it: HTTP 431.
  std::size_t max_handshake_size = 8 * 1024;
  // From accept to the end of the opening handshake; then the connection is dropped.
  std::chrono::steady_clock::duration handshake_timeout = 10s;
  // Silence for this long sends a ping; silence for as long again drops the connection
  // (a peer that vanished without FIN is found within twice this time).
  std::chrono::steady_clock::duration idle_timeout = 30s;
  // From sending a close frame to receiving the peer's; then the TCP connection is dropped.
  std::chrono::steady_clock::duration close_timeout = 5s;
  // Bytes of outgoing frames a session may hold unsent (the frames are shared with other
  // sessions, so this bounds what a slow peer pins in memory).
  std::size_t send_queue_limit = 1024 * 1024;
  overflow_action on_overflow = overflow_action::close;
  // Size of the read buffers that sessions borrow from a per-thread pool while data is pending.
  std::size_t read_buffer_size = 16 * 1024;
  // Optional cap on concurrent sessions (see session_limit); none by default.
  std::shared_ptr<session_limit> limit{};
  // Optional answer to plain HTTP requests on the WebSocket port (no `Upgrade: websocket`),
  // e.g. serving a page: return the whole response (it is sent, then the connection is
  // closed), or nullopt for the default 400. Called on the session's thread.
  std::function<std::optional<std::string>(const http::request&)> http_fallback{};
  // Optional counters and gauges that sessions report into (see metrics.hpp).
  std::shared_ptr<herald::metrics> metrics{};
};

}  // namespace herald

#endif  // HERALD_OPTIONS_HPP
