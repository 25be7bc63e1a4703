// One connection to Redis: RESP over an Asio TCP socket, inside coroutines. hiredis does
// the protocol only (redisFormatCommandArgv to encode commands, redisReader to decode
// replies); every byte moves through Asio, so nothing here ever blocks the thread.
//
//   auto c = std::make_shared<redis::connection>(ex);
//   if (auto ec = co_await c->connect("127.0.0.1", 6379, 2s)) ...;
//   c->write_command({"PUBLISH", "ch", "hi"});        // queued, written in order
//   while (auto reply = co_await c->read()) ...;       // replies in order; null at the end
//
// Writes are pipelined: write_command() appends to a buffer that one write at a time sends.
// A connection is used once: after an error or close() make a new one (redis::pubsub does).
// Requires hiredis (Debian: libhiredis-dev; link -lhiredis).
#ifndef HERALD_REDIS_CONNECTION_HPP
#define HERALD_REDIS_CONNECTION_HPP
#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../detail/asio.hpp"

namespace herald::redis {

struct reply_deleter {
  void operator()(redisReply* r) const noexcept {
    if (r) freeReplyObject(r);
  }
};
// A decoded reply (REDIS_REPLY_STRING, _ARRAY, _INTEGER, _NIL, _STATUS, _ERROR).
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// The bytes of a string, status or error reply; empty for anything else.
inline std::string_view text_of(const redisReply* r) noexcept {
  if (!r || !r->str) return {};
  if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_ERROR) return {};
  return {r->str, r->len};
}

