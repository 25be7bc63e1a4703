// The compression a session may use for permessage-deflate, as an interface without zlib:
// session_options::deflate holds one, message::deflated and the session call it, and
// herald/deflate.hpp implements it with zlib (herald::enable_deflate). Without one, a session
// declines every permessage-deflate offer.
//
// One virtual call per message compressed (once per message, whatever the number of
// receivers) or inflated; nothing per delivery.
#ifndef HERALD_DEFLATE_SUPPORT_HPP
#define HERALD_DEFLATE_SUPPORT_HPP
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "websocket/frame.hpp"
#include "websocket/permessage_deflate.hpp"

namespace herald {

// What became of inflating one message.
enum class inflate_status : std::uint8_t {
  ok,       // `out` holds the message
  too_big,  // it inflates to more than the limit: close with 1009 (found while inflating)
  corrupt,  // not a valid deflate stream, or it ends inside a block: close with 1007
  failed,   // zlib could not get memory: close with 1011
};

constexpr std::uint16_t close_code_of(inflate_status s) noexcept {
  switch (s) {
    case inflate_status::ok: return ws::close_code::normal;
    case inflate_status::too_big: return ws::close_code::message_too_big;
    case inflate_status::corrupt: return ws::close_code::invalid_payload;
    case inflate_status::failed: return ws::close_code::internal_error;
  }
  return ws::close_code::internal_error;
}

constexpr const char* reason_of(inflate_status s) noexcept {
  switch (s) {
    case inflate_status::ok: return "";
    case inflate_status::too_big: return "message larger than the limit once inflated";
    case inflate_status::corrupt: return "invalid compressed message";
    case inflate_status::failed: return "out of memory while inflating";
  }
  return "";
}

// The inflater of one session whose peer keeps its LZ77 window across messages (context
// takeover): its state lives as long as the session.
class deflate_inflater {
 public:
  virtual ~deflate_inflater() = default;
  // Inflates one whole compressed message body (the payloads of its frames, joined) into
  // `out`, at most `max_size` bytes of it; the limit is checked while inflating.
  virtual inflate_status inflate(std::string_view body, std::size_t max_size, std::string& out) = 0;
  // Bytes of compression state held now (zlib's allocations).
  virtual std::size_t memory() const noexcept = 0;
};

class deflate_support {
 public:
  explicit deflate_support(const ws::deflate_config& config) noexcept : config_(config) {}
  deflate_support(const deflate_support&) = delete;
  deflate_support& operator=(const deflate_support&) = delete;
  virtual ~deflate_support() = default;

  const ws::deflate_config& config() const noexcept { return config_; }

  // Compresses one whole message payload into `out` (replaced) as a permessage-deflate body
  // without context takeover (RFC 7692 section 7.2.1: the sync flush marker removed; an empty
  // payload gives the single byte 0x00), with a window of config().window_bits. False if it
  // could not; the message then goes out uncompressed. Callable from any thread.
  virtual bool compress(std::string_view payload, std::string& out) const = 0;

  // Inflates one whole compressed message body from a peer that takes no context over
  // (RFC 7692 section 7.2.2), with this thread's inflater: no state outlives the call.
  virtual inflate_status inflate(std::string_view body, std::size_t max_size, std::string& out) const = 0;

  // An inflater for one session whose peer takes its context over, with a window of
  // 2^window_bits (the peer's agreed window, 8..15).
  virtual std::unique_ptr<deflate_inflater> make_inflater(std::uint8_t window_bits) const = 0;

 private:
  ws::deflate_config config_;
};

}  // namespace herald

#endif  // HERALD_DEFLATE_SUPPORT_HPP
