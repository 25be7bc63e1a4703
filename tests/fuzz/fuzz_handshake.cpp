// libFuzzer target: the opening handshake, both roles.
//
// Input layout: byte 0 picks the head size limit and the read sizes; the rest is what a
// peer sent. Server role: the bytes arrive in reads as ws_session receives them, and
// http::parse_request is called on everything received so far after each read until it is
// done or fails; then ws::check_upgrade judges the request. Client role: the same bytes as
// a server's answer to ws::parse_server_response. Checked:
//   - a finished head ends with CRLFCRLF, fits the limit and the data, and parsing the
//     whole input at once gives the same head size (reads do not change the outcome);
//   - errors carry a status herald answers with (400, 431, 505) and a reason;
//   - check_upgrade accepts with a 101 whose Sec-WebSocket-Accept herald's client accepts
//     (a round trip through parse_server_response), or refuses with 400/426 and a response
//     that is a well-formed head;
//   - parse_server_response returns -1 with a reason, 0 while incomplete, or a head size
//     inside the data ending with CRLFCRLF.
#include <herald/http/request.hpp>
#include <herald/websocket/handshake.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace herald;

#define FUZZ_CHECK(cond)          \
  do {                            \
    if (!(cond)) __builtin_trap(); \
  } while (0)

bool ends_head(std::string_view data, std::size_t head_size) {
  return head_size >= 4 && head_size <= data.size() && data.substr(head_size - 4, 4) == "\r\n\r\n" &&
         data.find("\r\n\r\n") == head_size - 4;
}

void check_status(const http::parse_status& s, std::size_t limit, std::string_view data) {
  switch (s.kind) {
    case http::parse_status::need_more:
      FUZZ_CHECK(data.size() < limit);
      FUZZ_CHECK(data.find("\r\n\r\n") == std::string_view::npos);
      break;
    case http::parse_status::done:
      FUZZ_CHECK(s.head_size <= limit);
      FUZZ_CHECK(ends_head(data, s.head_size));
      break;
    case http::parse_status::error:
      FUZZ_CHECK(s.status == 400 || s.status == 431 || s.status == 505);
      FUZZ_CHECK(s.reason != nullptr && s.reason[0] != '\0');
      break;
  }
}

void check_request(const http::request& req) {
  FUZZ_CHECK(!req.method.empty());
  FUZZ_CHECK(!req.target.empty());
  for (char c : req.target) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7F);  // no CTL, no space
  FUZZ_CHECK(req.version_minor >= 0 && req.version_minor <= 9);
  for (const auto& [name, value] : req.headers) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(name.find_first_of(" \t\r\n:") == std::string::npos);
    FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
    // One entry per name (repeats are joined).
    std::size_t same = 0;
    for (const auto& h : req.headers) same += http::iequals(h.first, name);
    FUZZ_CHECK(same == 1);
  }
}

void check_upgrade(const http::request& req) {
  const auto v = ws::check_upgrade(req);
  const std::string_view response = v.response;
  FUZZ_CHECK(response.size() >= 4 && response.find("\r\n\r\n") != std::string_view::npos);
  if (v.accepted) {
    FUZZ_CHECK(v.status == 101);
    FUZZ_CHECK(response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    FUZZ_CHECK(response.substr(response.size() - 4) == "\r\n\r\n");
    // herald's own client accepts the answer for the key that was sent.
    std::string why;
    const long head = ws::parse_server_response(response, req.header("Sec-WebSocket-Key"), 8192, why);
    FUZZ_CHECK(head == static_cast<long>(response.size()));
  } else {
    FUZZ_CHECK(v.status == 400 || v.status == 426);
    FUZZ_CHECK(!v.reason.empty());
    FUZZ_CHECK(response.rfind("HTTP/1.1 " + std::to_string(v.status) + " ", 0) == 0);
    FUZZ_CHECK(response.find("Connection: close\r\n") != std::string_view::npos);
  }
}

void server_role(std::string_view input, std::size_t limit, std::size_t read_size) {
  // As ws_session::server_handshake: reads append to `head`, parse after each read.
  http::request req;
  http::parse_status s;
  std::size_t got = 0;
  do {
    got += read_size;
    if (got > input.size()) got = input.size();
    s = http::parse_request(input.substr(0, got), limit, req);
    check_status(s, limit, input.substr(0, got));
  } while (s.kind == http::parse_status::need_more && got < input.size());

  // The whole input at once reaches the same verdict when the reads found a complete head.
  http::request again;
  const auto whole = http::parse_request(input, limit, again);
  check_status(whole, limit, input);
  if (s.kind == http::parse_status::done) {
    FUZZ_CHECK(whole.kind == http::parse_status::done && whole.head_size == s.head_size);
    FUZZ_CHECK(again.method == req.method && again.target == req.target && again.headers == req.headers);
    check_request(req);
    check_upgrade(req);
  } else if (s.kind == http::parse_status::error) {
    FUZZ_CHECK(whole.kind == http::parse_status::error && whole.status == s.status);
  }
}

void client_role(std::string_view input, std::size_t limit) {
  static const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  std::string why;
  const long r = ws::parse_server_response(input, key, limit, why);
  FUZZ_CHECK(r >= -1);
  if (r == -1) FUZZ_CHECK(!why.empty());
  if (r == 0) FUZZ_CHECK(input.find("\r\n\r\n") == std::string_view::npos && input.size() < limit);
  if (r > 0) {
    FUZZ_CHECK(ends_head(input, static_cast<std::size_t>(r)));
    FUZZ_CHECK(input.rfind("HTTP/1.1 101", 0) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr std::size_t limits[4] = {64, 256, 1024, 8192};
  static constexpr std::size_t reads[4] = {1, 7, 100, 1 << 20};
  const std::size_t limit = limits[data[0] & 3];
  const std::size_t read_size = reads[(data[0] >> 2) & 3];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  server_role(input, limit, read_size);
  client_role(input, limit);
  return 0;
}
