// RFC 6455 section 5: opcodes, close codes, frame headers and masking. No I/O.
#ifndef HERALD_WEBSOCKET_FRAME_HPP
#define HERALD_WEBSOCKET_FRAME_HPP
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace herald::ws {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

constexpr bool is_control(opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

constexpr bool is_known_opcode(std::uint8_t op) noexcept {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

// Which end of the connection a codec speaks for: a server reads masked frames and
// writes unmasked ones, a client the reverse (section 5.1).
enum class role : std::uint8_t { server, client };

// Close status codes (section 7.4.1) and herald's own in the 4000 range.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;       // never on the wire
inline constexpr std::uint16_t abnormal = 1006;        // never on the wire
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t replaced = 4000;        // herald: a newer login of the same uid won
}  // namespace close_code

// May this code appear in a close frame? 1005, 1006 and 1015 are reserved for
// reporting and never sent; 1004 and the rest of 1000-2999 are unassigned; 3000-4999 are
// for libraries and applications.
constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1011) return true;
  return code >= 3000 && code <= 4999;
}

inline constexpr std::size_t max_frame_header_size = 14;
inline constexpr std::size_t max_control_payload = 125;

constexpr std::size_t frame_header_size(std::uint64_t payload_size, bool masked) noexcept {
  return (payload_size < 126 ? 2 : payload_size <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
}

// Writes a frame header with the shortest length form; `mask` is used only when `masked`.
// Returns the number of bytes written (at most max_frame_header_size).
inline std::size_t write_frame_header(std::uint8_t* out, opcode op, bool fin, std::uint64_t payload_size,
                                      bool masked = false, std::uint32_t mask = 0) noexcept {
  std::size_t n = 0;
  out[n++] = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | static_cast<std::uint8_t>(op));
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  if (payload_size < 126) {
    out[n++] = static_cast<std::uint8_t>(mask_bit | payload_size);
  } else if (payload_size <= 0xFFFF) {
    out[n++] = mask_bit | 126;
    out[n++] = static_cast<std::uint8_t>(payload_size >> 8);
    out[n++] = static_cast<std::uint8_t>(payload_size);
  } else {
    out[n++] = mask_bit | 127;
    for (int i = 7; i >= 0; --i) out[n++] = static_cast<std::uint8_t>(payload_size >> (8 * i));
  }
  if (masked) {
    std::memcpy(out + n, &mask, 4);  // the key's bytes in memory order are the wire order
    n += 4;
  }
  return n;
}

// XORs `data` with the 4-byte key (bytes in wire order, as stored by memcpy), starting at
// key position `offset` (the frame bytes already unmasked). Eight bytes per step.
inline void apply_mask(std::uint8_t* data, std::size_t size, std::uint32_t key, std::size_t offset = 0) noexcept {
  std::uint8_t k[4];
  std::memcpy(k, &key, 4);
  std::size_t i = 0;
  // Bring the key in phase so the word loop always starts at key byte 0.
  while (i < size && ((offset + i) & 3) != 0) {
    data[i] ^= k[(offset + i) & 3];
    ++i;
  }
  const std::uint64_t key64 = std::uint64_t(key) | (std::uint64_t(key) << 32);
  for (; i + 8 <= size; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= key64;
    std::memcpy(data + i, &w, 8);
  }
  for (; i < size; ++i) data[i] ^= k[(offset + i) & 3];
}

}  // namespace herald::ws

#endif  // HERALD_WEBSOCKET_FRAME_HPP
