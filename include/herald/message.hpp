// An immutable, reference-counted outgoing message. It holds the server-role wire frame
// (header + payload) in one allocation, built once: a broadcast to a million sessions
// encodes once and every queue holds the same bytes. For permessage-deflate receivers the
// same holds of its compressed frame: deflated() builds it once, on first demand, and keeps it
// in the message for every later receiver.
#ifndef HERALD_MESSAGE_HPP
#define HERALD_MESSAGE_HPP
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "deflate_support.hpp"
#include "detail/utf8.hpp"
#include "websocket/frame.hpp"
#include "websocket/permessage_deflate.hpp"

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

  // A text message; its payload must be UTF-8 (RFC 6455 section 8.1). For bytes that are not,
  // an empty message (operator bool false), which send() refuses as send_result::invalid and
  // the registries deliver to nobody: herald never puts an invalid text frame on the wire.
  static message text(std::string_view payload) {
    if (!detail::is_valid_utf8(payload.data(), payload.size())) return message{};
    return make(ws::opcode::text, payload.data(), payload.size());
  }
  static message binary(std::span<const std::uint8_t> payload) { return make(ws::opcode::binary, payload.data(), payload.size()); }
  static message binary(std::string_view payload) { return make(ws::opcode::binary, payload.data(), payload.size()); }
  static message ping(std::string_view payload = {}) { return make(ws::opcode::ping, payload.data(), clamp_control(payload.size())); }
  static message pong(std::string_view payload) { return make(ws::opcode::pong, payload.data(), clamp_control(payload.size())); }
  // A close frame; the reason is cut to fit the 125-byte control payload (at a UTF-8 boundary).
  static message close(std::uint16_t code, std::string_view reason = {}) {
    if (code == ws::close_code::no_status || !ws::is_valid_close_code(code)) return make(ws::opcode::close, nullptr, 0);
    reason = fit_reason(reason);
    if (!detail::is_valid_utf8(reason.data(), reason.size())) reason = {};  // the reason is text too
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
    out[0] |= bytes()[0] & 0x70;  // a compressed frame stays compressed (RSV1)
    if (size) std::memcpy(out + header, payload().data(), size);
    ws::apply_mask(out + header, size, key);
    return m;
  }

  // The frame for a receiver that negotiated permessage-deflate with `support`'s settings and
  // agreed to a window of 2^`window_bits` for what it receives (deflate_agreement::
  // send_window_bits): the compressed frame (RSV1 set), built on the first call and shared by
  // every later one from any thread; or this message itself when the payload is below the
  // threshold, is a control frame, does not get smaller, does not fit that window, or is
  // already compressed. The compression runs at most once per message (a second thread
  // asking at the same moment may compress too; one result is kept, the other freed).
  message deflated(const deflate_support& support, std::uint8_t window_bits = 15) const {
    if (!rep_ || rep_->window != 0 || ws::is_control(rep_->op) || rep_->payload < support.config().threshold) return *this;
    rep* c = rep_->deflated.load(std::memory_order_acquire);
    if (!c) c = build_deflated(support);
    if (c == rep_ || c->window > window_bits) return *this;
    message m;
    m.rep_ = c;
    m.retain();
    return m;
  }
  // Is this frame compressed (RSV1 set)?
  bool compressed() const noexcept { return rep_ && (bytes()[0] & 0x40) != 0; }

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
    // Compressed frames: the smallest receiver window (log2, 8..15) that inflates them; 0 otherwise.
    std::uint8_t window;
    std::size_t payload;
    // Plain data frames: their compressed form once built (holding one reference), or this
    // rep itself when it goes out uncompressed; null until deflated() is first called.
    std::atomic<rep*> deflated;
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
    m.rep_ = ::new (mem) rep{{1}, op, static_cast<std::uint8_t>(header), 0, size, {nullptr}};
    return m;
  }

  // Compresses once and publishes the result in rep_->deflated; returns what is published.
  rep* build_deflated(const deflate_support& support) const {
    thread_local std::string body;
    rep* built = rep_;  // uncompressed, unless compressing pays
    if (support.compress(payload(), body)) {
      const std::size_t header = ws::frame_header_size(body.size(), false);
      if (header + body.size() < frame_size()) {
        message m = allocate(rep_->op, header, body.size());
        auto* out = const_cast<std::uint8_t*>(m.bytes());
        ws::write_frame_header(out, rep_->op, true, body.size());
        out[0] |= 0x40;  // RSV1: compressed (RFC 7692 section 6)
        std::memcpy(out + header, body.data(), body.size());
        m.rep_->window = ws::window_needed(rep_->payload, support.config().window_bits);
        built = std::exchange(m.rep_, nullptr);
      }
    }
    if (body.capacity() > keep_scratch) std::string().swap(body);
    rep* expected = nullptr;
    if (rep_->deflated.compare_exchange_strong(expected, built, std::memory_order_acq_rel, std::memory_order_acquire))
      return built;
    if (built != rep_) drop(built);  // another thread published first: keep theirs
    return expected;
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
    if (rep_) drop(rep_);
  }
  static void drop(rep* r) noexcept {
    if (r->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    rep* compressed = r->deflated.load(std::memory_order_acquire);
    r->~rep();
    ::operator delete(r);
    if (compressed && compressed != r) drop(compressed);  // a compressed rep caches nothing: one level
  }

  static constexpr std::size_t keep_scratch = 64 * 1024;

  rep* rep_ = nullptr;
};

}  // namespace herald

#endif  // HERALD_MESSAGE_HPP
