// The incremental UTF-8 validator: RFC 3629 validity, fail-fast position, split input.
#include <doctest/doctest.h>

#include <herald/detail/utf8.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using herald::detail::is_valid_utf8;
using herald::detail::utf8_validator;

constexpr std::size_t never = std::size_t(-1);

bool valid(std::string_view s) { return is_valid_utf8(s.data(), s.size()); }

const std::uint8_t* bytes(std::string_view s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

// Feeds one byte per call; the index of the first byte whose feed() returned false, or `never`.
// Once a feed failed, every later feed must fail too.
std::size_t fail_index(std::string_view s, bool* complete_at_end = nullptr) {
  utf8_validator v;
  std::size_t first = never;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool ok = v.feed(bytes(s) + i, 1);
    if (first == never && !ok) first = i;
    if (first != never) {
      CHECK_FALSE(ok);
      CHECK(v.failed());
      CHECK_FALSE(v.complete());
    }
  }
  if (complete_at_end) *complete_at_end = v.complete();
  return first;
}

// An independent reference: decode code points and check the RFC 3629 rules after the fact.
bool reference_valid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<std::uint8_t>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (b < 0x80) { len = 1; cp = b; }
    else if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; }
    else return false;
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<std::uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3F);
    }
    static constexpr std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Can `prefix` still be completed to valid UTF-8? Tries every completion of up to three
// continuation bytes drawn from the edges of the continuation ranges that matter.
bool reference_viable(const std::string& prefix) {
  if (reference_valid(prefix)) return true;
  static constexpr std::uint8_t edges[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
  for (std::uint8_t a : edges) {
    if (reference_valid(prefix + char(a))) return true;
    for (std::uint8_t b : edges) {
      if (reference_valid(prefix + char(a) + char(b))) return true;
      for (std::uint8_t c : edges)
        if (reference_valid(prefix + char(a) + char(b) + char(c))) return true;
    }
  }
  return false;
}

std::size_t reference_fail_index(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!reference_viable(std::string(s.substr(0, i + 1)))) return i;
  return never;
}

}  // namespace

TEST_CASE("utf8: valid strings") {
  const std::string_view cases[] = {
      "",
      "hello, world",
      std::string_view("nul\0inside", 10),
      "\x7F",
      "\xC2\x80",                      // U+0080, smallest 2-byte
      "\xC2\xA9",                      // ©
      "\xDF\xBF",                      // U+07FF, largest 2-byte
      "\xE0\xA0\x80",                  // U+0800, smallest 3-byte
      "\xE2\x82\xAC",                  // €
      "\xED\x9F\xBF",                  // U+D7FF, just below the surrogates
      "\xEE\x80\x80",                  // U+E000, just above them
      "\xEF\xBF\xBF",                  // U+FFFF
      "\xF0\x90\x80\x80",              // U+10000, smallest 4-byte
      "\xF0\x9F\x98\x80",              // 😀
      "\xF3\xBF\xBF\xBF",              // U+FFFFF
      "\xF4\x80\x80\x80",              // U+100000
      "\xF4\x8F\xBF\xBF",              // U+10FFFF, the last code point
      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",  // κόσμε
      "a\xC3\xA9z\xE2\x82\xAC\xF0\x9F\x98\x80!",
  };
  for (std::string_view s : cases) {
    CAPTURE(s);
    CHECK(reference_valid(s));  // the reference agrees, or the test data is wrong
    CHECK(valid(s));
    bool complete = false;
    CHECK(fail_index(s, &complete) == never);
    CHECK(complete);
  }
}

