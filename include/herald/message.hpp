// An immutable, reference-counted outgoing message. It holds the server-role wire frame
// (header + payload) in one allocation, built once: a broadcast to a million sessions
// encodes once and every queue holds the same bytes.
#ifndef HERALD_MESSAGE_HPP
#define HERALD_MESSAGE_HPP
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <utility>

#include "websocket/frame.hpp"

namespace herald {

class message {
 public:
  message() noexcept = default;
  message(const message& o) noexcept : rep_(o.rep_) { retain(); }
  message(message&& o) noexcept : rep_(std::exchange(o.rep_, nullptr)) {}
  message& operator=(message o) noexcept {
    std::swap(rep_, o.rep_);
    return *this;
  }
  ~message() { release(); }

  static message text(std::string_view payload) { return make(ws::opcode::text, payload.data(), payload.size()); }
  static message binary(std::span<const std::uint8_t> payload) { return make(ws::opcode::binary, payload.data(), payload.size()); }
  static message binary(std::string_view payload) { return make(ws::opcode::binary, payload.data(), payload.size()); }
  static message ping(std::string_view payload = {}) { return make(ws::opcode::ping, payload.data(), clamp_control(payload.size())); }
  static message pong(std::string_view payload) { return make(ws::opcode::pong, payload.data(), clamp_control(payload.size())); }
  // A close frame; the reason is cut to fit the 125-byte control payload (at a UTF-8 boundary).
  static message close(std::uint16_t code, std::string_view reason = {}) {
    if (code == ws::close_code::no_status || !ws::is_valid_close_code(code)) return make(ws::opcode::close, nullptr, 0);
    reason = fit_reason(reason);
    char buf[ws::max_control_payload];
    buf[0] = static_cast<char>(code >> 8);
    buf[1] = static_cast<char>(code & 0xFF);
    if (!reason.empty()) std::memcpy(buf + 2, reason.data(), reason.size());
    return make(ws::opcode::close, buf, reason.size() + 2);
  }

  // The same payload as a client-role frame, masked with `key` (RFC 6455 section 5.3).
  // Clients mask every frame differently, so this copy is never shared.
  message masked(std::uint32_t key) const {
    const std::size_t size = rep_->payload;
    const std::size_t header = ws::frame_header_size(size, true);
    message m = allocate(rep_->op, header, size);
    auto* out = const_cast<std::uint8_t*>(m.bytes());
    ws::write_frame_header(out, rep_->op, true, size, true, key);
    if (size) std::memcpy(out + header, payload().data(), size);
    ws::apply_mask(out + header, size, key);
    return m;
  }

  explicit operator bool() const noexcept { return rep_ != nullptr; }
  ws::opcode op() const noexcept { return rep_->op; }
  bool is_control() const noexcept { return ws::is_control(rep_->op); }
  // The whole frame as sent by a server.
  std::span<const std::uint8_t> frame() const noexcept { return {bytes(), rep_->header + rep_->payload}; }
  std::size_t frame_size() const noexcept { return rep_->header + rep_->payload; }
  std::string_view payload() const noexcept {
    return {reinterpret_cast<const char*>(bytes()) + rep_->header, rep_->payload};
  }
  // How many holders share this message (tests use it to show a broadcast is shared).
  std::uint32_t use_count() const noexcept { return rep_ ? rep_->refs.load(std::memory_order_relaxed) : 0; }

 private:
  struct rep {
    std::atomic<std::uint32_t> refs;
    ws::opcode op;
    std::uint8_t header;
    std::size_t payload;
  };

  static std::size_t clamp_control(std::size_t n) noexcept { return n < ws::max_control_payload ? n : ws::max_control_payload; }

  static std::string_view fit_reason(std::string_view reason) noexcept {
    constexpr std::size_t room = ws::max_control_payload - 2;
    if (reason.size() <= room) return reason;
    std::size_t n = room;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;  // don't cut a character
    return reason.substr(0, n);
  }

  static message allocate(ws::opcode op, std::size_t header, std::size_t size) {
    void* mem = ::operator new(sizeof(rep) + header + size);
    message m;
    m.rep_ = ::new (mem) rep{{1}, op, static_cast<std::uint8_t>(header), size};
    return m;
  }

  static message make(ws::opcode op, const void* payload, std::size_t size) {
    const std::size_t header = ws::frame_header_size(size, false);
    message m = allocate(op, header, size);
    auto* out = const_cast<std::uint8_t*>(m.bytes());
    ws::write_frame_header(out, op, true, size);
    if (size) std::memcpy(out + header, payload, size);
    return m;
  }

  const std::uint8_t* bytes() const noexcept { return reinterpret_cast<const std::uint8_t*>(rep_ + 1); }

  void retain() noexcept {
    if (rep_) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept {
    if (rep_ && rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      rep_->~rep();
      ::operator delete(rep_);
    }
  }

  rep* rep_ = nullptr;
};

}  // namespace herald

#endif  // HERALD_MESSAGE_HPP
