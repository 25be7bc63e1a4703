// The HTTP request head parser and the opening handshake (RFC 6455 section 4), both roles.
#include <doctest/doctest.h>

#include <herald/http/request.hpp>
#include <herald/websocket/handshake.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using herald::http::parse_request;
using herald::http::parse_status;
using herald::http::request;
using herald::ws::check_upgrade;
using herald::ws::upgrade_verdict;

constexpr std::size_t limit = 8192;

const std::string rfc_request =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

const std::string rfc_response =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

// A request head from the request line and header lines (each without its CRLF).
std::string make_request(std::string_view request_line, std::initializer_list<std::string_view> headers) {
  std::string r(request_line);
  r += "\r\n";
  for (auto h : headers) {
    r += h;
    r += "\r\n";
  }
  r += "\r\n";
  return r;
}

std::string good_request_with(std::string_view skip, std::initializer_list<std::string_view> extra = {}) {
  std::string r = "GET /chat HTTP/1.1\r\n";
  const std::string_view defaults[] = {"Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"};
  for (auto h : defaults) {
    if (!skip.empty() && h.substr(0, skip.size()) == skip) continue;
    r.append(h).append("\r\n");
  }
  for (auto h : extra) r.append(h).append("\r\n");
  r += "\r\n";
  return r;
}

parse_status parse(std::string_view data, request& req, std::size_t max = limit) { return parse_request(data, max, req); }

// Parses a complete head (which must parse) and runs the upgrade check on it.
upgrade_verdict verdict_for(std::string_view data) {
  request req;
  const auto st = parse(data, req);
  REQUIRE(st.kind == parse_status::done);
  CHECK(st.head_size == data.size());
  return check_upgrade(req);
}

bool contains(std::string_view haystack, std::string_view needle) { return haystack.find(needle) != std::string_view::npos; }

// An error response says the status, closes the connection, and its body is the reason.
void check_error_response(const upgrade_verdict& v, int status) {
  CAPTURE(v.response);
  CHECK_FALSE(v.accepted);
  CHECK(v.status == status);
  CHECK_FALSE(v.reason.empty());
  CHECK(v.response.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
  CHECK(contains(v.response, "\r\nConnection: close\r\n"));
  const std::string body = v.reason + "\n";
  CHECK(contains(v.response, "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"));
  const auto end = v.response.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  CHECK(v.response.substr(end + 4) == body);
  CHECK_FALSE(contains(v.response, "Sec-WebSocket-Accept"));
}

void check_parse_error(std::string_view data, int status) {
  CAPTURE(data);
  request req;
  const auto st = parse(data, req);
  CHECK(st.kind == parse_status::error);
  CHECK(st.status == status);
  CHECK(std::string_view(st.reason) != "");
}

}  // namespace

// ---------------------------------------------------------------------------------------
// parse_request

TEST_CASE("http: the RFC 6455 sample request parses") {
  request req;
  const auto st = parse(rfc_request, req);
  REQUIRE(st.kind == parse_status::done);
  CHECK(st.head_size == rfc_request.size());
  CHECK(req.method == "GET");
  CHECK(req.target == "/chat");
  CHECK(req.version_minor == 1);
  CHECK(req.headers.size() == 7);
  CHECK(req.header("Host") == "server.example.com");
  CHECK(req.header("host") == "server.example.com");
  CHECK(req.header("SEC-WEBSOCKET-PROTOCOL") == "chat, superchat");
  CHECK(req.header("Origin") == "http://example.com");
  CHECK(req.header("X-Absent") == "");
  CHECK(req.has_header("sec-websocket-key"));
  CHECK_FALSE(req.has_header("Cookie"));
}

TEST_CASE("http: bytes after the head are not part of it") {
  const std::string data = rfc_request + "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  request req;
  const auto st = parse(data, req);
  REQUIRE(st.kind == parse_status::done);
  CHECK(st.head_size == rfc_request.size());
}

