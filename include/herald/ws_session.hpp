// ws_session<Stream>: one WebSocket connection as an awaitable object.
//
//   auto ws = co_await herald::accept_websocket(std::move(socket), options);
//   while (auto msg = co_await ws->read()) ws->send(herald::message::text(*msg));
//
// The reader is the caller's coroutine; writes are driven internally and never block the
// caller: send() puts a shared frame in a bounded queue, and at the end of the current round
// of handlers everything queued leaves in one gathered, non-blocking write. Normal ends
// (close frames, timeouts, protocol errors, lost peers) are values: read() returns an empty
// result carrying a close_status.
#ifndef HERALD_WS_SESSION_HPP
#define HERALD_WS_SESSION_HPP
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "detail/asio.hpp"
#include "detail/deadline_wheel.hpp"
#include "detail/read_buffer.hpp"
#include "detail/session_deflate.hpp"
#include "detail/session_hub.hpp"
#include "message.hpp"
#include "options.hpp"
#include "websocket/handshake.hpp"
#include "websocket/parser.hpp"

namespace herald {

// Why a session ended. `code` is the WebSocket close code (sent or received; 1006 when the
// connection was lost without a close frame; 0 when no WebSocket was ever opened). A refused
// or answered upgrade request has its HTTP status in `http_status` (400, 403, 426, 431, 503,
// or the status of an http_fallback answer), kept apart from close codes.
struct close_status {
  std::uint16_t code = 0;
  std::string reason;
  int http_status = 0;
};

// A whole message received from the peer.
struct incoming {
  std::string data;
  bool binary = false;
  std::string_view text() const noexcept { return data; }
  operator std::string_view() const noexcept { return data; }
};

// A value or, when there is none, the close_status that says why.
template <class T>
class result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  result(close_status why) : v_(std::in_place_index<1>, std::move(why)) {}
  explicit operator bool() const noexcept { return v_.index() == 0; }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  const close_status& status() const { return std::get<1>(v_); }

 private:
  std::variant<T, close_status> v_;
};

using read_result = result<incoming>;

// What became of one send().
enum class send_result : std::uint8_t {
  queued,   // written or queued on the session's thread
  posted,   // handed to the session's thread (called from another thread)
  dropped,  // the queue was full (counted; the session may be closing as a slow consumer)
  closed,   // the session no longer sends
  invalid,  // refused: an empty message (e.g. message::text of bytes that are not UTF-8)
};

struct session_stats {
  std::uint64_t messages_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t dropped = 0;          // messages refused because the queue was full or closing
  std::uint64_t overflow_closes = 0;  // 1 when this session was closed as a slow consumer
};

namespace detail {
// Plain sockets get the fast paths: wait for readiness before borrowing a buffer, and
// write with a non-blocking send.
template <class S>
concept raw_socket = requires(S& s, error_code& ec) {
  s.non_blocking(true, ec);
  s.native_handle();
  S::wait_read;
};

// TLS streams (asio::ssl::stream<...>) handshake before the HTTP upgrade.
template <class S>
concept tls_stream = requires(S& s) {
  s.next_layer();
  S::server;
};

template <class S>
auto& lowest_layer(S& s) {
  if constexpr (raw_socket<S>) return s;
  else return s.lowest_layer();
}
}  // namespace detail

// Per-session application data for sessions that need none.
struct no_user_data {};

namespace detail {
// What the registry policies may do to a session that applications may not: deliver on the
// session's own thread without the thread check, and move its deadline between phases.
struct session_access;
}  // namespace detail

// `UserData` is the application's own state carried by each session (like uWebSockets'
// ws<UserData>): typed, default-constructed, reached with data().
template <class Stream = asio::ip::tcp::socket, class UserData = no_user_data>
class ws_session : public std::enable_shared_from_this<ws_session<Stream, UserData>>, private detail::deadline_hook {
  friend class detail::deadline_wheel<ws_session>;
  friend class detail::session_hub<ws_session>;
  friend struct detail::session_access;

 public:
  using stream_type = Stream;
  using user_data_type = UserData;
  using executor_type = typename Stream::executor_type;
  using clock = std::chrono::steady_clock;

  ws_session(Stream stream, std::shared_ptr<const session_options> options, ws::role r)
      : stream_(std::move(stream)),
        options_(std::move(options)),
        parser_(r, ws::parser_limits{options_->max_message_size}),
        role_(r),
        write_through_(detail::is_strand(stream_.get_executor())) {
    if (!write_through_) hub_ = &detail::session_hub<ws_session>::of(stream_.get_executor());
    if constexpr (detail::raw_socket<Stream>) {
      error_code ec;
      stream_.non_blocking(true, ec);
      stream_.set_option(asio::ip::tcp::no_delay(true), ec);
    }
  }
  ws_session(const ws_session&) = delete;
  ws_session& operator=(const ws_session&) = delete;
  ~ws_session() {
    if (wheel_) wheel_->cancel(*this);
    if (holds_limit_slot_) options_->limit->release();
  }

