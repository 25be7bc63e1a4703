// A pull parser for RFC 6455 frames: bytes in, one event out per call. No I/O, no
// allocation for a message that arrives in one piece (it is unmasked and validated in
// the caller's buffer); fragmented or partially received messages are assembled here.
// With permessage-deflate enabled (enable_compression), a message whose first frame has RSV1
// set is reported `compressed`: its payload is the compressed body, for the caller to inflate.
#ifndef HERALD_WEBSOCKET_PARSER_HPP
#define HERALD_WEBSOCKET_PARSER_HPP
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../detail/utf8.hpp"
#include "frame.hpp"

namespace herald::ws {

enum class event_kind : std::uint8_t {
  need_more,  // everything given was consumed or is an incomplete header; call again with more
  message,    // a whole text or binary message: `op`, `payload`
  ping,       // `payload` (at most 125 bytes)
  pong,       // `payload`
  close,      // `code` (1005 when the frame had none), `reason`
  error,      // the peer broke the protocol: close with `code` and `reason`; the parser stays failed
};

struct event {
  event_kind kind = event_kind::need_more;
  opcode op = opcode::continuation;
  // A message sent compressed (permessage-deflate, RSV1 on its first frame): `payload` is the
  // compressed body, not yet checked for UTF-8; the caller inflates and checks it.
  bool compressed = false;
  std::string_view payload;  // valid until the next call to next() or until the input buffer changes
  std::uint16_t code = 0;
  std::string_view reason;
};

struct parse_result {
  std::size_t consumed = 0;  // bytes of the input used; the rest must be offered again
  event ev;
};

struct parser_limits {
  std::size_t max_message_size = 64 * 1024;
};

class parser {
 public:
  explicit parser(role r = role::server, parser_limits limits = {}) noexcept : role_(r), limits_(limits) {}

  // Parses from `data` (which it may modify: payloads are unmasked in place). Returns after
  // the first event, or with need_more once all complete input is used.
  parse_result next(std::uint8_t* data, std::size_t size) {
    if (failed_) return {0, error_event()};
    if (release_assembly_) {
      release_assembly_ = false;
      assembly_.clear();
      if (assembly_.capacity() > keep_capacity) std::string().swap(assembly_);
    }
    std::size_t pos = 0;
    for (;;) {
      if (!in_frame_) {
        const std::size_t avail = size - pos;
        if (avail < 2) return {pos, {}};
        const std::uint8_t b0 = data[pos], b1 = data[pos + 1];
        const bool fin = b0 & 0x80;
        const std::uint8_t op = b0 & 0x0F;
        const bool masked = b1 & 0x80;
        const std::uint8_t len7 = b1 & 0x7F;
        // Judge what the first two bytes already show before waiting for the rest.
        if (b0 & 0x70) {
          // RSV1 may mark a compressed message, on its first frame only (RFC 7692 section 6.1).
          if (!compression_) return fail(pos, close_code::protocol_error, "reserved bits set without an extension");
          if (b0 & 0x30) return fail(pos, close_code::protocol_error, "RSV2 or RSV3 set (no extension defines them)");
          if (op != 1 && op != 2)
            return fail(pos, close_code::protocol_error,
                        op == 0 ? "RSV1 set on a continuation frame" : "RSV1 set on a control or unknown frame");
        }
        if (!is_known_opcode(op)) return fail(pos, close_code::protocol_error, "unknown opcode");
        const bool control = op & 0x8;
        if (control && !fin) return fail(pos, close_code::protocol_error, "fragmented control frame");
        if (control && len7 > max_control_payload) return fail(pos, close_code::protocol_error, "control frame longer than 125 bytes");
        if (masked != (role_ == role::server))
          return fail(pos, close_code::protocol_error, role_ == role::server ? "client frame not masked" : "server frame masked");
        if (op == 0 && !in_message_) return fail(pos, close_code::protocol_error, "continuation frame without a message to continue");
        if ((op == 1 || op == 2) && in_message_) return fail(pos, close_code::protocol_error, "new message before the previous one ended");
        const std::size_t header = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (avail < header) return {pos, {}};
        std::uint64_t len = len7;
        std::size_t p = pos + 2;
        if (len7 == 126) {
          len = std::uint64_t(data[p]) << 8 | data[p + 1];
          p += 2;
          if (len < 126) return fail(pos, close_code::protocol_error, "length not in its shortest form");
        } else if (len7 == 127) {
          len = 0;
          for (int i = 0; i < 8; ++i) len = len << 8 | data[p + i];
          p += 8;
          if (len >> 63) return fail(pos, close_code::protocol_error, "64-bit length with its top bit set");
          if (len <= 0xFFFF) return fail(pos, close_code::protocol_error, "length not in its shortest form");
        }
        std::uint32_t key = 0;
        if (masked) {
          std::memcpy(&key, data + p, 4);
          p += 4;
        }
        if (control) {
          // Control frames are small: wait until one is whole, then answer it in place.
          if (avail < header + len) return {pos, {}};
          std::uint8_t* payload = data + p;
          if (masked) apply_mask(payload, len, key);
          pos = p + len;
          return {pos, control_event(static_cast<opcode>(op), payload, len)};
        }
        // A continuation adds to the message so far; a new message starts from zero.
        const std::uint64_t so_far = op == 0 ? message_size_ : 0;
        if (len > limits_.max_message_size || so_far + len > limits_.max_message_size)
          return fail(pos, close_code::message_too_big, "message larger than the limit");
        if (op != 0) {
          in_message_ = true;
          message_op_ = static_cast<opcode>(op);
          compressed_ = (b0 & 0x40) != 0;
          check_utf8_ = op == 1 && !compressed_;  // a compressed text message is checked once inflated
          message_size_ = 0;
          utf8_.reset();
        }
        message_size_ += len;
        frame_fin_ = fin;
        frame_remaining_ = len;
        mask_key_ = key;
        mask_offset_ = 0;
        in_frame_ = true;
        pos = p;
        // The whole message is here in one frame: hand it out from the caller's buffer.
        if (fin && op != 0 && size - pos >= len) {
          std::uint8_t* payload = data + pos;
          if (masked) apply_mask(payload, len, key);
          if (check_utf8_ && !detail::is_valid_utf8(payload, len))
            return fail(pos, close_code::invalid_payload, "text message is not valid UTF-8");
          pos += len;
          in_frame_ = false;
          in_message_ = false;
          return {pos, message_event(payload, len)};
        }
      }
      // Inside a data frame whose bytes arrive in pieces or which belongs to a fragmented message.
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, size - pos));
      std::uint8_t* chunk = data + pos;
      if (role_ == role::server) apply_mask(chunk, take, mask_key_, mask_offset_);
      if (check_utf8_ && !utf8_.feed(chunk, take))
        return fail(pos, close_code::invalid_payload, "text message is not valid UTF-8");
      assembly_.append(reinterpret_cast<const char*>(chunk), take);
      pos += take;
      frame_remaining_ -= take;
      mask_offset_ += take;
      if (frame_remaining_ != 0) return {pos, {}};
      in_frame_ = false;
      if (frame_fin_) {
        if (check_utf8_ && !utf8_.complete())
          return fail(pos, close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
        in_message_ = false;
        release_assembly_ = true;
        return {pos, message_event(reinterpret_cast<std::uint8_t*>(assembly_.data()), assembly_.size())};
      }
    }
  }

