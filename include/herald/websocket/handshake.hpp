// The opening handshake (RFC 6455 section 4), both roles, sans-I/O.
#ifndef HERALD_WEBSOCKET_HANDSHAKE_HPP
#define HERALD_WEBSOCKET_HANDSHAKE_HPP
#include <cstdint>
#include <string>
#include <string_view>

#include "../detail/base64.hpp"
#include "../detail/sha1.hpp"
#include "../http/request.hpp"

namespace herald::ws {

inline constexpr std::string_view handshake_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (section 4.2.2, step 5.4).
inline std::string accept_key(std::string_view client_key) {
  detail::sha1 h;
  h.update(client_key);
  h.update(handshake_guid);
  const auto d = h.finish();
  return detail::base64_encode(d.data(), d.size());
}

// The server's verdict on an upgrade request: either the 101 response to send, or an
// HTTP error response (400 with the reason, 426 for a version other than 13).
struct upgrade_verdict {
  bool accepted = false;
  int status = 0;
  std::string reason;
  std::string response;  // bytes to write back, whichever the verdict
};

inline upgrade_verdict check_upgrade(const http::request& req) {
  auto refuse = [](int status, std::string reason, std::string_view extra = {}) {
    upgrade_verdict v;
    v.status = status;
    v.response = http::error_response(status, reason, extra);
    v.reason = std::move(reason);
    return v;
  };
  if (req.method != "GET") return refuse(400, "a WebSocket handshake must be a GET request");
  if (req.version_minor < 1) return refuse(400, "a WebSocket handshake needs HTTP/1.1");
  if (!req.has_header("Host")) return refuse(400, "missing Host header");
  if (!http::has_token(req.header("Upgrade"), "websocket")) return refuse(400, "missing or wrong Upgrade header (expected websocket)");
  if (!http::has_token(req.header("Connection"), "Upgrade")) return refuse(400, "missing or wrong Connection header (expected Upgrade)");
  const auto key = req.header("Sec-WebSocket-Key");
  const auto raw = detail::base64_decode(key);
  if (!raw || raw->size() != 16) return refuse(400, "Sec-WebSocket-Key must be 16 bytes in base64");
  if (http::trim(req.header("Sec-WebSocket-Version")) != "13")
    return refuse(426, "only WebSocket version 13 is supported", "Sec-WebSocket-Version: 13\r\n");
  upgrade_verdict v;
  v.accepted = true;
  v.status = 101;
  v.response =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " + accept_key(key) + "\r\n\r\n";
  return v;
}

// Client role: the request for `host` and `target` with a key made from 16 random bytes.
// `extensions`, when not empty, is offered as the Sec-WebSocket-Extensions value.
inline std::string client_request(std::string_view host, std::string_view target, const std::uint8_t (&nonce)[16],
                                  std::string& key_out, std::string_view extensions = {}) {
  key_out = detail::base64_encode(nonce, 16);
  std::string r = "GET ";
  r.append(target).append(" HTTP/1.1\r\nHost: ").append(host);
  r += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  r += key_out;
  r += "\r\nSec-WebSocket-Version: 13\r\n";
  if (!extensions.empty()) r.append("Sec-WebSocket-Extensions: ").append(extensions).append("\r\n");
  r += "\r\n";
  return r;
}

// Client role: parse the server's response head. Returns the head size, 0 while it is
// incomplete, or -1 when the server refused or answered wrongly (reason in `why`).
// `extensions`: where the Sec-WebSocket-Extensions value goes (several lines joined with
// ", "), for the caller to check against what it offered (permessage-deflate:
// ws::accept_deflate_response). Without it, a server that chose an extension is refused.
inline long parse_server_response(std::string_view data, std::string_view key, std::size_t max_head_size, std::string& why,
                                  std::string* extensions = nullptr) {
  const auto end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= max_head_size) { why = "response head too large"; return -1; }
    return 0;
  }
  std::string_view head = data.substr(0, end + 2);
  const auto eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, eol);
  // "HTTP/1.1 101" then a space and a reason (or nothing): not "HTTP/1.1 1010".
  if (status_line.substr(0, 12) != "HTTP/1.1 101" || (status_line.size() > 12 && status_line[12] != ' ')) {
    why = "server refused the upgrade: " + std::string(status_line);
    return -1;
  }
  head.remove_prefix(eol + 2);
  bool upgrade = false, connection = false, accept = false;
  const std::string expected = accept_key(key);
  if (extensions) extensions->clear();
  while (!head.empty()) {
    const auto e = head.find("\r\n");
    const std::string_view line = head.substr(0, e);
    head.remove_prefix(e + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      why = "malformed header line in the upgrade response";
      return -1;
    }
    const auto name = line.substr(0, colon);
    const auto value = http::trim(line.substr(colon + 1));
    if (http::iequals(name, "Upgrade")) upgrade = http::iequals(value, "websocket");
    else if (http::iequals(name, "Connection")) connection = http::has_token(value, "Upgrade");
    else if (http::iequals(name, "Sec-WebSocket-Accept")) accept = value == expected;
    else if (extensions && http::iequals(name, "Sec-WebSocket-Extensions")) {
      if (!extensions->empty() && !value.empty()) *extensions += ", ";
      *extensions += value;
    } else if ((http::iequals(name, "Sec-WebSocket-Extensions") || http::iequals(name, "Sec-WebSocket-Protocol")) && !value.empty()) {
      // Not asked for; a server that picks one anyway must be refused (RFC 6455 4.1).
      why = "server chose " + std::string(name) + " that was not requested";
      return -1;
    }
  }
  if (!upgrade || !connection || !accept) {
    why = "invalid upgrade response";
    return -1;
  }
  return static_cast<long>(end + 4);
}

}  // namespace herald::ws

#endif  // HERALD_WEBSOCKET_HANDSHAKE_HPP