TEST_CASE("http: need_more until the blank line") {
  for (std::size_t n = 0; n < rfc_request.size(); ++n) {
    CAPTURE(n);
    request req;
    const auto st = parse(std::string_view(rfc_request).substr(0, n), req);
    CHECK(st.kind == parse_status::need_more);
    CHECK(st.status == 0);
  }
  // A lone LF is not a line end.
  request req;
  CHECK(parse("GET / HTTP/1.1\nHost: x\n\n", req).kind == parse_status::need_more);
}

TEST_CASE("http: header values are trimmed, repeated headers joined") {
  request req;
  const auto st = parse(make_request("GET /x?y=1 HTTP/1.1",
                                     {"Host:\t h \t", "X-A: 1", "x-a: 2", "X-Empty:", "Accept:  text/plain  "}),
                        req);
  REQUIRE(st.kind == parse_status::done);
  CHECK(req.target == "/x?y=1");
  CHECK(req.header("Host") == "h");
  CHECK(req.header("X-A") == "1, 2");
  CHECK(req.has_header("X-Empty"));
  CHECK(req.header("X-Empty") == "");
  CHECK(req.header("accept") == "text/plain");
  CHECK(req.headers.size() == 4);
}

TEST_CASE("http: a head over the size limit is 431") {
  const std::string big = make_request("GET / HTTP/1.1", {"Host: x", "X-Pad: " + std::string(200, 'p')});
  SUBCASE("complete, one byte over") {
    request req;
    CHECK(parse(big, req, big.size()).kind == parse_status::done);
    const auto st = parse(big, req, big.size() - 1);
    CHECK(st.kind == parse_status::error);
    CHECK(st.status == 431);
  }
  SUBCASE("no terminator yet, already at the limit") {
    const std::string partial = big.substr(0, 100);
    request req;
    CHECK(parse(partial, req, 101).kind == parse_status::need_more);
    const auto st = parse(partial, req, 100);
    CHECK(st.kind == parse_status::error);
    CHECK(st.status == 431);
    CHECK(parse(partial, req, 50).status == 431);
  }
  SUBCASE("a terminator found beyond the limit") {
    request req;
    const auto st = parse(big, req, 64);
    CHECK(st.kind == parse_status::error);
    CHECK(st.status == 431);
  }
}

