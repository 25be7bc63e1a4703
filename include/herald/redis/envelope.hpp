// The payload herald nodes publish on Redis, and how a received payload is read.
//
//   envelope:  0x1E <node-id> 0x1E <kind> <body>
//              node-id: 1 to 64 bytes of [A-Za-z0-9_.-], the publishing node
//              kind:    't' (the body is a text message) or 'b' (a binary message)
//   recorded:  0x1E <node-id> 0x1E h <epoch> 0x1E <offset> 0x1E <t|b> <body>
//              a message in a uid's history (published by the history function in Redis,
//              policy/redis_cluster.hpp): epoch 1 to 64 bytes of [A-Za-z0-9_.-], offset decimal
//   anything else (a payload that does not start with such a header) is the message itself:
//              sent as text, or as binary when it is not UTF-8.
//
// So `PUBLISH <prefix>:uid:alice "hello"` from redis-cli delivers "hello" to alice, while a
// node recognises its own publications by the node id and skips them (it has already
// delivered them to its local sessions). No hiredis here: this header is plain C++.
#ifndef HERALD_REDIS_ENVELOPE_HPP
#define HERALD_REDIS_ENVELOPE_HPP
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
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
  // A recorded message (kind 'h'): its place in the uid's history. offset 0: not recorded.
  std::string_view epoch;
  std::uint64_t offset = 0;
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
    std::string_view rest;
    bool ok = false;
    if (end != std::string_view::npos && end + 1 < payload.size() && valid_node_id(payload.substr(1, end - 1))) {
      rest = payload.substr(end + 1);
      if (rest[0] == 't' || rest[0] == 'b') {
        ok = true;
      } else if (rest[0] == 'h') {  // h <epoch> 0x1E <offset> 0x1E <t|b> <body>
        const auto e1 = rest.find(envelope_mark, 1);
        const auto e2 = e1 == std::string_view::npos ? e1 : rest.find(envelope_mark, e1 + 1);
        if (e2 != std::string_view::npos && e2 + 1 < rest.size() && valid_node_id(rest.substr(1, e1 - 1)) &&
            (rest[e2 + 1] == 't' || rest[e2 + 1] == 'b')) {
          const std::string_view digits = rest.substr(e1 + 1, e2 - e1 - 1);
          std::uint64_t offset = 0;
          const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), offset);
          if (r.ec == std::errc{} && r.ptr == digits.data() + digits.size() && offset > 0) {
            e.epoch = rest.substr(1, e1 - 1);
            e.offset = offset;
            rest = rest.substr(e2 + 1);
            ok = true;
          }
        }
      }
    }
    if (ok) {
      e.origin = payload.substr(1, end - 1);
      e.binary = rest[0] == 'b';
      e.body = rest.substr(1);
      // A text envelope whose body is not UTF-8 cannot go out as a text frame.
      if (!e.binary && !herald::detail::is_valid_utf8(e.body.data(), e.body.size())) e.binary = true;
      return e;
    }
    e.epoch = {};
    e.offset = 0;
  }
  e.body = payload;
  e.binary = !herald::detail::is_valid_utf8(payload.data(), payload.size());
  return e;
}

}  // namespace herald::redis

#endif  // HERALD_REDIS_ENVELOPE_HPP
