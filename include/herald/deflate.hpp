// herald/deflate.hpp: permessage-deflate (RFC 7692) with zlib. Optional: herald.hpp does not
// include it; a program that does links zlib (CMake: find_package(ZLIB) and ZLIB::ZLIB;
// Debian: zlib1g-dev).
//
//   #include <herald.hpp>
//   #include <herald/deflate.hpp>
//
//   herald::session_options options;
//   herald::enable_deflate(options);            // or with a herald::ws::deflate_config
//
// Sessions made with those options accept a client's permessage-deflate offer (see
// herald/websocket/permessage_deflate.hpp for what is answered). A message is compressed at
// most once, however many sessions it goes to (message::deflated); messages from clients are
// inflated under max_message_size, which counts the inflated bytes and is checked while
// inflating.
//
// zlib state: one compressor per thread that compresses (about 260 KiB at window 15,
// memLevel 8) and one inflater per thread that inflates (about 7 KiB plus a 32 KiB window),
// made on first use. A session holds none, unless its peer was allowed context takeover
// (deflate_config::allow_peer_context_takeover): then it holds its own inflater from its first
// compressed message on, zlib's inflate state plus a 2^window window.
#ifndef HERALD_DEFLATE_HPP
#define HERALD_DEFLATE_HPP
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "deflate_support.hpp"
#include "options.hpp"
#include "websocket/permessage_deflate.hpp"

namespace herald {
namespace detail {

// The empty stored block that ends every sync flush (RFC 7692 sections 7.2.1 and 7.2.2).
inline constexpr unsigned char deflate_tail[4] = {0x00, 0x00, 0xFF, 0xFF};

// zlib allocation hooks that count what a stream holds (for deflate_inflater::memory()).
struct zlib_counted_alloc {
  static voidpf alloc(voidpf opaque, uInt items, uInt size) noexcept {
    const std::size_t n = std::size_t(items) * size;
    auto* p = static_cast<std::max_align_t*>(std::malloc(n + sizeof(std::max_align_t)));
    if (!p) return Z_NULL;
    std::memcpy(p, &n, sizeof n);
    *static_cast<std::size_t*>(opaque) += n;
    return p + 1;
  }
  static void free(voidpf opaque, voidpf address) noexcept {
    if (!address) return;
    auto* p = static_cast<std::max_align_t*>(address) - 1;
    std::size_t n;
    std::memcpy(&n, p, sizeof n);
    *static_cast<std::size_t*>(opaque) -= n;
    std::free(p);
  }
};

// Inflates one whole message body (plus the sync flush tail) with `z` as it stands, producing
// at most max_size bytes: the output grows geometrically up to max_size + 1 bytes, and the
// first byte beyond the limit stops inflating. `keep_context`: after a final block (BFINAL),
// carry the window over to the next message instead of dropping it.
inline inflate_status inflate_body(z_stream& z, std::string_view body, std::size_t max_size, std::string& out,
                                   bool keep_context) {
  out.clear();
  // RFC 7692 section 7.2.3.6 compresses an empty message to 0x00; take nothing at all as empty too.
  if (body.empty()) return inflate_status::ok;
  const std::size_t cap = max_size == SIZE_MAX ? max_size : max_size + 1;
  std::size_t produced = 0;
  const auto* in = reinterpret_cast<const Bytef*>(body.data());
  std::size_t in_left = body.size();
  bool tail_given = false;
  z.avail_in = 0;
  out.resize(std::min(cap, std::max<std::size_t>(256, body.size() < SIZE_MAX / 4 ? body.size() * 4 : SIZE_MAX)));
  for (;;) {
    if (z.avail_in == 0) {
      if (in_left) {
        const uInt n = static_cast<uInt>(std::min<std::size_t>(in_left, UINT_MAX));
        z.next_in = const_cast<Bytef*>(in);
        z.avail_in = n;
        in += n;
        in_left -= n;
      } else if (!tail_given) {
        z.next_in = const_cast<Bytef*>(deflate_tail);
        z.avail_in = sizeof deflate_tail;
        tail_given = true;
      }
    }
    if (produced == out.size()) {
      if (out.size() >= cap) return inflate_status::too_big;  // max_size + 1 bytes: over the limit
      out.resize(out.size() <= cap / 2 ? out.size() * 2 : cap);
    }
    const uInt room = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, UINT_MAX));
    z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z.avail_out = room;
    const int r = ::inflate(&z, Z_SYNC_FLUSH);
    produced += room - z.avail_out;
    if (produced > max_size) return inflate_status::too_big;
    if (r == Z_MEM_ERROR) return inflate_status::failed;
    if (r == Z_STREAM_END) {
      // A final block ends the stream; what follows it in the body is ignored.
      if (keep_context) {
        // Keep the window for the next message: the stream restarts, its history stays.
        std::string window(std::size_t(1) << 15, '\0');
        uInt len = 0;
        if (::inflateGetDictionary(&z, reinterpret_cast<Bytef*>(window.data()), &len) != Z_OK ||
            ::inflateReset(&z) != Z_OK ||
            (len && ::inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(window.data()), len) != Z_OK))
          return inflate_status::failed;
      }
      break;
    }
    if (r != Z_OK && r != Z_BUF_ERROR) return inflate_status::corrupt;  // Z_DATA_ERROR, Z_NEED_DICT
    if (tail_given && z.avail_in == 0 && z.avail_out != 0) {
      // Everything was read and nothing more can come out. The tail is an empty stored block,
      // so a whole body leaves the inflater between blocks; anything else was cut short.
      if ((z.data_type & 128) == 0) return inflate_status::corrupt;
      break;
    }
  }
  out.resize(produced);
  return inflate_status::ok;
}

