// Inputs the fuzzers (tests/fuzz/) found, kept as regression tests: one TEST_CASE per finding,
// with the input as the fuzzer reported it (configuration bytes removed).
#include <doctest/doctest.h>

#include <herald/http/request.hpp>
#include <herald/websocket/handshake.hpp>

#include <string>
#include <string_view>

using namespace herald;

namespace {

const std::string rest_of_head =
    " HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

}  // namespace

// fuzz_handshake, crash-0d7f141215d3e2fe4b84a4a430398918bb53be66: parse_request accepted a
// request target holding NUL bytes (and any other control character but space and tab), and
// handed it to the application as ws_session::target().
TEST_CASE("fuzz_handshake: control characters in the request target are a 400") {
  const std::string found = std::string("GET /c") + std::string(28, '\0') + "hat" + rest_of_head;
  http::request req;
  auto s = http::parse_request(found, 8192, req);
  CHECK(s.kind == http::parse_status::error);
  CHECK(s.status == 400);
  CHECK(std::string_view(s.reason) == "malformed request target");

  for (char c : {'\0', '\x01', '\r', '\n', '\t', '\x1B', '\x7F'}) {
    CAPTURE(int(c));
    const std::string head = std::string("GET /a") + c + "b" + rest_of_head;
    http::request r;
    auto st = http::parse_request(head, 8192, r);
    CHECK(st.kind == http::parse_status::error);
    CHECK(st.status == 400);
  }

  // Visible ASCII and UTF-8 (obs-text) stay accepted.
  for (std::string target : {"/chat?room=1&x=%20y", "/~user/a;b,c!$'()*+=@:", "/caf\xC3\xA9"}) {
    CAPTURE(target);
    http::request r;
    auto st = http::parse_request("GET " + target + rest_of_head, 8192, r);
    REQUIRE(st.kind == http::parse_status::done);
    CHECK(r.target == target);
    CHECK(ws::check_upgrade(r).accepted);
  }
}