TEST_CASE("http: malformed request lines are 400") {
  check_parse_error("GET /chat\r\nHost: x\r\n\r\n", 400);
  check_parse_error("GET\r\nHost: x\r\n\r\n", 400);
  check_parse_error("\r\n\r\n", 400);
  check_parse_error(" GET /chat HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  check_parse_error("GET  /chat HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  check_parse_error("G(T /chat HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  check_parse_error("GET\t/chat HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST_CASE("http: a space inside the request target is a malformed request line") {
  check_parse_error("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

TEST_CASE("http: a version other than HTTP/1.x is 505") {
  check_parse_error("GET /chat HTTP/2.0\r\nHost: x\r\n\r\n", 505);
  check_parse_error("GET /chat HTTP/1.10\r\nHost: x\r\n\r\n", 505);
  check_parse_error("GET /chat http/1.1\r\nHost: x\r\n\r\n", 505);
  check_parse_error("GET /chat HTTP/1.x\r\nHost: x\r\n\r\n", 505);
}

TEST_CASE("http: malformed header lines are 400") {
  check_parse_error(make_request("GET / HTTP/1.1", {"Host server.example.com"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {": no name"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"Host : space before the colon"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"Bad Name: x"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"Bad(Name): x"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"X-Ctl: a\x01z"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"X-Del: a\x7Fz"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"X-Lf: a\nb"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"X-Cr: a\rb"}), 400);
  // A tab inside a value is allowed.
  request req;
  CHECK(parse(make_request("GET / HTTP/1.1", {"X-Tab: a\tb"}), req).kind == parse_status::done);
  CHECK(req.header("X-Tab") == "a\tb");
}

TEST_CASE("http: obsolete line folding is 400") {
  check_parse_error(make_request("GET / HTTP/1.1", {"Host: x", "X-Long: a", " continued"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {"Host: x", "X-Long: a", "\tcontinued"}), 400);
  check_parse_error(make_request("GET / HTTP/1.1", {" Host: x"}), 400);
  // Reported as folding, not as some other malformation of the line.
  request req;
  const auto st = parse(make_request("GET / HTTP/1.1", {"Host: x", "X-Long: a", " b: c"}), req);
  CHECK(st.kind == parse_status::error);
  CHECK(st.status == 400);
  CHECK(contains(st.reason, "fold"));
}

// ---------------------------------------------------------------------------------------
// check_upgrade (server role)

TEST_CASE("handshake: the RFC 1.3 request gets the exact 101 response") {
  const auto v = verdict_for(rfc_request);
  CHECK(v.accepted);
  CHECK(v.status == 101);
  CHECK(v.response == rfc_response);
}

TEST_CASE("handshake: header names and tokens are case-insensitive; Connection is a list") {
  const std::string req = make_request("GET /chat HTTP/1.1", {"host: server.example.com", "UPGRADE: WebSocket",
                                                              "connection: keep-alive, Upgrade",
                                                              "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                                                              "SEC-WEBSOCKET-VERSION: 13"});
  const auto v = verdict_for(req);
  CHECK(v.accepted);
  CHECK(v.response == rfc_response);
  CHECK(verdict_for(good_request_with("Connection", {"Connection: keep-alive,upgrade"})).accepted);
  CHECK(verdict_for(good_request_with("Connection", {"Connection: Upgrade, keep-alive"})).accepted);
  CHECK(verdict_for(good_request_with("Connection", {"Connection: keep-alive", "Connection: Upgrade"})).accepted);
  CHECK(verdict_for(good_request_with("Upgrade", {"Upgrade: foo/2, websocket"})).accepted);
}

TEST_CASE("handshake: a missing or wrong header is 400 with a reason") {
  SUBCASE("Host") {
    const auto v = verdict_for(good_request_with("Host"));
    check_error_response(v, 400);
    CHECK(contains(v.reason, "Host"));
  }
  SUBCASE("Upgrade") {
    const auto v = verdict_for(good_request_with("Upgrade"));
    check_error_response(v, 400);
    CHECK(contains(v.reason, "Upgrade"));
    check_error_response(verdict_for(good_request_with("Upgrade", {"Upgrade: h2c"})), 400);
    check_error_response(verdict_for(good_request_with("Upgrade", {"Upgrade: websockets"})), 400);
  }
  SUBCASE("Connection") {
    const auto v = verdict_for(good_request_with("Connection"));
    check_error_response(v, 400);
    CHECK(contains(v.reason, "Connection"));
    check_error_response(verdict_for(good_request_with("Connection", {"Connection: keep-alive"})), 400);
    check_error_response(verdict_for(good_request_with("Connection", {"Connection: Upgraded"})), 400);
  }
  SUBCASE("Sec-WebSocket-Key") {
    const auto v = verdict_for(good_request_with("Sec-WebSocket-Key"));
    check_error_response(v, 400);
    CHECK(contains(v.reason, "Sec-WebSocket-Key"));
  }
}

TEST_CASE("handshake: a key that is not 16 bytes of base64 is 400") {
  for (std::string_view key : {"dGhlIHNhbXBsZSBub25jZQ",        // unpadded
                               "dGhlIHNhbXBsZSBub25jZQ=",       // bad padding
                               "dGhlIHNhbXBsZSBub25j",          // 15 bytes
                               "dGhlIHNhbXBsZSBub25jZSE=",      // 17 bytes
                               "dGhlIHNhbXBsZSBub25jZQ==dGhl",  // trailing data
                               "dGhlIHNhbXBsZSBub25j!Q==",      // not base64
                               ""}) {
    CAPTURE(key);
    const std::string header = "Sec-WebSocket-Key: " + std::string(key);
    check_error_response(verdict_for(good_request_with("Sec-WebSocket-Key", {header})), 400);
  }
  // Two keys are joined into one value, which is not a key.
  check_error_response(verdict_for(good_request_with("", {"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="})), 400);
  // Any 16 bytes will do.
  const auto v = verdict_for(good_request_with("Sec-WebSocket-Key", {"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="}));
  CHECK(v.accepted);
  CHECK(contains(v.response, "\r\nSec-WebSocket-Accept: " + herald::ws::accept_key("AAAAAAAAAAAAAAAAAAAAAA==") + "\r\n"));
  CHECK(herald::ws::accept_key("AAAAAAAAAAAAAAAAAAAAAA==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("handshake: a method other than GET is 400") {
  std::string post = rfc_request;
  post.replace(0, 3, "POST");
  check_error_response(verdict_for(post), 400);
  std::string lower = rfc_request;
  lower.replace(0, 3, "get");
  check_error_response(verdict_for(lower), 400);
}

TEST_CASE("handshake: a version other than 13 is 426 and names version 13") {
  for (std::string_view version : {"8", "12", "14", "", "13, 8"}) {
    CAPTURE(version);
    const std::string header = "Sec-WebSocket-Version: " + std::string(version);
    const auto v = verdict_for(good_request_with("Sec-WebSocket-Version", {header}));
    check_error_response(v, 426);
    CHECK(contains(v.response, "\r\nSec-WebSocket-Version: 13\r\n"));
  }
  const auto missing = verdict_for(good_request_with("Sec-WebSocket-Version"));
  check_error_response(missing, 426);
  CHECK(contains(missing.response, "\r\nSec-WebSocket-Version: 13\r\n"));
}

TEST_CASE("handshake: HTTP/1.0 is 400") {
  std::string old = rfc_request;
  old.replace(old.find("HTTP/1.1"), 8, "HTTP/1.0");
  request req;
  REQUIRE(parse(old, req).kind == parse_status::done);
  CHECK(req.version_minor == 0);
  check_error_response(check_upgrade(req), 400);
  // A later 1.x is fine.
  std::string later = rfc_request;
  later.replace(later.find("HTTP/1.1"), 8, "HTTP/1.2");
  CHECK(verdict_for(later).accepted);
}

// ---------------------------------------------------------------------------------------
// The client role

TEST_CASE("handshake: client_request and parse_server_response round trip") {
  const std::uint8_t nonce[16] = {'t', 'h', 'e', ' ', 's', 'a', 'm', 'p', 'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'};
  std::string key;
  const std::string req_bytes = herald::ws::client_request("server.example.com", "/chat", nonce, key);
  CHECK(key == "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK(req_bytes ==
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n");

  const auto v = verdict_for(req_bytes);
  REQUIRE(v.accepted);
  std::string why;
  CHECK(herald::ws::parse_server_response(v.response, key, 4096, why) == static_cast<long>(v.response.size()));
  CHECK(why.empty());
  // Frames right behind the head are not part of it.
  const std::string with_frame = v.response + "\x81\x05Hello";
  CHECK(herald::ws::parse_server_response(with_frame, key, 4096, why) == static_cast<long>(v.response.size()));
  // Every prefix is incomplete.
  for (std::size_t n = 0; n < v.response.size(); ++n) {
    CAPTURE(n);
    CHECK(herald::ws::parse_server_response(std::string_view(v.response).substr(0, n), key, 4096, why) == 0);
  }

  // An offer of extensions goes in its own header line, before the blank line.
  std::string key3;
  const std::string offered = herald::ws::client_request("h", "/", nonce, key3, "permessage-deflate; client_max_window_bits");
  CHECK(offered.substr(offered.find("Sec-WebSocket-Version: 13\r\n") + 27) == "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n");
  CHECK(verdict_for(offered).accepted);

  // Another nonce, another key.
  std::uint8_t other[16];
  for (int i = 0; i < 16; ++i) other[i] = static_cast<std::uint8_t>(i * 17 + 250);
  std::string key2;
  const auto v2 = verdict_for(herald::ws::client_request("h", "/", other, key2));
  REQUIRE(v2.accepted);
  CHECK(key2 != key);
  CHECK(herald::ws::parse_server_response(v2.response, key2, 4096, why) == static_cast<long>(v2.response.size()));
  // The response for one key does not satisfy the other.
  why.clear();
  CHECK(herald::ws::parse_server_response(v2.response, key, 4096, why) == -1);
  CHECK_FALSE(why.empty());
}

TEST_CASE("handshake: parse_server_response refuses wrong answers") {
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  std::string why;
  SUBCASE("header names in any case") {
    const std::string r =
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: upgrade\r\n"
        "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    CHECK(herald::ws::parse_server_response(r, key, 4096, why) == static_cast<long>(r.size()));
  }
  SUBCASE("wrong accept value") {
    std::string r = rfc_response;
    r.replace(r.find("s3pP"), 4, "s3pQ");
    CHECK(herald::ws::parse_server_response(r, key, 4096, why) == -1);
    CHECK_FALSE(why.empty());
  }
  SUBCASE("missing accept, upgrade or connection") {
    for (std::string_view drop : {"Sec-WebSocket-Accept", "Upgrade: websocket", "Connection: Upgrade"}) {
      CAPTURE(drop);
      std::string r = rfc_response;
      const auto at = r.find(drop);
      r.erase(at, r.find("\r\n", at) + 2 - at);
      why.clear();
      CHECK(herald::ws::parse_server_response(r, key, 4096, why) == -1);
      CHECK_FALSE(why.empty());
    }
  }
  SUBCASE("not 101") {
    const auto refused = verdict_for(good_request_with("Sec-WebSocket-Version", {"Sec-WebSocket-Version: 8"}));
    CHECK(herald::ws::parse_server_response(refused.response, key, 4096, why) == -1);
    CHECK(contains(why, "426"));
    why.clear();
    std::string r = rfc_response;
    r.replace(0, 12, "HTTP/1.1 200");
    CHECK(herald::ws::parse_server_response(r, key, 4096, why) == -1);
    CHECK(contains(why, "200"));
  }
  SUBCASE("a status that only starts with 101, a header line without a colon") {
    std::string r = rfc_response;
    r.replace(0, 12, "HTTP/1.1 1010");
    CHECK(herald::ws::parse_server_response(r, key, 4096, why) == -1);
    CHECK(contains(why, "1010"));
    why.clear();
    r = rfc_response;
    r.insert(r.find("\r\n") + 2, "no colon here\r\n");
    CHECK(herald::ws::parse_server_response(r, key, 4096, why) == -1);
    CHECK(contains(why, "malformed"));
  }
  SUBCASE("an extension or subprotocol the client did not ask for") {
    for (std::string_view extra : {"Sec-WebSocket-Extensions: permessage-deflate", "Sec-WebSocket-Protocol: chat"}) {
      CAPTURE(extra);
      std::string r = rfc_response;
      r.insert(r.find("\r\n") + 2, std::string(extra) + "\r\n");
      why.clear();
      CHECK(herald::ws::parse_server_response(r, key, 4096, why) == -1);
      CHECK(contains(why, "not requested"));
    }
  }
  SUBCASE("with somewhere to put it, the extensions answer is handed back (lines joined), not refused") {
    std::string r = rfc_response;
    r.insert(r.find("\r\n") + 2, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                                  "sec-websocket-extensions: x-other\r\n");
    std::string extensions = "stale";
    CHECK(herald::ws::parse_server_response(r, key, 4096, why, &extensions) == static_cast<long>(r.size()));
    CHECK(extensions == "permessage-deflate; server_no_context_takeover, x-other");
    CHECK(herald::ws::parse_server_response(rfc_response, key, 4096, why, &extensions) == static_cast<long>(rfc_response.size()));
    CHECK(extensions.empty());
    // A subprotocol is still refused.
    r = rfc_response;
    r.insert(r.find("\r\n") + 2, "Sec-WebSocket-Protocol: chat\r\n");
    CHECK(herald::ws::parse_server_response(r, key, 4096, why, &extensions) == -1);
  }
  SUBCASE("a head too large") {
    const std::string partial = "HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + std::string(200, 'x');
    CHECK(herald::ws::parse_server_response(partial, key, 4096, why) == 0);
    CHECK(herald::ws::parse_server_response(partial, key, 64, why) == -1);
    CHECK_FALSE(why.empty());
  }
}