  // After permessage-deflate was negotiated: RSV1 on the first frame of a text or binary
  // message marks it compressed (RFC 7692 section 6). RSV1 elsewhere, and RSV2 and RSV3, stay
  // protocol errors. max_message_size then bounds the compressed bytes as received.
  void enable_compression(bool on = true) noexcept { compression_ = on; }
  bool compression_enabled() const noexcept { return compression_; }

  bool failed() const noexcept { return failed_; }
  bool in_message() const noexcept { return in_message_; }
  // Bytes held for a message still being assembled (memory the session holds).
  std::size_t buffered() const noexcept { return assembly_.capacity(); }

 private:
  static constexpr std::size_t keep_capacity = 4096;

  static std::string_view view(const std::uint8_t* p, std::uint64_t n) noexcept {
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
  }

  event message_event(const std::uint8_t* p, std::size_t n) const noexcept {
    event e;
    e.kind = event_kind::message;
    e.op = message_op_;
    e.compressed = compressed_;
    e.payload = view(p, n);
    return e;
  }

  parse_result fail(std::size_t pos, std::uint16_t code, const char* reason) noexcept {
    failed_ = true;
    error_code_ = code;
    error_reason_ = reason;
    return {pos, error_event()};
  }

  event error_event() const noexcept {
    event e;
    e.kind = event_kind::error;
    e.code = error_code_;
    e.reason = error_reason_;
    return e;
  }

  event control_event(opcode op, const std::uint8_t* p, std::uint64_t n) noexcept {
    event e;
    e.op = op;
    e.payload = view(p, n);
    if (op == opcode::ping) {
      e.kind = event_kind::ping;
    } else if (op == opcode::pong) {
      e.kind = event_kind::pong;
    } else {
      e.kind = event_kind::close;
      if (n == 0) {
        e.code = close_code::no_status;
      } else if (n == 1) {
        fail(0, close_code::protocol_error, "close frame with a one-byte payload");
        return error_event();
      } else {
        e.code = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
        if (!is_valid_close_code(e.code)) {
          fail(0, close_code::protocol_error, "invalid close code");
          return error_event();
        }
        if (!detail::is_valid_utf8(p + 2, n - 2)) {
          fail(0, close_code::invalid_payload, "close reason is not valid UTF-8");
          return error_event();
        }
        e.reason = view(p + 2, n - 2);
      }
    }
    return e;
  }

  role role_;
  parser_limits limits_;
  bool failed_ = false;
  bool in_frame_ = false;
  bool in_message_ = false;
  bool frame_fin_ = false;
  bool release_assembly_ = false;
  bool compression_ = false;   // permessage-deflate negotiated: RSV1 allowed where it may be
  bool compressed_ = false;    // the current message is compressed
  bool check_utf8_ = false;    // the current message is uncompressed text
  opcode message_op_ = opcode::text;
  std::uint16_t error_code_ = 0;
  std::uint32_t mask_key_ = 0;
  std::uint64_t frame_remaining_ = 0;
  std::uint64_t mask_offset_ = 0;
  std::uint64_t message_size_ = 0;
  const char* error_reason_ = "";
  detail::utf8_validator utf8_;
  std::string assembly_;
};

}  // namespace herald::ws

#endif  // HERALD_WEBSOCKET_PARSER_HPP
