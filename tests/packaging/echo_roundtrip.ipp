// Shared by the consumer projects in tests/packaging: each main.cpp includes herald its own
// way (<herald.hpp> from a package or a source tree, or "herald_single.hpp"), defines
// HERALD_CONSUMER and includes this file. It runs the echo server of examples/echo_server.cpp
// (accept_loop, accept_websocket, a read loop) on an ephemeral loopback port, connects a
// hand-written client that upgrades, sends a masked text frame, expects it echoed and closes
// with 1000, and queries an empty registry. Prints "ok <consumer>" and returns 0, or says
// what failed and returns 1.
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

// A masked client frame with a payload under 126 bytes.
std::string client_frame(unsigned opcode, std::string_view payload) {
  const std::array<unsigned char, 4> mask{0x12, 0x34, 0x56, 0x78};
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  f += static_cast<char>(0x80 | payload.size());
  for (auto m : mask) f += static_cast<char>(m);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

// Reads exactly n bytes: first from `pending` (bytes read past the handshake), then the socket.
asio::awaitable<std::string> read_exactly(asio::ip::tcp::socket& s, std::string& pending, std::size_t n) {
  while (pending.size() < n) {
    std::array<char, 512> chunk;
    const std::size_t got = co_await s.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    pending.append(chunk.data(), got);
  }
  std::string out = pending.substr(0, n);
  pending.erase(0, n);
  co_return out;
}

// Returns "" when the round trip went as RFC 6455 says, else what went wrong.
asio::awaitable<std::string> client(asio::ip::tcp::endpoint server) {
  asio::ip::tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect(server, asio::use_awaitable);
  const std::string request =
      "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
  std::string pending;
  const std::size_t head_size =
      co_await asio::async_read_until(s, asio::dynamic_buffer(pending), "\r\n\r\n", asio::use_awaitable);
  const std::string head = pending.substr(0, head_size);
  pending.erase(0, head_size);
  if (head.rfind("HTTP/1.1 101", 0) != 0 || head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == std::string::npos)
    co_return "unexpected handshake answer: " + head;

  const std::string text = "hello from a consumer";
  co_await asio::async_write(s, asio::buffer(client_frame(0x1, text)), asio::use_awaitable);
  const std::string header = co_await read_exactly(s, pending, 2);
  if (static_cast<unsigned char>(header[0]) != 0x81 || static_cast<unsigned char>(header[1]) != text.size())
    co_return "echo: unexpected frame header";
  if (co_await read_exactly(s, pending, text.size()) != text) co_return "echo: wrong payload";

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