// Appends one command, RESP-encoded by hiredis, to `out`. False if hiredis could not (no memory).
inline bool append_command(std::string& out, std::span<const std::string_view> args) {
  constexpr std::size_t small = 8;
  std::array<const char*, small> argv_small;
  std::array<std::size_t, small> len_small;
  std::vector<const char*> argv_big;
  std::vector<std::size_t> len_big;
  const char** argv = argv_small.data();
  std::size_t* lens = len_small.data();
  if (args.size() > small) {
    argv_big.resize(args.size());
    len_big.resize(args.size());
    argv = argv_big.data();
    lens = len_big.data();
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv, lens);
  if (n < 0 || !cmd) return false;
  out.append(cmd, static_cast<std::size_t>(n));
  redisFreeCommand(cmd);
  return true;
}
inline bool append_command(std::string& out, std::initializer_list<std::string_view> args) {
  return append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

class connection : public std::enable_shared_from_this<connection> {
 public:
  using clock = std::chrono::steady_clock;

  explicit connection(asio::any_io_executor ex)
      : socket_(ex), resolver_(ex), deadline_(ex), keepalive_(ex), reader_(redisReaderCreate()) {}
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() {
    if (reader_) redisReaderFree(reader_);
  }

  // Resolves `host` (an IP address is used as is) and connects within `timeout`. An empty
  // error code means connected.
  asio::awaitable<error_code> connect(const std::string& host, unsigned short port, clock::duration timeout) {
    auto self = shared_from_this();
    error_code ec;
    if (!reader_) {
      ec = asio::error::no_memory;
      co_return ec;
    }
    arm_deadline(timeout);
    const asio::ip::address address = asio::ip::make_address(host, ec);
    if (!ec) {
      const asio::ip::tcp::endpoint endpoint(address, port);
      co_await socket_.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    } else {
      ec.clear();
      const std::string service = std::to_string(port);
      auto found = co_await resolver_.async_resolve(host, service, asio::redirect_error(asio::use_awaitable, ec));
      if (!ec && !closed_) co_await asio::async_connect(socket_, found, asio::redirect_error(asio::use_awaitable, ec));
    }
    deadline_.cancel();
    if (timed_out_) ec = asio::error::timed_out;
    if (!ec && closed_) ec = asio::error::operation_aborted;
    if (ec) {
      close(ec.message());
      co_return ec;
    }
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    ec.clear();
    connected_ = true;
    last_read_ = clock::now();
    co_return ec;
  }

  // Queues one command (written in order, pipelined). False when the connection is not up.
  bool write_command(std::span<const std::string_view> args) {
    if (!connected_ || closed_) return false;
    if (!append_command(out_, args)) return false;
    flush();
    return true;
  }
  bool write_command(std::initializer_list<std::string_view> args) {
    return write_command(std::span<const std::string_view>(args.begin(), args.size()));
  }

  // The next reply, in the order of the commands (or a pushed pub/sub message). Null once the
  // connection has ended; error() says why. One reader at a time.
  asio::awaitable<reply_ptr> read() {
    auto self = shared_from_this();
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader_, &r) != REDIS_OK) {
        close(std::string("protocol error: ") + reader_->errstr);
        co_return reply_ptr{};
      }
      if (r) co_return reply_ptr(static_cast<redisReply*>(r));
      if (closed_ || !connected_) co_return reply_ptr{};
      error_code ec;
      const std::size_t n = co_await socket_.async_read_some(asio::buffer(rbuf_), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!closed_) close(ec == asio::error::eof ? std::string("connection closed by Redis") : "connection lost: " + ec.message());
        co_return reply_ptr{};
      }
      last_read_ = clock::now();
      if (redisReaderFeed(reader_, rbuf_.data(), n) != REDIS_OK) {
        close(std::string("protocol error: ") + reader_->errstr);
        co_return reply_ptr{};
      }
    }
  }

  // Every `interval`: if nothing was read for two intervals the connection is closed (a
  // Redis that stopped answering); otherwise `ping` runs (it should write a PING).
  void keepalive(clock::duration interval, std::function<void()> ping) {
    ping_ = std::move(ping);
    interval_ = interval;
    schedule_keepalive();
  }

  // Ends the connection; a pending read() returns null. `why` is kept for error().
  void close(std::string why = "closed") {
    if (closed_) return;
    closed_ = true;
    connected_ = false;
    error_ = std::move(why);
    error_code ec;
    resolver_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
    deadline_.cancel();
    keepalive_.cancel();
    ping_ = nullptr;
    out_.clear();
  }

  bool is_open() const noexcept { return connected_ && !closed_; }
  const std::string& error() const noexcept { return error_; }
  // Bytes queued and not yet written.
  std::size_t buffered() const noexcept { return out_.size() + wbuf_.size(); }

 private:
  void flush() {
    if (writing_ || out_.empty() || closed_) return;
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    asio::async_write(socket_, asio::buffer(wbuf_), [self = shared_from_this()](error_code ec, std::size_t) {
      self->writing_ = false;
      self->wbuf_.clear();
      if (self->closed_) return;
      if (ec) return self->close("connection lost: " + ec.message());
      self->flush();
    });
  }

  void arm_deadline(clock::duration d) {
    deadline_.expires_after(d);
    deadline_.async_wait([weak = weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->timed_out_ = true;
        self->close("connect timeout");
      }
    });
  }

  void schedule_keepalive() {
    if (closed_ || interval_ <= clock::duration::zero()) return;
    keepalive_.expires_after(interval_);
    keepalive_.async_wait([weak = weak_from_this()](error_code ec) {
      if (ec) return;
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (clock::now() - self->last_read_ > 2 * self->interval_) return self->close("no answer from Redis (keepalive)");
      if (self->ping_) self->ping_();
      self->schedule_keepalive();
    });
  }

  asio::ip::tcp::socket socket_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer deadline_;
  asio::steady_timer keepalive_;
  redisReader* reader_;
  std::array<char, 16 * 1024> rbuf_{};
  std::string out_;   // queued
  std::string wbuf_;  // being written
  std::function<void()> ping_;
  clock::duration interval_{};
  clock::time_point last_read_{};
  std::string error_;
  bool connected_ = false;
  bool closed_ = false;
  bool writing_ = false;
  bool timed_out_ = false;
};

}  // namespace herald::redis

#endif  // HERALD_REDIS_CONNECTION_HPP