// One zlib raw inflater, made on first use.
class zlib_inflater {
 public:
  zlib_inflater() noexcept {
    z_.zalloc = zlib_counted_alloc::alloc;
    z_.zfree = zlib_counted_alloc::free;
    z_.opaque = &allocated_;
  }
  zlib_inflater(const zlib_inflater&) = delete;
  zlib_inflater& operator=(const zlib_inflater&) = delete;
  ~zlib_inflater() {
    if (ready_) ::inflateEnd(&z_);
  }

  // A stream ready for a new message: `reset` drops the previous message's window.
  z_stream* get(int window_bits, bool reset) noexcept {
    if (!ready_) {
      if (::inflateInit2(&z_, -window_bits) != Z_OK) return nullptr;
      ready_ = true;
    } else if (reset && ::inflateReset(&z_) != Z_OK) {
      return nullptr;
    }
    return &z_;
  }
  std::size_t allocated() const noexcept { return allocated_; }

 private:
  z_stream z_{};
  std::size_t allocated_ = 0;
  bool ready_ = false;
};

// One zlib raw compressor with fixed settings, made on first use, reset per message.
class zlib_deflater {
 public:
  zlib_deflater() = default;
  zlib_deflater(const zlib_deflater&) = delete;
  zlib_deflater& operator=(const zlib_deflater&) = delete;
  ~zlib_deflater() { end(); }