TEST_CASE("utf8: invalid strings fail at the first byte no continuation could save") {
  struct bad {
    std::string_view s;
    std::size_t fails_at;
  };
  const bad cases[] = {
      // overlong forms
      {"\xC0\x80", 0},
      {"\xC1\xBF", 0},
      {"\xE0\x80\x80", 1},
      {"\xE0\x9F\xBF", 1},
      {"\xF0\x80\x80\x80", 1},
      {"\xF0\x8F\xBF\xBF", 1},
      // UTF-16 surrogates
      {"\xED\xA0\x80", 1},
      {"\xED\xBF\xBF", 1},
      {"\xED\xA0\x80\xED\xB0\x80", 1},  // a surrogate pair written as two 3-byte forms
      // above U+10FFFF
      {"\xF4\x90\x80\x80", 1},
      {"\xF4\xBF\xBF\xBF", 1},
      {"\xF5\x80\x80\x80", 0},
      {"\xF7\xBF\xBF\xBF", 0},
      {"\xF8\x88\x80\x80\x80", 0},
      {"\xFC\x84\x80\x80\x80\x80", 0},
      {"\xFE", 0},
      {"\xFF", 0},
      // stray continuation bytes
      {"\x80", 0},
      {"\xBF", 0},
      {"a\x80", 1},
      {"\xC2\xA9\xA9", 2},
      {"\xE2\x82\xAC\x80", 3},
      // a sequence cut short by something that is not a continuation
      {"\xC2" "A", 1},
      {"\xE2\x82" "A", 2},
      {"\xF0\x9F\x98" "A", 3},
      {"\xC2\xC2\xA9", 1},
      {"\xE2\xF0\x9F\x98\x80", 1},
  };
  for (const auto& c : cases) {
    CAPTURE(c.s);
    CHECK_FALSE(reference_valid(c.s));
    CHECK(reference_fail_index(c.s) == c.fails_at);
    CHECK_FALSE(valid(c.s));
    CHECK(fail_index(c.s) == c.fails_at);
    // Fed at once, it fails too, and stays failed.
    utf8_validator v;
    CHECK_FALSE(v.feed(bytes(c.s), c.s.size()));
    CHECK(v.failed());
    CHECK_FALSE(v.complete());
    CHECK_FALSE(v.feed(bytes("a"), 1));
  }
}

TEST_CASE("utf8: truncated sequences are not failures until the end, but are not complete") {
  const std::string_view cases[] = {"\xC2", "\xE2", "\xE2\x82", "\xF0", "\xF0\x9F", "\xF0\x9F\x98",
                                    "abc\xE2\x82", "\xF4\x8F\xBF", "\xED\x9F"};
  for (std::string_view s : cases) {
    CAPTURE(s);
    CHECK_FALSE(valid(s));
    bool complete = true;
    CHECK(fail_index(s, &complete) == never);
    CHECK_FALSE(complete);
    utf8_validator v;
    CHECK(v.feed(bytes(s), s.size()));
    CHECK_FALSE(v.failed());
    CHECK_FALSE(v.complete());
  }
}

TEST_CASE("utf8: F4 90 fails at the 0x90 byte when fed one byte at a time") {
  utf8_validator v;
  const std::uint8_t f4 = 0xF4, x90 = 0x90, x80 = 0x80;
  CHECK(v.feed(&f4, 1));
  CHECK_FALSE(v.complete());
  CHECK_FALSE(v.failed());
  CHECK_FALSE(v.feed(&x90, 1));
  CHECK(v.failed());
  CHECK_FALSE(v.complete());
  CHECK_FALSE(v.feed(&x80, 1));  // stays failed
  v.reset();
  CHECK(v.complete());
  CHECK_FALSE(v.failed());
  CHECK(v.feed(bytes("ok"), 2));
  CHECK(v.complete());
}

TEST_CASE("utf8: reset clears a half-read sequence") {
  utf8_validator v;
  CHECK(v.feed(bytes("\xF0\x9F"), 2));
  CHECK_FALSE(v.complete());
  v.reset();
  CHECK(v.complete());
  // After the reset a continuation byte is a stray one again.
  CHECK_FALSE(v.feed(bytes("\x98"), 1));
  v.reset();
  // And the range limits of the previous lead byte are gone: E0 then A0 is fine.
  CHECK(v.feed(bytes("\xF4"), 1));
  v.reset();
  CHECK(v.feed(bytes("\xE0\xA0\x80"), 3));
  CHECK(v.complete());
}

TEST_CASE("utf8: a valid string split across two feeds at every position") {
  const std::string s = "a\xC3\xA9z\xE2\x82\xAC\xF0\x9F\x98\x80" "0123456789\xF4\x8F\xBF\xBF\xCE\xBA\xE1\xBD\xB9";
  // Where each character starts: complete() after the first part is true only there.
  std::vector<bool> boundary(s.size() + 1, false);
  for (std::size_t i = 0; i <= s.size(); ++i)
    boundary[i] = i == s.size() || (static_cast<std::uint8_t>(s[i]) & 0xC0) != 0x80;
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    CAPTURE(cut);
    utf8_validator v;
    CHECK(v.feed(bytes(s), cut));
    CHECK(v.complete() == boundary[cut]);
    CHECK(v.feed(bytes(s) + cut, s.size() - cut));
    CHECK(v.complete());
  }
  // And split in three at every pair of positions.
  for (std::size_t a = 0; a <= s.size(); ++a)
    for (std::size_t b = a; b <= s.size(); ++b) {
      utf8_validator v;
      const bool ok = v.feed(bytes(s), a) && v.feed(bytes(s) + a, b - a) && v.feed(bytes(s) + b, s.size() - b);
      if (!ok || !v.complete()) FAIL("three-way split rejected a valid string at " << a << "," << b);
    }
}

