// libFuzzer target: detail::utf8_validator against an independent reference decoder.
//
// Input layout: bytes 0-1 give a split point (modulo the size of the rest); the rest is the
// text. The validator is fed the two pieces (as two fragments of a message arrive) and must
// agree with the reference on every step:
//   - feed() stays true exactly while what was fed so far can still be extended to valid
//     UTF-8 (it fails on the first byte no continuation could follow);
//   - complete() is true exactly when everything fed is valid UTF-8;
//   - is_valid_utf8() agrees on the whole.
// The reference decodes code points the slow, obvious way (RFC 3629): a lead byte gives the
// length, continuation bytes are 10xxxxxx, and the value must be in the range of its length,
// not a surrogate and at most U+10FFFF. Any disagreement traps.
#include <herald/detail/utf8.hpp>

#include <cstddef>
#include <cstdint>

namespace {

#define FUZZ_CHECK(cond)          \
  do {                            \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// Smallest code point for an encoding of each length (shorter would be an overlong form).
constexpr std::uint32_t min_for_length[5] = {0, 0, 0x80, 0x800, 0x10000};

bool valid_scalar(std::uint32_t cp, int length) {
  return cp >= min_for_length[length] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

// The length a lead byte announces (1 to 4, by its high bits), or 0 when it cannot start one.
int announced_length(std::uint8_t b) {
  if ((b & 0x80) == 0) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 0;  // a continuation byte, or 5- and 6-byte leads (gone since RFC 3629)
}

enum class verdict { valid, incomplete, invalid };

// Decodes `p[0..n)`. `incomplete`: valid except that it ends inside a sequence that some
// continuation bytes would complete to a valid scalar value.
verdict reference(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const int len = announced_length(p[i]);
    if (len == 0) return verdict::invalid;
    std::uint32_t cp = len == 1 ? p[i] : (p[i] & (0x7F >> len));
    int have = 1;
    while (have < len && i + have < n) {
      const std::uint8_t c = p[i + have];
      if ((c & 0xC0) != 0x80) return verdict::invalid;
      cp = cp << 6 | (c & 0x3F);
      ++have;
    }
    if (have < len) {
      // Truncated: the missing bytes could bring any value in [lo, hi]. Can one be valid?
      const int missing = len - have;
      const std::uint32_t lo = cp << (6 * missing);
      const std::uint32_t hi = lo | ((1u << (6 * missing)) - 1);
      for (std::uint32_t a = lo; a <= hi;) {
        if (valid_scalar(a, len)) return verdict::incomplete;
        // Skip straight past whole invalid stretches instead of stepping one by one.
        if (a < min_for_length[len]) a = min_for_length[len];
        else if (a >= 0xD800 && a <= 0xDFFF) a = 0xE000;
        else return verdict::invalid;  // above U+10FFFF, and so is everything after it
      }
      return verdict::invalid;
    }
    if (!valid_scalar(cp, len)) return verdict::invalid;
    i += static_cast<std::size_t>(len);
  }
  return verdict::valid;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t split_seed = static_cast<std::size_t>(data[0]) << 8 | data[1];
  data += 2;
  size -= 2;
  const std::size_t split = size == 0 ? 0 : split_seed % (size + 1);

  herald::detail::utf8_validator v;
  const bool first = v.feed(data, split);
  const verdict ref_first = reference(data, split);
  FUZZ_CHECK(first == (ref_first != verdict::invalid));
  FUZZ_CHECK(v.complete() == (ref_first == verdict::valid));
  FUZZ_CHECK(v.failed() == !first);

  const bool second = v.feed(data + split, size - split);
  const verdict ref_all = reference(data, size);
  FUZZ_CHECK(second == (ref_all != verdict::invalid));
  FUZZ_CHECK(v.complete() == (ref_all == verdict::valid));
  if (!first) FUZZ_CHECK(!second);  // a failed validator stays failed

  FUZZ_CHECK(herald::detail::is_valid_utf8(data, size) == (ref_all == verdict::valid));

  // reset() gives a fresh validator.
  v.reset();
  FUZZ_CHECK(v.feed(data, size) == (ref_all != verdict::invalid));
  return 0;
}