  z_stream* get(int level, int window_bits, int mem_level) noexcept {
    if (ready_ && (level != level_ || window_bits != window_bits_ || mem_level != mem_level_)) end();
    if (!ready_) {
      z_ = z_stream{};
      if (::deflateInit2(&z_, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) return nullptr;
      ready_ = true;
      level_ = level;
      window_bits_ = window_bits;
      mem_level_ = mem_level;
    } else if (::deflateReset(&z_) != Z_OK) {  // no context takeover: every message from scratch
      return nullptr;
    }
    return &z_;
  }

 private:
  void end() noexcept {
    if (ready_) ::deflateEnd(&z_);
    ready_ = false;
  }
  z_stream z_{};
  bool ready_ = false;
  int level_ = 0, window_bits_ = 0, mem_level_ = 0;
};

// Compresses `in` as one message with a sync flush, then drops the flush's 00 00 FF FF.
inline bool deflate_message(z_stream& z, std::string_view in, std::string& out) {
  out.resize(::deflateBound(&z, in.size()) + 8);
  std::size_t produced = 0;
  const auto* p = reinterpret_cast<const Bytef*>(in.data());
  std::size_t left = in.size();
  for (;;) {
    const uInt n = static_cast<uInt>(std::min<std::size_t>(left, UINT_MAX));
    z.next_in = const_cast<Bytef*>(p);
    z.avail_in = n;
    p += n;
    left -= n;
    const int flush = left ? Z_NO_FLUSH : Z_SYNC_FLUSH;
    do {
      if (produced == out.size()) out.resize(out.size() * 2);
      const uInt room = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, UINT_MAX));
      z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
      z.avail_out = room;
      const int r = ::deflate(&z, flush);
      produced += room - z.avail_out;
      if (r != Z_OK && r != Z_BUF_ERROR) return false;
    } while (z.avail_out == 0);
    if (!left) break;
  }
  if (produced < 4 || std::memcmp(out.data() + produced - 4, deflate_tail, 4) != 0) return false;
  out.resize(produced - 4);
  return true;
}

}  // namespace detail

// An inflater for one session whose peer takes its context over.
class zlib_session_inflater final : public deflate_inflater {
 public:
  explicit zlib_session_inflater(std::uint8_t window_bits) noexcept
      // zlib before 1.2.9 compressed with 9 bits when asked for 8: inflate with at least 9.
      : window_bits_(std::clamp<int>(window_bits, 9, 15)) {}

  inflate_status inflate(std::string_view body, std::size_t max_size, std::string& out) override {
    z_stream* z = inflater_.get(window_bits_, false);
    if (!z) return inflate_status::failed;
    return detail::inflate_body(*z, body, max_size, out, true);
  }
  std::size_t memory() const noexcept override { return inflater_.allocated(); }

 private:
  int window_bits_;
  detail::zlib_inflater inflater_;
};

// deflate_support with zlib: per-thread compressor and inflater.
class zlib_deflate_support final : public deflate_support {
 public:
  explicit zlib_deflate_support(const ws::deflate_config& config) : deflate_support(config) {
    if (const char* why = config.check()) throw std::invalid_argument(std::string("herald deflate_config: ") + why);
  }

  bool compress(std::string_view payload, std::string& out) const override {
    thread_local detail::zlib_deflater deflater;
    const auto& c = config();
    z_stream* z = deflater.get(c.level, c.window_bits, c.mem_level);
    return z && detail::deflate_message(*z, payload, out);
  }

  inflate_status inflate(std::string_view body, std::size_t max_size, std::string& out) const override {
    // A 15-bit window inflates whatever window the peer compressed with.
    thread_local detail::zlib_inflater inflater;
    z_stream* z = inflater.get(15, true);
    if (!z) return inflate_status::failed;
    return detail::inflate_body(*z, body, max_size, out, false);
  }

  std::unique_ptr<deflate_inflater> make_inflater(std::uint8_t window_bits) const override {
    return std::make_unique<zlib_session_inflater>(window_bits);
  }
};

// A zlib deflate_support with `config` (throws std::invalid_argument if config.check() fails).
inline std::shared_ptr<const deflate_support> make_deflate_support(const ws::deflate_config& config = {}) {
  return std::make_shared<const zlib_deflate_support>(config);
}

// Lets sessions made with `options` negotiate permessage-deflate with `config`; a disabled
// config (enabled = false) removes it. Throws std::invalid_argument if config.check() fails.
inline void enable_deflate(session_options& options, const ws::deflate_config& config = {}) {
  if (const char* why = config.check()) throw std::invalid_argument(std::string("herald::enable_deflate: ") + why);
  options.deflate = config.enabled ? make_deflate_support(config) : nullptr;
}

}  // namespace herald

#endif  // HERALD_DEFLATE_HPP
