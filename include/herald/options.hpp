// Every limit and deadline of a session, with its default, in one place.
#ifndef HERALD_OPTIONS_HPP
#define HERALD_OPTIONS_HPP
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deflate_support.hpp"
#include "detail/asio.hpp"
#include "http/request.hpp"
#include "metrics.hpp"

namespace herald {

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

// What the application sees of an upgrade request before it is accepted.
struct upgrade_request {
  const http::request& request;    // method, target, headers (Origin, Cookie, ...)
  asio::ip::tcp::endpoint peer;    // the client's address (unspecified if it could not be read)
};

// The application's answer to an upgrade request: accept, or refuse with an HTTP status.
struct upgrade_decision {
  int status = 0;              // 0: accept; otherwise the HTTP status of the refusal (e.g. 403)
  std::string reason;          // the refusal's body and the session's close_status reason
  std::string extra_headers;   // added to the refusal, each line ending in \r\n

  static upgrade_decision accept() { return {}; }
  static upgrade_decision refuse(int status, std::string reason, std::string extra_headers = {}) {
    return {status, std::move(reason), std::move(extra_headers)};
  }
  bool accepted() const noexcept { return status == 0; }
};

// Inbound rate limit per session, as two token buckets; a session that exceeds either is
// closed with 1008 "rate limit exceeded" (counted in metrics::rate_limited_closes). Zero: off.
struct rate_limit {
  // Messages (data messages and pings) per second, and how many may come at once.
  double messages_per_second = 0;
  double message_burst = 0;  // 0: one second's worth (at least 1)
  // Bytes as received (frame headers included) per second, and the burst. 0: one second's
  // worth, but never less than max_message_size plus a frame header, so that the largest
  // allowed message always passes a full bucket.
  double bytes_per_second = 0;
  double byte_burst = 0;

  bool enabled() const noexcept { return messages_per_second > 0 || bytes_per_second > 0; }
};

struct session_options {
  // Largest message accepted from the peer, after reassembly; beyond it: close 1009.
  std::size_t max_message_size = 64 * 1024;
  // Largest HTTP request head of the opening handshake; beyond it: HTTP 431.
  std::size_t max_handshake_size = 8 * 1024;
  // From accept to the end of the opening handshake; then the connection is dropped.
  std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(10);
  // Silence for this long sends a ping; silence for as long again drops the connection
  // (a peer that vanished without FIN is found within twice this time).
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(30);
  // From sending a close frame to receiving the peer's; then the TCP connection is dropped.
  std::chrono::steady_clock::duration close_timeout = std::chrono::seconds(5);
  // Bytes of outgoing frames that may wait behind the frame being written. A frame of any
  // size is accepted onto an empty queue (its size says nothing about how fast the peer
  // reads); what piles up behind it is bounded. Frames are shared with other sessions, so
  // this bounds what a slow peer pins in memory.
  std::size_t send_queue_limit = 1024 * 1024;
  overflow_action on_overflow = overflow_action::close;
  // Size of the read buffers that sessions borrow from a per-thread pool while data is pending.
  std::size_t read_buffer_size = 16 * 1024;
  // Optional cap on concurrent sessions (see session_limit); none by default.
  std::shared_ptr<session_limit> limit{};
  // Origins (the browser's `Origin` header, e.g. "https://example.com") allowed to open a
  // WebSocket; others are answered 403 before the upgrade. Empty: any origin, and requests
  // without one (non-browser clients). Guards against cross-site WebSocket hijacking.
  std::vector<std::string> allowed_origins{};
  // Optional: sees every upgrade request (after the origin check) and may refuse it with an
  // HTTP status before the 101 (authentication by cookie or header, per-address policies).
  // Called on the session's thread.
  std::function<upgrade_decision(const upgrade_request&)> on_upgrade{};
  // Optional inbound rate limit per session (off by default).
  herald::rate_limit rate_limit{};
  // Optional answer to plain HTTP requests on the WebSocket port (no `Upgrade: websocket`),
  // e.g. serving a page: return the whole response (http::response() builds one; it is
  // sent, then the connection is closed), or nullopt for the default 400. Called on the
  // session's thread.
  std::function<std::optional<std::string>(const http::request&)> http_fallback{};
  // Optional counters and gauges that sessions report into (see metrics.hpp). The registries
  // count logins and uids into the same object (registry_options::metrics need not be set).
  std::shared_ptr<herald::metrics> metrics{};
  // Optional permessage-deflate (RFC 7692): set with herald::enable_deflate(options) from
  // herald/deflate.hpp (needs zlib). Without it, every offer of the extension is declined.
  std::shared_ptr<const deflate_support> deflate{};
};

}  // namespace herald

#endif  // HERALD_OPTIONS_HPP
