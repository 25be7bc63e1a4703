// Loopback fixtures for the integration tests: a herald server and clients in one
// io_context on 127.0.0.1, and a raw-socket client for bytes no polite client sends.
#pragma once
#include <doctest/doctest.h>

#include <herald.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace herald_test {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using session = herald::ws_session<>;
using session_ptr = std::shared_ptr<session>;

// Runs `body` on `io` and fails the test if it throws or does not finish within `limit`
// (a bound so a broken build cannot hang CI, not a timing assertion).
inline void run(asio::io_context& io, std::function<asio::awaitable<void>()> body, std::chrono::seconds limit = 60s) {
  std::exception_ptr failure;
  bool finished = false;
  asio::steady_timer guard(io, limit);
  guard.async_wait([&](herald::error_code ec) {
    if (!ec) io.stop();
  });
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    failure = e;
    finished = true;
    guard.cancel();
    io.stop();
  });
  io.run();
  REQUIRE_MESSAGE(finished, "test body did not finish within its bound");
  if (failure) std::rethrow_exception(failure);
}

// Waits (bounded) until `ready()` holds; false if it never did.
inline asio::awaitable<bool> eventually(std::function<bool()> ready, std::chrono::milliseconds limit = 10000ms) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (auto waited = 0ms; waited < limit; waited += 2ms) {
    if (ready()) co_return true;
    t.expires_after(2ms);
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return ready();
}

// A server in the shape users write: accept, login (first message is the uid), read loop.
// What the sessions received and how they ended is recorded for the tests to check.
template <class Policy = herald::single_thread>
struct test_server {
  using registry_type = herald::registry<session, Policy>;
  asio::io_context& io;
  tcp::acceptor acceptor;
  registry_type users;
  std::shared_ptr<herald::session_options> options = std::make_shared<herald::session_options>();
  std::chrono::milliseconds login_deadline = 5000ms;
  int send_buffer = 0;  // SO_SNDBUF for accepted sockets when non-zero
  std::map<std::string, std::vector<herald::close_status>> ended;  // uid -> how its sessions ended
  std::vector<herald::close_status> refused;                       // sessions that never logged in
  std::vector<std::string> received;                               // "uid|message"
  std::map<std::string, std::vector<session_ptr>> sessions;        // uid -> server-side sessions

  explicit test_server(asio::io_context& ctx, herald::registry_options ro = {})
      : io(ctx), acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), users(make_registry(ctx, ro)) {
    asio::co_spawn(io, herald::accept_loop(acceptor, [this](tcp::socket s) {
                     asio::co_spawn(io, serve(std::move(s)), asio::detached);
                   }), asio::detached);
  }

  // A multi_thread registry here has one lane, the test's io_context: the same test bodies
  // run against both policies (the threaded hammer test is in unit-multi-thread.cpp).
  static registry_type make_registry(asio::io_context& ctx, herald::registry_options ro) {
    if constexpr (std::is_same_v<Policy, herald::multi_thread>) {
      return registry_type(std::vector<asio::any_io_executor>{ctx.get_executor()}, ro);
    } else {
      return registry_type(ro);
    }
  }

  unsigned short port() const { return acceptor.local_endpoint().port(); }
  void stop() { acceptor.close(); }

  asio::awaitable<void> serve(tcp::socket s) {
    if (send_buffer) s.set_option(asio::socket_base::send_buffer_size(send_buffer));
    auto ws = co_await herald::accept_websocket(std::move(s), std::shared_ptr<const herald::session_options>(options));
    if (!ws) co_return;
    auto bound = co_await users.login(*ws, [](std::string_view first) { return std::string(first); }, login_deadline);
    if (!bound) {
      refused.push_back(bound.status());
      co_return;
    }
    const std::string uid = bound.uid();
    sessions[uid].push_back(ws);
    while (auto msg = co_await ws->read()) received.push_back(uid + "|" + msg->data);
    ended[uid].push_back(ws->status());
  }
};

// Server lanes: `n` io_contexts, each run by a thread of its own once start() is called, and
// an acceptor on the first that deals sockets out to them in turn. The owner calls stop()
// in its destructor before what the lanes' threads use (a registry) goes.
struct threaded_lanes {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<asio::any_io_executor> executors;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;

  explicit threaded_lanes(int n) {
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      guards.push_back(asio::make_work_guard(*contexts.back()));
      executors.push_back(contexts.back()->get_executor());
    }
    acceptor = std::make_unique<tcp::acceptor>(*contexts[0], tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  }
  ~threaded_lanes() { stop(); }