TEST_CASE("utf8: an invalid sequence split across feeds fails at the same byte") {
  const std::string s = "abc\xF4\x90\x80\x80";  // fails at index 4
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    CAPTURE(cut);
    utf8_validator v;
    const bool first = v.feed(bytes(s), cut);
    CHECK(first == (cut <= 4));
    CHECK_FALSE(v.feed(bytes(s) + cut, s.size() - cut));
    CHECK(v.failed());
  }
}

TEST_CASE("utf8: the eight-byte ASCII fast path, a bad byte at every offset 0..20") {
  const std::string ascii = "The quick brown fox jumps over the lazy dog 0123456789";
  const std::string prefixes[] = {"", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "x"};
  for (const std::string& prefix : prefixes) {
    for (std::size_t k = 0; k <= 20; ++k) {
      CAPTURE(prefix);
      CAPTURE(k);
      const std::size_t at = prefix.size() + k;
      auto with = [&](std::string_view insert) { return prefix + ascii.substr(0, k) + std::string(insert) + ascii.substr(k); };

      // A valid multibyte character in the middle of the ASCII run.
      CHECK(valid(with("\xC3\xA9")));
      CHECK(valid(with("\xE2\x82\xAC")));
      CHECK(valid(with("\xF0\x9F\x98\x80")));
      CHECK(valid(prefix + ascii.substr(0, k)));

      // Bytes that are never valid, a stray continuation, a lead byte cut short by ASCII.
      for (std::string_view bad : {std::string_view("\xFF"), std::string_view("\xC0"), std::string_view("\x80"),
                                   std::string_view("\xBF"), std::string_view("\xE2\x82"), std::string_view("\xC2"),
                                   std::string_view("\xED\xA0"), std::string_view("\xF4\x90")}) {
        const std::string s = with(bad);
        CAPTURE(s);
        CHECK_FALSE(valid(s));
        utf8_validator v;
        CHECK_FALSE(v.feed(bytes(s), s.size()));
        // Fed in one piece up to and including the bad byte: it fails there, not before.
        const std::size_t expected = reference_fail_index(s);
        REQUIRE(expected != never);
        CHECK(expected >= at);
        CHECK(expected <= at + 2);
        utf8_validator up_to;
        CHECK(up_to.feed(bytes(s), expected));
        CHECK_FALSE(up_to.feed(bytes(s) + expected, 1));
      }
      // A lead byte at the very end of a long buffer: not a failure, not complete.
      const std::string tail = prefix + ascii.substr(0, k) + "\xF0\x9F\x98";
      utf8_validator v;
      CHECK(v.feed(bytes(tail), tail.size()));
      CHECK_FALSE(v.complete());
    }
  }
}

TEST_CASE("utf8: agrees with a reference decoder on random byte strings") {
  // Biased towards bytes that matter: ASCII, every lead class, and the continuation edges.
  static constexpr std::uint8_t alphabet[] = {'a',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                              0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5,
                                              0xF8, 0xFF};
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<std::size_t> pick(0, sizeof alphabet - 1);
  std::uniform_int_distribution<std::size_t> length(0, 10);
  int valid_seen = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s;
    const std::size_t n = length(rng);
    for (std::size_t i = 0; i < n; ++i) s += static_cast<char>(alphabet[pick(rng)]);
    // Pad with ASCII sometimes so the fast path sees runs.
    if (iter % 3 == 0) s = std::string(9, 'x') + s + std::string(9, 'y');
    CAPTURE(s);
    const bool expected = reference_valid(s);
    valid_seen += expected;
    CHECK(valid(s) == expected);
    CHECK(fail_index(s) == reference_fail_index(s));
  }
  CHECK(valid_seen > 100);  // the generator does produce valid strings too
}
