// The payload herald nodes publish on Redis, and how a received payload is read.
//
//   envelope:  0x1E <node-id> 0x1E <kind> <body>
//              node-id: 1 to 64 bytes of [A-Za-z0-9_.-], the publishing node
//              kind:    't' (the body is a text message) or 'b' (a binary message)
//   anything else (a payload that does not start with such a header) is the message itself:
//              sent as text, or as binary when it is not UTF-8.
//
// So `PUBLISH <prefix>:uid:alice "hello"` from redis-cli delivers "hello" to alice, while a
// node recognises its own publications by the node id and skips them (it has already
// delivered them to its local sessions). No hiredis here: this header is plain C++.
#ifndef HERALD_REDIS_ENVELOPE_HPP
#define HERALD_REDIS_ENVELOPE_HPP
#include <cstddef>
#include <string>
#include <string_view>

#include "../detail/utf8.hpp"

namespace herald::redis {

inline constexpr char envelope_mark = '\x1E';  // ASCII "record separator"
inline constexpr std::size_t max_node_id_size = 64;

inline bool valid_node_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > max_node_id_size) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}

// A payload as read from Redis.
struct envelope {
  std::string_view origin;  // the publishing node; empty for a plain payload
  bool binary = false;      // send as a binary message
  std::string_view body;    // the message
};

// Wraps a message published by node `node_id` (which must satisfy valid_node_id).
inline std::string wrap(std::string_view node_id, bool binary, std::string_view body) {
  std::string out;
  out.reserve(node_id.size() + 3 + body.size());
  out += envelope_mark;
  out += node_id;
  out += envelope_mark;
  out += binary ? 'b' : 't';
  out += body;
  return out;
}

// Reads a payload: an envelope, or a plain message (text if UTF-8, else binary).
inline envelope unwrap(std::string_view payload) noexcept {
  envelope e;
  if (payload.size() >= 4 && payload[0] == envelope_mark) {
    const auto end = payload.find(envelope_mark, 1);
    if (end != std::string_view::npos && end + 1 < payload.size() && valid_node_id(payload.substr(1, end - 1)) &&
        (payload[end + 1] == 't' || payload[end + 1] == 'b')) {
      e.origin = payload.substr(1, end - 1);
      e.binary = payload[end + 1] == 'b';
      e.body = payload.substr(end + 2);
      // A text envelope whose body is not UTF-8 cannot go out as a text frame.
      if (!e.binary && !herald::detail::is_valid_utf8(e.body.data(), e.body.size())) e.binary = true;
      return e;
    }
  }
  e.body = payload;
  e.binary = !herald::detail::is_valid_utf8(payload.data(), payload.size());
  return e;
}

}  // namespace herald::redis

#endif  // HERALD_REDIS_ENVELOPE_HPP
