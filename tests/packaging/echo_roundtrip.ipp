// Shared by the CMake consumer projects in tests/packaging: each main.cpp includes
// <herald.hpp> its own way (from a package or a source tree), defines HERALD_CONSUMER and
// includes this file. It runs the echo server of examples/echo_server.cpp
// (accept_loop, accept_websocket, a read loop) on an ephemeral loopback port, connects a
// hand-written client that upgrades, sends a masked text frame, expects it echoed and closes
// with 1000, and queries an empty registry. Prints "ok <consumer>" and returns 0, or says
// what failed and returns 1.
#include "ws_client.ipp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace consumer {

asio::awaitable<void> echo(asio::ip::tcp::socket socket, std::shared_ptr<const herald::session_options> options) {
  auto ws = co_await herald::accept_websocket(std::move(socket), options);
  if (!ws) co_return;
  while (auto msg = co_await ws->read())
    ws->send(msg->binary ? herald::message::binary(msg->data) : herald::message::text(msg->data));
}

// Returns "" when the round trip went as RFC 6455 says, else what went wrong.
asio::awaitable<std::string> client(asio::ip::tcp::endpoint server) {
  asio::ip::tcp::socket s(co_await asio::this_coro::executor);
  std::string pending;
  const std::string refused = co_await upgrade(s, server, pending);
  if (!refused.empty()) co_return "unexpected handshake answer: " + refused;

  const std::string text = "hello from a consumer";
  co_await asio::async_write(s, asio::buffer(client_frame(0x1, text)), asio::use_awaitable);
  const frame echoed = co_await read_frame(s, pending);
  if (echoed.first != 0x81) co_return "echo: unexpected frame header";
  if (echoed.payload != text) co_return "echo: wrong payload";

  co_await asio::async_write(s, asio::buffer(client_frame(0x8, std::string("\x03\xe8", 2))), asio::use_awaitable);
  const std::string close = co_await read_exactly(s, pending, 4);
  if (close != std::string("\x88\x02\x03\xe8", 4)) co_return "close: expected 1000 back";
  herald::error_code ec;
  std::array<char, 16> rest;
  co_await s.async_read_some(asio::buffer(rest), asio::redirect_error(asio::use_awaitable, ec));
  if (ec != asio::error::eof && ec != asio::error::connection_reset) co_return "close: the server kept the connection";
  co_return "";
}

// accept_loop's callback. A named type, not a lambda: this file is included, and g++ warns
// (-Wsubobject-linkage) when a header's template holds a type without linkage.
struct spawn_echo {
  asio::io_context* io;
  std::shared_ptr<const herald::session_options> options;
  void operator()(asio::ip::tcp::socket s) const { asio::co_spawn(*io, echo(std::move(s), options), asio::detached); }
};

int run() {
  asio::io_context io(1);
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto options = std::make_shared<const herald::session_options>();
  asio::co_spawn(io, herald::accept_loop(acceptor, spawn_echo{&io, options}), asio::detached);
  std::string failure = "the client did not finish within 10 s";
  asio::steady_timer watchdog(io, std::chrono::seconds(10));
  watchdog.async_wait([&](herald::error_code ec) {
    if (!ec) io.stop();
  });
  asio::co_spawn(io, client(acceptor.local_endpoint()), [&](std::exception_ptr e, std::string result) {
    failure = std::move(result);
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        failure = std::string("client: ") + x.what();
      }
    }
    acceptor.close();  // ends accept_loop; the echo session has ended with the close handshake
    watchdog.cancel();
  });
  io.run();

  herald::registry<herald::ws_session<>> users;
  if (users.uid_count() != 0 || users.online("alice")) failure = "a new registry is not empty";

  if (!failure.empty()) {
    std::cerr << "FAIL " << HERALD_CONSUMER << ": " << failure << std::endl;
    return 1;
  }
  std::cout << "ok " << HERALD_CONSUMER << std::endl;
  return 0;
}

}  // namespace consumer

int main() { return consumer::run(); }
