// echo_server: sends every message back as it came (text or binary). For conformance runs
// (Autobahn|Testsuite's fuzzingclient) and as the smallest herald server.
//
// Usage: echo_server [--port P] [--address A] [--max-message BYTES] [--deflate]
// --deflate: accept permessage-deflate (RFC 7692; needs a build with zlib). Off by default.
#include <herald.hpp>

#include "deflate_option.hpp"

#include <cstdio>
#include <iostream>
#include <string>

namespace {

asio::awaitable<void> echo(asio::ip::tcp::socket socket, std::shared_ptr<const herald::session_options> options) {
  auto ws = co_await herald::accept_websocket(std::move(socket), options);
  if (!ws) co_return;
  while (auto msg = co_await ws->read())
    ws->send(msg->binary ? herald::message::binary(msg->data) : herald::message::text(msg->data));
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1";
  unsigned short port = 9001;
  herald::session_options so;
  so.max_message_size = 16 * 1024 * 1024;  // Autobahn sends messages of up to 16 MiB
  bool deflate = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--deflate") deflate = deflate_option("echo_server");
    else if (a == "--port" && has_value) port = static_cast<unsigned short>(std::stoi(argv[++i]));
    else if (a == "--address" && has_value) address = argv[++i];
    else if (a == "--max-message" && has_value) so.max_message_size = std::stoul(argv[++i]);
    else {
      std::fprintf(stderr, "usage: echo_server [--port P] [--address A] [--max-message BYTES] [--deflate]\n");
      return 2;
    }
  }
  if (deflate) enable_example_deflate(so);
  so.send_queue_limit = 2 * so.max_message_size + 1024;
  auto options = std::make_shared<const herald::session_options>(so);

  asio::io_context io(1);
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address(address), port});
  std::cout << "echo_server listening on " << acceptor.local_endpoint() << (deflate ? " (permessage-deflate)" : "")
            << std::endl;
  asio::co_spawn(io, herald::accept_loop(acceptor, [&](asio::ip::tcp::socket s) {
                   asio::co_spawn(io, echo(std::move(s), options), asio::detached);
                 }), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](herald::error_code, int) { io.stop(); });
  io.run();
  return 0;
}