  // Server side: runs the opening handshake within options.handshake_timeout. Bad requests are
  // answered with an HTTP error (400 with the reason, 426 for a wrong version, 431 for an
  // oversize head) and give nullptr; `why` (optional) tells what happened.
  [[nodiscard]] static asio::awaitable<std::shared_ptr<ws_session>> accept(Stream stream, std::shared_ptr<const session_options> options,
                                                                           close_status* why = nullptr) {
    auto self = std::make_shared<ws_session>(std::move(stream), std::move(options), ws::role::server);
    const bool ok = co_await self->server_handshake();
    if (why) *why = self->status_;
    co_return ok ? self : nullptr;
  }

  // Client side (tests, benchmarks, server-to-server): sends the upgrade request for `host`
  // and `target` over a connected stream and checks the answer.
  [[nodiscard]] static asio::awaitable<std::shared_ptr<ws_session>> connect(Stream stream, std::string host, std::string target,
                                                                            std::shared_ptr<const session_options> options,
                                                                            close_status* why = nullptr) {
    auto self = std::make_shared<ws_session>(std::move(stream), std::move(options), ws::role::client);
    const bool ok = co_await self->client_handshake(host, target);
    if (why) *why = self->status_;
    co_return ok ? self : nullptr;
  }

  // The next whole message, or, once the session has ended, an empty result with the reason.
  // Pings are answered and the closing handshake is completed while reading. One reader at a
  // time. An Asio asynchronous operation with the completion signature void(read_result):
  // `co_await ws->read()` by default, or any completion token (a callback, asio::deferred,
  // use_awaitable of another executor...). The handler runs on its associated executor
  // (default: the session's), never inside the call to read(). A read is not cancellable on
  // its own (cancellation slots are not honoured; `read() || timer` waits for the read): the
  // session's deadlines (idle_timeout) or close()/drop() end it.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto read(CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(read_result)>(start_read{this}, token);
  }
  // Sends a message from any thread; never blocks. On the session's own thread it is written
  // through or queued at once; from elsewhere it is posted there. An empty message (as
  // message::text makes of bytes that are not UTF-8) is refused: send_result::invalid.
  send_result send(message m) {
    if (!m) return send_result::invalid;
    if (detail::running_in(stream_.get_executor())) return send_here(std::move(m));
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), m = std::move(m)]() mutable {
      self->send_here(std::move(m));
    });
    return send_result::posted;
  }
  // A text message: `text` must be UTF-8 (RFC 6455 section 8.1), else send_result::invalid
  // and nothing is sent.
  send_result send(std::string_view text) { return send(message::text(text)); }
  // A binary message: any bytes.
  send_result send_binary(std::string_view bytes) { return send(message::binary(bytes)); }
  send_result send_binary(std::span<const std::uint8_t> bytes) { return send(message::binary(bytes)); }

  // Starts the closing handshake from any thread; read() returns once it is done.
  void close(std::uint16_t code = ws::close_code::normal, std::string reason = {}) {
    if (detail::running_in(stream_.get_executor())) return start_close(code, std::move(reason));
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), code, reason = std::move(reason)]() mutable {
      self->start_close(code, std::move(reason));
    });
  }

  // Ends the TCP connection at once, without a closing handshake (read() then returns 1006,
  // unless the session had already ended for another reason), from any thread. `reset`:
  // send a TCP RST (SO_LINGER 0) instead of a FIN.
  void drop(bool reset = false) {
    auto now = [self = this->shared_from_this(), reset] {
      if (self->state_ == state::closed) return;
      if (reset) {  // SO_LINGER 0, then close: an RST and no FIN
        error_code ec;
        auto& sock = detail::lowest_layer(self->stream_);
        sock.set_option(asio::socket_base::linger(true, 0), ec);
        sock.close(ec);
      }
      self->abort(ws::close_code::abnormal, reset ? "dropped with a reset" : "dropped");
    };
    if (detail::running_in(stream_.get_executor())) now();
    else asio::post(stream_.get_executor(), std::move(now));
  }

  bool is_open() const noexcept { return state_ == state::open && !close_sent_; }
  const close_status& status() const noexcept { return status_; }
  const session_stats& stats() const noexcept { return stats_; }
  std::size_t queued_bytes() const noexcept { return queued_bytes_; }
  const std::string& target() const noexcept { return target_; }
  // Was permessage-deflate negotiated at the opening handshake? [deflate hook 5]
  bool deflate_negotiated() const noexcept { return deflate_.negotiated(); }
  const session_options& options() const noexcept { return *options_; }
  executor_type get_executor() noexcept { return stream_.get_executor(); }
  // The peer's address (unspecified once the connection is closed).
  asio::ip::tcp::endpoint remote_endpoint() const noexcept {
    error_code ec;
    auto ep = detail::lowest_layer(const_cast<Stream&>(stream_)).remote_endpoint(ec);
    return ec ? asio::ip::tcp::endpoint{} : ep;
  }
  // The application's data for this session. Touch it on the session's thread.
  UserData& data() noexcept { return user_data_; }
  const UserData& data() const noexcept { return user_data_; }

 private:
  enum class state : std::uint8_t { handshake, open, closed };
  enum class phase : std::uint8_t { none, handshake, first_message, idle, closing };

  // Delivery from the session's own thread (the registries, a pong): no thread check. A frame
  // onto an empty queue is always taken, whatever its size; the limit bounds the bytes that
  // wait behind the frame being written.
  send_result send_here(message m) {
    if (state_ != state::open || close_sent_) {
      ++stats_.dropped;
      count(metrics::dropped);
      return send_result::closed;
    }
    // [deflate hook 4] a permessage-deflate peer gets the message's shared compressed frame.
    m = deflate_.outgoing(std::move(m), *options_);
    if (queue_head_ != queue_.size() &&
        queued_bytes_ - queue_[queue_head_].frame_size() + m.frame_size() > options_->send_queue_limit) {
      ++stats_.dropped;
      count(metrics::dropped);
      if (options_->on_overflow == overflow_action::close) {
        stats_.overflow_closes = 1;
        count(metrics::slow_consumer_closes);
        discard_unstarted();
        start_close(ws::close_code::policy_violation, "send queue limit exceeded");
      }
      return send_result::dropped;
    }
    enqueue(std::move(m));
    return send_result::queued;
  }

  // Arms a deadline for the next message (registry::login); then back to idle checks.
  void expect_message_within(clock::duration d) { arm(phase::first_message, d); }
  void expect_idle() { arm(phase::idle, options_->idle_timeout); }

  // ---- reading: the read() operation ----

  // The first step touches the session's buffers and socket: on the session's thread, so
  // read() called from elsewhere (a coroutine on another context) starts there.
  struct start_read {
    ws_session* session;
    template <class Handler>
    void operator()(Handler&& handler) const {
      read_op<std::decay_t<Handler>> op(session->shared_from_this(), std::forward<Handler>(handler));
      if (detail::running_in(session->stream_.get_executor())) return op.start();
      asio::post(session->stream_.get_executor(), [op = std::move(op)]() mutable { op.start(); });
    }
  };

  // One read(): parse what is buffered; otherwise wait (for readiness on a plain socket, so an
  // idle session holds no read buffer; for bytes on a TLS stream) and parse again. It is the
  // completion handler of the socket operation it waits on, so while a session idles the only
  // per-session state of its read is this object inside Asio's reactor operation. (Asio's
  // epoll reactor is edge-triggered: each wait for readiness re-arms the descriptor with one
  // epoll_ctl; a read started instead would cost one recv that finds nothing. See
  // benchmarks/README.md.)
  template <class Handler>
  class read_op {
   public:
    read_op(std::shared_ptr<ws_session> s, Handler h) : session_(std::move(s)), handler_(std::move(h)) {
      // The reactor keeps the session's context busy; a handler on another context needs its own work.
      const auto ex = asio::get_associated_executor(handler_, session_->stream_.get_executor());
      if (&asio::query(ex, asio::execution::context) != &asio::query(session_->stream_.get_executor(), asio::execution::context))
        work_ = std::make_unique<work_guard>(asio::prefer(ex, asio::execution::outstanding_work.tracked));
    }
    read_op(read_op&&) noexcept = default;

    // The associated executor and allocator are the handler's (use_awaitable: the coroutine's
    // recycling allocator for the reactor's operation).
    using executor_type = asio::associated_executor_t<Handler, typename ws_session::executor_type>;
    executor_type get_executor() const noexcept {
      return asio::get_associated_executor(handler_, session_->stream_.get_executor());
    }
    using allocator_type = asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept { return asio::get_associated_allocator(handler_); }

    void start() { step(error_code{}, true); }

    // A plain socket became readable.
    void operator()(error_code ec) {
      if (!ec) session_->read_available(ec);
      step(ec, false);
    }
    // Bytes from a TLS stream.
    void operator()(error_code ec, std::size_t n) {
      if (!ec) session_->on_bytes(n);
      step(ec, false);
    }

   private:
    using work_guard = std::decay_t<decltype(asio::prefer(std::declval<executor_type>(), asio::execution::outstanding_work.tracked))>;

    void step(const error_code& ec, bool first) {
      ws_session& s = *session_;
      if (ec) s.on_read_error(ec);
      std::optional<incoming> in;
      if (s.take_buffered(in)) return finish(read_result(std::move(*in)), first);
      if (s.state_ == state::closed) {
        s.settle_buffer();
        return finish(read_result(s.status_), first);
      }
      if constexpr (detail::raw_socket<Stream>) {
        s.stream_.async_wait(Stream::wait_read, std::move(*this));
      } else {
        s.make_room();
        auto buffer = asio::buffer(s.rbuf_.data() + s.rend_, s.rbuf_.capacity() - s.rend_);
        s.stream_.async_read_some(buffer, std::move(*this));
      }
    }

    // Completes on the handler's executor: posted when the result was ready at once (a
    // handler never runs inside read()), dispatched otherwise (inline on the session's thread).
    // A posted completion on the session's own context holds the round open (session_hub).
    void finish(read_result r, bool first) {
      const auto ex = get_executor();
      typename detail::session_hub<ws_session>::round_hold hold(first && !work_ ? session_->hub_ : nullptr);
      session_.reset();
      auto complete = [h = std::move(handler_), r = std::move(r), w = std::move(work_), hold = std::move(hold)]() mutable {
        hold.release();
        std::move(h)(std::move(r));
      };
      if (first) asio::post(ex, std::move(complete));
      else asio::dispatch(ex, std::move(complete));
    }

    std::shared_ptr<ws_session> session_;
    Handler handler_;
    std::unique_ptr<work_guard> work_;  // only for a handler on another context
  };

  // ---- opening handshake ----

  asio::awaitable<bool> server_handshake() {
    arm(phase::handshake, options_->handshake_timeout);
    if constexpr (detail::tls_stream<Stream>) {
      // TLS first, under the same deadline: a client that stalls here costs only its socket.
      error_code ec;
      co_await stream_.async_handshake(Stream::server, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        abort(ws::close_code::abnormal, "TLS handshake failed: " + ec.message());
        co_return false;
      }
    }
    std::string head;
    http::request req;
    http::parse_status parsed;
    for (;;) {
      const std::size_t old = head.size();
      head.resize(old + 1024);
      error_code ec;
      const std::size_t n = co_await stream_.async_read_some(asio::buffer(head.data() + old, 1024),
                                                             asio::redirect_error(asio::use_awaitable, ec));
      head.resize(old + n);
      if (ec) {
        abort(ws::close_code::abnormal, "connection lost during the handshake");
        co_return false;
      }
      parsed = http::parse_request(head, options_->max_handshake_size, req);
      if (parsed.kind != http::parse_status::need_more) break;
    }
    if (parsed.kind == http::parse_status::error) {
      const std::string reason = parsed.reason;
      const std::string response = http::error_response(parsed.status, reason);
      co_await refuse(parsed.status, reason, response);
      co_return false;
    }
    if (options_->http_fallback && !http::has_token(req.header("Upgrade"), "websocket")) {
      // A plain HTTP request (a page, a health check) that the application answers itself.
      if (auto response = options_->http_fallback(req)) {
        const std::string reason = "answered by http_fallback";
        co_await refuse(200, reason, *response);
        co_return false;
      }
    }
    auto verdict = ws::check_upgrade(req);
    if (!verdict.accepted) {
      co_await refuse(verdict.status, verdict.reason, verdict.response);
      co_return false;
    }
    if (!origin_allowed(req)) {
      const std::string why = "origin not allowed";
      const std::string response = http::error_response(403, why);
      co_await refuse(403, why, response);
      co_return false;
    }
    if (options_->on_upgrade) {
      upgrade_decision decision = options_->on_upgrade(upgrade_request{req, remote_endpoint()});
      if (!decision.accepted()) {
        const int status = decision.status >= 400 && decision.status <= 599 ? decision.status : 403;
        const std::string response = http::error_response(status, decision.reason, decision.extra_headers);
        co_await refuse(status, decision.reason, response);
        co_return false;
      }
    }
    if (options_->limit) {
      if (!options_->limit->try_acquire()) {
        const std::string why = "too many sessions";
        const std::string response = http::error_response(503, why, "Retry-After: 5\r\n");
        co_await refuse(503, why, response);
        co_return false;
      }
      holds_limit_slot_ = true;
    }
    // [deflate hook 1] answer a permessage-deflate offer: a header in the 101, RSV1 in the parser.
    deflate_.accept_offer(*options_, req, verdict.response, parser_);
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(verdict.response), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || state_ == state::closed) {
      abort(ws::close_code::abnormal, "connection lost during the handshake");
      co_return false;
    }
    target_ = std::move(req.target);
    keep_leftover(std::string_view(head).substr(parsed.head_size));
    state_ = state::open;
    start_rate_limit();
    count(metrics::sessions);
    expect_idle();
    co_return true;
  }

  // An empty allow-list admits everyone; otherwise the Origin header must match one entry
  // exactly (scheme, host and port, as browsers send it; ASCII case-insensitive).
  bool origin_allowed(const http::request& req) const noexcept {
    if (options_->allowed_origins.empty()) return true;
    const std::string_view origin = http::trim(req.header("Origin"));
    for (const auto& allowed : options_->allowed_origins)
      if (http::iequals(origin, allowed)) return true;
    return false;
  }

  // Answers a refused handshake, then lingers briefly so the answer is not lost to a reset
  // caused by request bytes we never read.
  // (References to the caller's named strings: g++ 12 miscompiles coroutines given strings by value.)
  asio::awaitable<void> refuse(int http_status, const std::string& reason, const std::string& response) {
    status_ = {0, reason, http_status};
    if (http_status >= 400) count(metrics::handshakes_refused);
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
    if (!ec && state_ != state::closed) {
      arm(phase::closing, options_->close_timeout);
      detail::lowest_layer(stream_).shutdown(asio::socket_base::shutdown_send, ec);
      char sink[512];
      while (!ec && state_ != state::closed)
        co_await stream_.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    }
    shutdown_and_close();
  }

  asio::awaitable<bool> client_handshake(const std::string& host, const std::string& target) {
    arm(phase::handshake, options_->handshake_timeout);
    std::uint8_t nonce[16];
    for (auto& b : nonce) b = static_cast<std::uint8_t>(random32());
    std::string key;
    // [deflate hook 2a] offer permessage-deflate when the options have it.
    const std::string request = ws::client_request(host, target, nonce, key, detail::session_deflate::offer(*options_));
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(request), asio::redirect_error(asio::use_awaitable, ec));
    std::string head;
    std::string extensions;  // [deflate hook 2b] the server's Sec-WebSocket-Extensions answer
    long head_size = 0;
    while (!ec && head_size == 0) {
      const std::size_t old = head.size();
      head.resize(old + 1024);
      const std::size_t n = co_await stream_.async_read_some(asio::buffer(head.data() + old, 1024),
                                                             asio::redirect_error(asio::use_awaitable, ec));
      head.resize(old + n);
      std::string why;
      head_size = ws::parse_server_response(head, key, options_->max_handshake_size, why, &extensions);
      // [deflate hook 2c] the answer must fit what we offered (RFC 7692 section 7.1).
      if (head_size > 0 && !deflate_.accept_answer(*options_, extensions, parser_, why)) head_size = -1;
      if (head_size < 0) {
        abort(ws::close_code::abnormal, why);
        co_return false;
      }
    }
    if (ec || state_ == state::closed) {
      abort(ws::close_code::abnormal, "connection lost during the handshake");
      co_return false;
    }
    target_ = target;
    keep_leftover(std::string_view(head).substr(static_cast<std::size_t>(head_size)));
    state_ = state::open;
    expect_idle();
    co_return true;
  }

  // Bytes that followed the handshake head in the same read belong to the frame stream.
  void keep_leftover(std::string_view rest) {
    if (rest.empty()) return;
    rbuf_.acquire(std::max(options_->read_buffer_size, rest.size()));
    std::memcpy(rbuf_.data(), rest.data(), rest.size());
    rpos_ = 0;
    rend_ = static_cast<std::uint32_t>(rest.size());
  }

  // ---- reading ----

  // Parses what is buffered: true with `out` set when a whole message is ready; answers pings
  // and close frames on the way. The buffer goes back to the pool once it is all parsed.
  bool take_buffered(std::optional<incoming>& out) {
    while (rpos_ < rend_) {
      auto r = parser_.next(rbuf_.data() + rpos_, rend_ - rpos_);
      rpos_ += static_cast<std::uint32_t>(r.consumed);
      const auto& ev = r.ev;
      if (ev.kind == ws::event_kind::need_more) break;
      switch (ev.kind) {
        case ws::event_kind::message:
          if (close_sent_) continue;  // after our close frame, data is discarded (section 5.5.1)
          if (rate_limited_ && !within_rate(1, 0)) continue;
          ++stats_.messages_in;
          count(metrics::messages_in);
          out.emplace(incoming{std::string(ev.payload), ev.op == ws::opcode::binary});
          // [deflate hook 3] inflate a compressed message; a bad one fails the session (1007, 1009).
          if (auto bad = ev.compressed ? deflate_.inflate(ev, *options_, out->data) : detail::inflate_failure{}) {
            out.reset();
            fail(bad.code, bad.reason);
            continue;
          }
          settle_buffer();
          return true;
        case ws::event_kind::ping:
          // A pong counts against send_queue_limit like any frame: a peer that floods pings
          // without reading the pongs meets on_overflow instead of growing the queue.
          if (rate_limited_ && !within_rate(1, 0)) continue;
          if (!close_sent_) send_here(message::pong(ev.payload));
          continue;
        case ws::event_kind::pong:
          continue;
        case ws::event_kind::close:
          on_peer_close(ev.code, ev.reason);
          continue;
        case ws::event_kind::error:
          fail(ev.code, std::string(ev.reason));
          rpos_ = rend_;  // the rest of the stream cannot be trusted
          continue;
        default:
          continue;
      }
    }
    settle_buffer();
    return false;
  }

  // After readiness: takes what the socket has without blocking.
  void read_available(error_code& ec) {
    make_room();
    const std::size_t n = stream_.read_some(asio::buffer(rbuf_.data() + rend_, rbuf_.capacity() - rend_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
    else if (!ec) on_bytes(n);
  }

  void on_bytes(std::size_t n) {
    rend_ += static_cast<std::uint32_t>(n);
    stats_.bytes_in += n;
    count(metrics::bytes_in, static_cast<std::int64_t>(n));
    activity_ = true;
    ping_outstanding_ = false;
    if (rate_limited_ && !close_sent_) within_rate(0, static_cast<float>(n));
    if (parser_.failed()) rpos_ = rend_;  // draining after a protocol error
  }

  // ---- inbound rate limit (two token buckets; only when session_options::rate_limit is on) ----

  void start_rate_limit() {
    const auto& rl = options_->rate_limit;
    rate_limited_ = rl.enabled();
    if (!rate_limited_) return;
    message_tokens_ = message_capacity();
    byte_tokens_ = byte_capacity();
    bucket_ms_ = now_ms();
  }
  float message_capacity() const noexcept {
    const auto& rl = options_->rate_limit;
    return static_cast<float>(rl.message_burst > 0 ? rl.message_burst : std::max(1.0, rl.messages_per_second));
  }
  float byte_capacity() const noexcept {
    const auto& rl = options_->rate_limit;
    const double floor = static_cast<double>(options_->max_message_size + ws::max_frame_header_size);
    return static_cast<float>(rl.byte_burst > 0 ? rl.byte_burst : std::max(floor, rl.bytes_per_second));
  }
  static std::uint32_t now_ms() noexcept {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock::now().time_since_epoch()).count());
  }

  // Takes `messages` and `bytes` from the buckets; false (and the session closing with 1008)
  // when either runs dry.
  bool within_rate(float messages, float bytes) {
    const auto& rl = options_->rate_limit;
    const std::uint32_t now = now_ms();
    const float elapsed = static_cast<float>(now - bucket_ms_) / 1000.0f;  // unsigned: wraps correctly
    bucket_ms_ = now;
    bool ok = true;
    if (rl.messages_per_second > 0) {
      message_tokens_ = std::min(message_capacity(), message_tokens_ + elapsed * static_cast<float>(rl.messages_per_second));
      message_tokens_ -= messages;
      ok = message_tokens_ >= 0;
    }
    if (rl.bytes_per_second > 0) {
      byte_tokens_ = std::min(byte_capacity(), byte_tokens_ + elapsed * static_cast<float>(rl.bytes_per_second));
      byte_tokens_ -= bytes;
      ok = ok && byte_tokens_ >= 0;
    }
    if (!ok && !close_sent_) {
      count(metrics::rate_limited_closes);
      start_close(ws::close_code::policy_violation, "rate limit exceeded");
    }
    return ok;
  }

  void on_read_error(const error_code& ec) {
    if (state_ == state::closed) return;  // we closed it; status_ says why
    if (close_sent_ && ec == asio::error::eof) {
      shutdown_and_close();  // the peer closed TCP after our close frame: a normal end
      return;
    }
    abort(ws::close_code::abnormal,
          ec == asio::error::eof ? "connection closed without a close frame" : "connection lost: " + ec.message());
  }

  // Moves unparsed bytes to the front and makes sure there is room behind them.
  void make_room() {
    if (!rbuf_) {
      rbuf_.acquire(options_->read_buffer_size);
      rpos_ = rend_ = 0;
      return;
    }
    if (rpos_ > 0) {
      std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
      rend_ -= rpos_;
      rpos_ = 0;
    }
  }

  // Returns the read buffer to the pool once everything in it is parsed.
  void settle_buffer() noexcept {
    if (rpos_ == rend_) {
      rbuf_.release();
      rpos_ = rend_ = 0;
    }
  }

  // ---- closing ----

  void start_close(std::uint16_t code, std::string reason) {
    if (state_ != state::open || close_sent_) return;
    status_ = {code, std::move(reason)};
    close_sent_ = true;
    enqueue(message::close(code, status_.reason));
    if (state_ == state::open) arm(phase::closing, options_->close_timeout);
  }

  void on_peer_close(std::uint16_t code, std::string_view reason) {
    if (state_ != state::open) return;
    close_received_ = true;
    if (close_sent_) {  // the peer answered our close: the handshake is complete
      if (queue_.empty()) shutdown_and_close();
      return;
    }
    status_ = {code, std::string(reason)};
    close_sent_ = true;
    // Echo the code (section 5.5.1); a close without one is answered without one.
    enqueue(message::close(code == ws::close_code::no_status ? ws::close_code::no_status : code));
    if (state_ == state::open) arm(phase::closing, options_->close_timeout);
  }

  // The peer broke the protocol: tell it why, then drain its input until the close completes.
  void fail(std::uint16_t code, std::string reason) {
    if (close_sent_) {
      abort(code, std::move(reason));
      return;
    }
    start_close(code, std::move(reason));
  }

  void abort(std::uint16_t code, std::string reason) {
    if (state_ == state::closed) return;
    if (status_.code == 0) status_ = {code, std::move(reason)};  // the first reason wins
    shutdown_and_close();
  }

  void shutdown_and_close() {
    if (state_ == state::closed) return;
    if (state_ == state::open && role_ == ws::role::server) {
      count(metrics::sessions, -1);
      if (options_->metrics) options_->metrics->count_close(status_.code);
    }
    state_ = state::closed;
    if (holds_limit_slot_) {  // the slot follows the connection, not the object
      holds_limit_slot_ = false;
      options_->limit->release();
    }
    ++timer_generation_;
    if (wheel_) wheel_->cancel(*this);
    error_code ec;
    // close() alone sends the FIN (or an RST if input was left unread): no shutdown first.
    detail::lowest_layer(stream_).close(ec);
    stats_.dropped += queue_.size() - queue_head_;
    count(metrics::dropped, static_cast<std::int64_t>(queue_.size() - queue_head_));
    count(metrics::queued_bytes, -static_cast<std::int64_t>(queued_bytes_));
    queue_.clear();
    queue_head_ = 0;
    queued_bytes_ = 0;
  }

  // ---- writing ----

  void enqueue(message m) {
    if (state_ == state::closed) return;
    if (role_ == ws::role::client) m = m.masked(random32());
    queued_bytes_ += m.frame_size();
    count(metrics::queued_bytes, static_cast<std::int64_t>(m.frame_size()));
    queue_.push_back(std::move(m));
    if (writing_ || corked_) return;
    // On a strand the round may end on another thread than the one that corked: write now.
    if (write_through_) flush();
    else cork();
  }

  // Writes wait for the end of the current round of handlers on this context (uWebSockets
  // calls it corking): whatever is queued meanwhile — several broadcasts read in one go, a
  // pong — leaves in one gathered write, one syscall per session instead of one per message.
  void cork() { hub_->cork(*this, stream_.get_executor()); }

  // The end of the round this session was corked in (called by the hub).
  void flush_round() {
    if (!writing_ && state_ != state::closed) flush();
  }

  // Queued frames not yet started are dropped; a frame already partly on the wire, or that a
  // pending write carries (a TLS stream's async_write_some), stays: its completion counts its
  // bytes against it.
  void discard_unstarted() {
    const std::size_t keep = std::min(queue_.size(), queue_head_ + (write_offset_ > 0 || writing_ ? 1 : 0));
    for (std::size_t i = keep; i < queue_.size(); ++i) {
      queued_bytes_ -= queue_[i].frame_size();
      count(metrics::queued_bytes, -static_cast<std::int64_t>(queue_[i].frame_size()));
      ++stats_.dropped;
      count(metrics::dropped);
    }
    queue_.resize(keep);
  }

  // Writes as much as the kernel takes now (gathered), then waits for writability if needed.
  void flush() {
    if constexpr (detail::raw_socket<Stream>) {
      while (queue_head_ < queue_.size()) {
        std::array<asio::const_buffer, max_gather> bufs;
        std::size_t count = 0;
        for (std::size_t i = queue_head_; i < queue_.size() && count < max_gather; ++i) {
          auto f = queue_[i].frame();
          const std::size_t skip = i == queue_head_ ? write_offset_ : 0;
          bufs[count++] = asio::const_buffer(f.data() + skip, f.size() - skip);
        }
        error_code ec;
        const std::size_t n = stream_.write_some(std::span(bufs.data(), count), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) break;
        if (ec) {
          abort(ws::close_code::abnormal, "connection lost: " + ec.message());
          return;
        }
        consume(n);
      }
      if (queue_head_ == queue_.size()) {
        drained();
        return;
      }
      writing_ = true;
      stream_.async_wait(Stream::wait_write, [self = this->shared_from_this()](error_code ec) {
        self->writing_ = false;
        if (self->state_ == state::closed) return;
        if (ec) return self->abort(ws::close_code::abnormal, "connection lost: " + ec.message());
        self->flush();
      });
    } else {
      if (queue_head_ == queue_.size()) {
        drained();
        return;
      }
      auto f = queue_[queue_head_].frame();
      writing_ = true;
      stream_.async_write_some(asio::const_buffer(f.data() + write_offset_, f.size() - write_offset_),
                               [self = this->shared_from_this()](error_code ec, std::size_t n) {
                                 self->writing_ = false;
                                 if (self->state_ == state::closed) return;
                                 if (ec) return self->abort(ws::close_code::abnormal, "connection lost: " + ec.message());
                                 self->consume(n);
                                 self->flush();
                               });
    }
  }

  void consume(std::size_t n) {
    while (n > 0) {
      message& m = queue_[queue_head_];
      const std::size_t left = m.frame_size() - write_offset_;
      if (n < left) {
        write_offset_ += n;
        return;
      }
      n -= left;
      write_offset_ = 0;
      queued_bytes_ -= m.frame_size();
      count(metrics::queued_bytes, -static_cast<std::int64_t>(m.frame_size()));
      if (!m.is_control()) {
        ++stats_.messages_out;
        stats_.bytes_out += m.payload().size();
        count(metrics::messages_out);
        count(metrics::bytes_out, static_cast<std::int64_t>(m.payload().size()));
      }
      m = message{};
      ++queue_head_;
    }
  }

  void drained() {
    queue_.clear();
    queue_head_ = 0;
    if (queue_.capacity() > 64) std::vector<message>().swap(queue_);
    // We echoed the peer's close: the server ends the TCP connection (section 7.1.1).
    if (close_received_ && close_sent_) return shutdown_and_close();
    // After a protocol error our close frame is the last word: half-close so the peer sees
    // it and hangs up; read() drains until then (or the close timeout).
    if (close_sent_ && parser_.failed()) {
      error_code ec;
      detail::lowest_layer(stream_).shutdown(asio::socket_base::shutdown_send, ec);
    }
  }

  void count(metrics::id which, std::int64_t v = 1) noexcept {
    if (options_->metrics) options_->metrics->add(which, v);
  }

  // ---- deadlines ----

  void arm(phase p, clock::duration d) {
    if (state_ == state::closed) return;
    phase_ = p;
    if (!wheel_) wheel_ = &detail::deadline_wheel<ws_session>::of(stream_.get_executor());
    wheel_->schedule(*this, d, ++timer_generation_, stream_.get_executor());
  }

  // Called by the wheel on this session's executor.
  void on_deadline(std::uint32_t generation) {
    if (generation != timer_generation_ || state_ == state::closed) return;
    switch (phase_) {
      case phase::handshake:
        abort(ws::close_code::abnormal, "handshake timeout");
        break;
      case phase::first_message:
        start_close(ws::close_code::policy_violation, "login timeout");
        break;
      case phase::idle:
        if (activity_) {
          activity_ = false;
          arm(phase::idle, options_->idle_timeout);
        } else if (!ping_outstanding_) {
          ping_outstanding_ = true;
          enqueue(message::ping());
          arm(phase::idle, options_->idle_timeout);
        } else {
          abort(ws::close_code::abnormal, "idle timeout: no answer to ping");
        }
        break;
      case phase::closing:
        abort(ws::close_code::abnormal, "close handshake timeout");
        break;
      case phase::none:
        break;
    }
  }

  // Masking keys for the client role; they need to be unpredictable to intermediaries, not secret.
  static std::uint32_t random32() {
    thread_local std::minstd_rand rng{std::random_device{}()};
    return static_cast<std::uint32_t>(rng()) ^ (static_cast<std::uint32_t>(rng()) << 16);
  }

  static constexpr std::size_t max_gather = 64;

  Stream stream_;
  std::shared_ptr<const session_options> options_;
  ws::parser parser_;
  detail::deadline_wheel<ws_session>* wheel_ = nullptr;  // this context's, from the first arm()
  detail::session_hub<ws_session>* hub_ = nullptr;       // this context's; none on a strand
  detail::read_buffer rbuf_;
  std::uint32_t rpos_ = 0, rend_ = 0;
  detail::session_deflate deflate_;  // [deflate hook 0] permessage-deflate state (16 bytes)
  std::vector<message> queue_;
  std::size_t queue_head_ = 0;
  std::size_t write_offset_ = 0;  // bytes of queue_[queue_head_] already written
  std::size_t queued_bytes_ = 0;
  std::uint32_t timer_generation_ = 0;
  std::uint32_t bucket_ms_ = 0;  // rate limit: when the buckets were last filled
  float message_tokens_ = 0, byte_tokens_ = 0;
  ws::role role_;
  state state_ = state::handshake;
  phase phase_ = phase::none;
  bool writing_ = false;
  bool corked_ = false;
  bool close_sent_ = false;
  bool close_received_ = false;
  bool activity_ = false;
  bool ping_outstanding_ = false;
  bool holds_limit_slot_ = false;
  bool rate_limited_ = false;
  // On a strand: no corking (decided once; the executor never changes).
  const bool write_through_;
  close_status status_;
  session_stats stats_;
  std::string target_;
  [[no_unique_address]] UserData user_data_{};
};