  // Accepts on the first lane; on_socket(socket) runs for each, the socket on its lane.
  template <class OnSocket>
  void start(OnSocket on_socket) {
    herald::accept_loop_options lo;
    lo.executors = executors;
    asio::co_spawn(*contexts[0], herald::accept_loop(*acceptor, std::move(on_socket), lo), asio::detached);
    for (auto& c : contexts) threads.emplace_back([ctx = c.get()] { ctx->run(); });
  }
  void stop() {
    if (threads.empty()) return;
    asio::post(*contexts[0], [this] { acceptor->close(); });
    guards.clear();
    for (auto& c : contexts) c->stop();
    for (auto& t : threads) t.join();
    threads.clear();
  }
  unsigned short port() const { return acceptor->local_endpoint().port(); }
};

inline asio::awaitable<session_ptr> connect_client(unsigned short port, std::shared_ptr<const herald::session_options> options = nullptr) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket s(ex);
  co_await s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable);
  if (!options) {
    herald::session_options o;
    o.max_message_size = 1 << 20;  // clients here receive what the tests send, up to 1 MiB
    options = std::make_shared<const herald::session_options>(o);
  }
  auto c = co_await session::connect(std::move(s), "127.0.0.1", "/", options);
  REQUIRE(c);
  co_return c;
}

// Connects and logs in as `uid`, returning once the server has bound it.
template <class Server>
asio::awaitable<session_ptr> login_client(Server& server, const std::string& uid) {
  auto c = co_await connect_client(server.port());
  const std::size_t before = server.users.sessions_of(uid);
  c->send(uid);
  REQUIRE(co_await eventually([&] { return server.users.sessions_of(uid) == before + 1; }));
  co_return c;
}

inline asio::awaitable<std::string> next_text(session& c) {
  auto m = co_await c.read();
  REQUIRE_MESSAGE(m, "session ended: " << m.status().code << " " << m.status().reason);
  co_return m->data;
}

// A client that speaks raw bytes: for frames a conforming client would never send.
struct raw_client {
  tcp::socket socket;

  static asio::awaitable<raw_client> connect(unsigned short port, int receive_buffer = 0) {
    tcp::socket s(co_await asio::this_coro::executor);
    s.open(tcp::v4());
    if (receive_buffer) s.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    co_await s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable);
    co_return raw_client{std::move(s)};
  }

  asio::awaitable<void> write(std::string_view bytes) {
    co_await asio::async_write(socket, asio::buffer(bytes), asio::use_awaitable);
  }

  // Reads until the peer closes (or `limit` bytes); returns everything read.
  asio::awaitable<std::string> read_all(std::size_t limit = 1 << 20) {
    std::string out;
    char buf[4096];
    for (;;) {
      herald::error_code ec;
      const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      out.append(buf, n);
      if (ec || out.size() >= limit) co_return out;
    }
  }

  asio::awaitable<std::string> read_some() {
    char buf[4096];
    const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
    co_return std::string(buf, n);
  }

  // Upgrade handshake; returns what followed the response head.
  asio::awaitable<std::string> handshake() {
    co_await write(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    std::string got;
    while (got.find("\r\n\r\n") == std::string::npos) got += co_await read_some();
    REQUIRE(got.rfind("HTTP/1.1 101", 0) == 0);
    co_return got.substr(got.find("\r\n\r\n") + 4);
  }

  // A frame as a client sends it (masked unless told otherwise).
  static std::string frame(herald::ws::opcode op, std::string_view payload, bool fin = true, bool masked = true) {
    std::uint8_t header[herald::ws::max_frame_header_size];
    const std::uint32_t key = 0x5a3c9e17;
    const std::size_t n = herald::ws::write_frame_header(header, op, fin, payload.size(), masked, key);
    std::string out(reinterpret_cast<const char*>(header), n);
    std::string body(payload);
    if (masked) herald::ws::apply_mask(reinterpret_cast<std::uint8_t*>(body.data()), body.size(), key);
    return out + body;
  }
};

// The close frame at the start of `bytes` (as a server sends it): code and reason.
inline herald::close_status parse_close(std::string_view bytes) {
  herald::ws::parser p(herald::ws::role::client, {1 << 20});
  std::string copy(bytes);
  std::size_t pos = 0;
  while (pos < copy.size()) {
    auto r = p.next(reinterpret_cast<std::uint8_t*>(copy.data()) + pos, copy.size() - pos);
    pos += r.consumed;
    if (r.ev.kind == herald::ws::event_kind::close) return {r.ev.code, std::string(r.ev.reason)};
    if (r.ev.kind == herald::ws::event_kind::need_more || r.ev.kind == herald::ws::event_kind::error) break;
  }
  return {0, "no close frame in the bytes received"};
}

}  // namespace herald_test
