// What the one-thread load drivers (cluster_bench.cpp, history_bench.cpp) share: failing
// loudly, numbers from the command line, client sessions from many source addresses, and a
// run bounded by a timeout.
#pragma once
#include <herald.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

namespace driver_support {

using session = herald::ws_session<>;
using session_ptr = std::shared_ptr<session>;
using steady = std::chrono::steady_clock;

// Prints FAIL and the reason, exits 1 at once (the drivers' one way out on any failure).
[[noreturn]] inline void fail(const std::string& why) {
  std::printf("FAIL: %s\n", why.c_str());
  std::fflush(stdout);
  std::_Exit(1);
}

inline std::size_t num(std::string_view t) {
  std::size_t v = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
  if (r.ec != std::errc{} || r.ptr != t.data() + t.size()) fail("not a number: " + std::string(t));
  return v;
}

// The drivers' client sessions: messages up to 1 MiB, no idle or handshake timeout in the way.
inline std::shared_ptr<const herald::session_options> client_options(std::size_t send_queue_limit = std::size_t{1} << 20) {
  herald::session_options o;
  o.max_message_size = 1 << 20;
  o.send_queue_limit = send_queue_limit;
  o.idle_timeout = std::chrono::seconds(600);
  o.handshake_timeout = std::chrono::seconds(60);
  return std::make_shared<const herald::session_options>(o);
}

inline asio::awaitable<void> sleep_for(steady::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(asio::use_awaitable);
}

// Connects to 127.0.0.1:port from 127.0.0.<1 + i % source_ips> (IP_BIND_ADDRESS_NO_PORT: with
// one source address, connect()'s search for a free port dominates at thousands of sessions)
// and runs the WebSocket handshake for `target`. `target` must outlive the call (g++ 12
// miscompiles coroutines that take a std::string by value).
inline asio::awaitable<session_ptr> connect_from(unsigned short port, std::size_t i, std::size_t source_ips, const std::string& target,
                                                 std::shared_ptr<const herald::session_options> options) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::socket s(ex);
  herald::error_code ec;
  if (source_ips > 1) {
    s.open(asio::ip::tcp::v4(), ec);
    int one = 1;
    if (!ec) ::setsockopt(s.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    const asio::ip::address_v4 source(0x7F000001u + static_cast<std::uint32_t>(i % source_ips));
    if (!ec) s.bind(asio::ip::tcp::endpoint(source, 0), ec);
    if (ec) fail("bind: " + ec.message());
  }
  co_await s.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                           asio::redirect_error(asio::use_awaitable, ec));
  if (ec) fail("connect: " + ec.message());
  herald::close_status why;
  const std::string host = "127.0.0.1";
  auto ws = co_await session::connect(std::move(s), host, target, options, &why);
  if (!ws) fail("handshake: " + why.reason);
  co_return ws;
}

// Runs `body` on `io` until it exits the process; fails on an exception, or after timeout_s
// (`progress()` says how far it got).
template <class Progress>
void run(asio::io_context& io, asio::awaitable<void> body, int timeout_s, Progress progress) {
  asio::steady_timer deadline(io, std::chrono::seconds(timeout_s));
  deadline.async_wait([&](herald::error_code ec) {
    if (!ec) fail("timeout after " + std::to_string(timeout_s) + " s" + progress());
  });
  asio::co_spawn(io, std::move(body), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      fail(std::string("exception: ") + ex.what());
    }
  });
  io.run();
}

}  // namespace driver_support