namespace detail {
struct session_access {
  template <class Session>
  static send_result send_here(Session& s, const message& m) {
    return s.send_here(m);
  }
  // From a thread that runs the session's io_context: inline, unless the session lives on a
  // strand of it (then through send(), which posts to the strand).
  template <class Session>
  static send_result send_on_context(Session& s, const message& m) {
    return s.write_through_ ? s.send(m) : s.send_here(m);
  }
  template <class Session>
  static void expect_first_message(Session& s, std::chrono::steady_clock::duration d) {
    s.expect_message_within(d);
  }
  template <class Session>
  static void expect_idle(Session& s) {
    s.expect_idle();
  }
};
}  // namespace detail

// Free-function spellings, as used in the examples: accept_websocket(socket, options), or
// accept_websocket<MyData>(socket, options) for sessions that carry MyData.
template <class UserData = no_user_data, class Stream>
asio::awaitable<std::shared_ptr<ws_session<Stream, UserData>>> accept_websocket(Stream stream,
                                                                               std::shared_ptr<const session_options> options,
                                                                               close_status* why = nullptr) {
  return ws_session<Stream, UserData>::accept(std::move(stream), std::move(options), why);
}

template <class UserData = no_user_data, class Stream>
asio::awaitable<std::shared_ptr<ws_session<Stream, UserData>>> accept_websocket(Stream stream, const session_options& options = {},
                                                                               close_status* why = nullptr) {
  return ws_session<Stream, UserData>::accept(std::move(stream), std::make_shared<const session_options>(options), why);
}

}  // namespace herald

#endif  // HERALD_WS_SESSION_HPP
