// Incremental UTF-8 validation (RFC 3629): fails on the first byte that no valid
// continuation could follow, so a bad text message is refused as soon as it shows,
// not when its last fragment arrives.
#ifndef HERALD_DETAIL_UTF8_HPP
#define HERALD_DETAIL_UTF8_HPP
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace herald::detail {

class utf8_validator {
 public:
  // Feeds bytes; false as soon as the sequence can no longer be valid UTF-8.
  bool feed(const std::uint8_t* p, std::size_t n) noexcept {
    if (failed_) return false;
    std::size_t i = 0;
    while (i < n) {
      if (need_ == 0) {
        // ASCII runs are the common case: eight bytes per step.
        while (i + 8 <= n) {
          std::uint64_t w;
          std::memcpy(&w, p + i, 8);
          if (w & 0x8080808080808080ull) break;
          i += 8;
        }
        if (i == n) break;
        const std::uint8_t b = p[i++];
        if (b < 0x80) continue;
        if (b >= 0xC2 && b <= 0xDF) { need_ = 1; lo_ = 0x80; hi_ = 0xBF; }
        else if (b == 0xE0) { need_ = 2; lo_ = 0xA0; hi_ = 0xBF; }          // no overlongs
        else if (b >= 0xE1 && b <= 0xEC) { need_ = 2; lo_ = 0x80; hi_ = 0xBF; }
        else if (b == 0xED) { need_ = 2; lo_ = 0x80; hi_ = 0x9F; }          // no surrogates
        else if (b >= 0xEE && b <= 0xEF) { need_ = 2; lo_ = 0x80; hi_ = 0xBF; }
        else if (b == 0xF0) { need_ = 3; lo_ = 0x90; hi_ = 0xBF; }          // no overlongs
        else if (b >= 0xF1 && b <= 0xF3) { need_ = 3; lo_ = 0x80; hi_ = 0xBF; }
        else if (b == 0xF4) { need_ = 3; lo_ = 0x80; hi_ = 0x8F; }          // nothing above U+10FFFF
        else return fail();
      } else {
        const std::uint8_t b = p[i++];
        if (b < lo_ || b > hi_) return fail();
        lo_ = 0x80;
        hi_ = 0xBF;
        --need_;
      }
    }
    return true;
  }

  // True when everything fed so far ends on a character boundary.
  bool complete() const noexcept { return need_ == 0 && !failed_; }
  bool failed() const noexcept { return failed_; }
  void reset() noexcept { need_ = 0; failed_ = false; }

 private:
  bool fail() noexcept {
    failed_ = true;
    return false;
  }
  std::uint8_t need_ = 0;  // continuation bytes still expected
  std::uint8_t lo_ = 0x80, hi_ = 0xBF;  // allowed range of the next continuation byte
  bool failed_ = false;
};

inline bool is_valid_utf8(const void* data, std::size_t n) noexcept {
  utf8_validator v;
  return v.feed(static_cast<const std::uint8_t*>(data), n) && v.complete();
}

}  // namespace herald::detail

#endif  // HERALD_DETAIL_UTF8_HPP
