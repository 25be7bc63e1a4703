// A consumer of the committed single header alone, built as the README says with one
// compiler command and no CMake:
//   g++ -std=c++20 -I include/single main.cpp -pthread
// run_packaging_tests.sh gives it a directory holding only include/single/herald.hpp, so no
// other herald header can be used. It uses the HTTP push API (herald/http_api.hpp is in the
// single header): a registry, a WebSocket server whose first message logs a uid in, and
// herald::serve_http_api on a second port, all on ephemeral loopback ports. A hand-written
// WebSocket client logs in as alice; then HTTP requests push to her: without the key (401,
// nothing delivered), with it (200, {"delivered": 1}), and GET /online/alice. The pushed
// message must arrive exactly once and intact. Prints "ok single_header" and returns 0, or
// says what failed and returns 1.
#include <herald.hpp>  // include/single/herald.hpp: herald.hpp and herald/http_api.hpp in one

#include "../ws_client.ipp"

#include <chrono>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace consumer {

using session = herald::ws_session<>;

asio::awaitable<void> serve(asio::ip::tcp::socket socket, herald::registry<session>& users) {
  auto ws = co_await herald::accept_websocket(std::move(socket));
  if (!ws) co_return;
  auto bound = co_await users.login(*ws, [](std::string_view first) { return std::string(first); });
  if (!bound) co_return;
  ws->send("logged in as " + bound.uid());
  while (auto msg = co_await ws->read()) {
  }
}

// One HTTP/1.1 request on its own connection; the whole answer (the server closes it).
asio::awaitable<std::string> http(asio::ip::tcp::endpoint api, std::string request) {
  asio::ip::tcp::socket s(co_await asio::this_coro::executor);
  co_await s.async_connect(api, asio::use_awaitable);
  co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
  std::string answer;
  herald::error_code ec;
  co_await asio::async_read(s, asio::dynamic_buffer(answer), asio::redirect_error(asio::use_awaitable, ec));
  co_return answer;  // ended by eof
}

std::string post(std::string_view path, std::string_view body, std::string_view authorization) {
  std::string r = "POST ";
  r += path;
  r += " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  r += authorization;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  r += body;
  return r;
}

bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Returns "" when every step went as expected, else what went wrong.
asio::awaitable<std::string> client(asio::ip::tcp::endpoint ws_server, asio::ip::tcp::endpoint api) {
  asio::ip::tcp::socket s(co_await asio::this_coro::executor);
  std::string pending;
  const std::string refused = co_await upgrade(s, ws_server, pending);
  if (!refused.empty()) co_return "unexpected handshake answer: " + refused;
  co_await asio::async_write(s, asio::buffer(client_frame(0x1, "alice")), asio::use_awaitable);
  const frame login = co_await read_frame(s, pending);
  if (login.payload != "logged in as alice") co_return "login: got '" + login.payload + "'";

  const std::string key = "Authorization: Bearer s3cret\r\n";
  std::string answer = co_await http(api, post("/send/alice", "must not arrive", ""));
  if (!starts_with(answer, "HTTP/1.1 401 ")) co_return "without the key: " + answer;
  answer = co_await http(api, post("/send/alice", "must not arrive either", "Authorization: Bearer wrong\r\n"));
  if (!starts_with(answer, "HTTP/1.1 401 ")) co_return "with a wrong key: " + answer;

  const std::string text = "pushed over HTTP: caf\xc3\xa9, with: colons";
  answer = co_await http(api, post("/send/alice", text, key));
  if (!starts_with(answer, "HTTP/1.1 200 ") || !ends_with(answer, "\r\n\r\n{\"delivered\": 1}\n"))
    co_return "POST /send/alice: " + answer;
  const frame pushed = co_await read_frame(s, pending);  // the 401s delivered nothing: this is the first
  if (pushed.first != 0x81 || pushed.payload != text) co_return "pushed: got '" + pushed.payload + "'";

  answer = co_await http(api, "GET /online/alice HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + key + "\r\n");
  if (!starts_with(answer, "HTTP/1.1 200 ") || !ends_with(answer, "{\"online\": true}\n")) co_return "GET /online/alice: " + answer;

  // A broadcast after it is the next frame: nothing else arrived in between.
  answer = co_await http(api, post("/broadcast", "last", key));
  if (!ends_with(answer, "{\"delivered\": 1}\n")) co_return "POST /broadcast: " + answer;
  const frame last = co_await read_frame(s, pending);
  if (last.payload != "last") co_return "after the push: got '" + last.payload + "'";
  co_await asio::async_write(s, asio::buffer(client_frame(0x8, std::string("\x03\xe8", 2))), asio::use_awaitable);
  co_return "";
}

int run() {
  asio::io_context io(1);
  herald::registry<session> users;
  asio::ip::tcp::acceptor ws_acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::co_spawn(io, herald::accept_loop(ws_acceptor, [&](asio::ip::tcp::socket s) {
                   asio::co_spawn(io, serve(std::move(s), users), asio::detached);
                 }), asio::detached);
  herald::http_api_options api;
  api.api_key = "s3cret";
  asio::ip::tcp::acceptor api_acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::co_spawn(io, herald::serve_http_api(api_acceptor, users, api), asio::detached);

  std::string failure = "the client did not finish within 10 s";
  asio::steady_timer watchdog(io, std::chrono::seconds(10));
  watchdog.async_wait([&](herald::error_code ec) {
    if (!ec) io.stop();
  });
  asio::co_spawn(io, client(ws_acceptor.local_endpoint(), api_acceptor.local_endpoint()),
                 [&](std::exception_ptr e, std::string result) {
                   failure = std::move(result);
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& x) {
                       failure = std::string("client: ") + x.what();
                     }
                   }
                   io.stop();
                 });
  io.run();
  if (!failure.empty()) {
    std::cerr << "FAIL single_header: " << failure << std::endl;
    return 1;
  }
  std::cout << "ok single_header: pushed to alice over the HTTP API, delivered once and intact" << std::endl;
  return 0;
}

}  // namespace consumer

int main() { return consumer::run(); }
