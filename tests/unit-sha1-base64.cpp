// SHA-1 and base64 (the handshake's building blocks) against published vectors.
#include <doctest/doctest.h>

#include <herald/detail/base64.hpp>
#include <herald/detail/sha1.hpp>
#include <herald/websocket/handshake.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

using herald::detail::base64_decode;
using herald::detail::base64_encode;
using herald::detail::sha1;

std::string hex(const sha1::digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (std::uint8_t b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::string sha1_hex(std::string_view data) {
  sha1 h;
  h.update(data);
  return hex(h.finish());
}

// Bytes (i*7+3) mod 256, the inputs of the padding-boundary vectors below (from Python's hashlib).
std::string pattern(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<char>((i * 7 + 3) & 0xFF);
  return s;
}

}  // namespace

TEST_CASE("sha1: FIPS 180 / RFC 3174 vectors") {
  CHECK(sha1_hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(sha1_hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK(sha1_hex("The quick brown fox jumps over the lazy dog") == "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}

TEST_CASE("sha1: one million 'a'") {
  SUBCASE("in one update") { CHECK(sha1_hex(std::string(1000000, 'a')) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f"); }
  SUBCASE("in 1000 updates of 1000") {
    sha1 h;
    const std::string chunk(1000, 'a');
    for (int i = 0; i < 1000; ++i) h.update(chunk);
    CHECK(hex(h.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  }
}

TEST_CASE("sha1: lengths around the padding boundaries") {
  struct vec {
    std::size_t n;
    const char* digest;
  };
  const vec vectors[] = {
      {55, "ddf57317ef34bfee3b6df83d359098930eb278bc"},  {56, "a0d492bb0fc889d0eca3bc137066ab6f4f74f369"},
      {57, "11a02dcf95859677a62e75024067c22b165d890f"},  {63, "c55856749bef509bdfe6bfebfc7bf4e793e82132"},
      {64, "bede92be29c3874e1b54ddc77988d606fc857a8e"},  {65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f"},
      {119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23"}, {120, "82134b02fb3f702491be9bed581eeab59334acb2"},
      {128, "a09133e6730ffe899efb70204cb5646cd5dc24ee"},
  };
  for (const auto& v : vectors) {
    CAPTURE(v.n);
    const std::string data = pattern(v.n);
    CHECK(sha1_hex(data) == v.digest);
    // Split into two updates at every position: the same digest.
    for (std::size_t cut = 0; cut <= v.n; ++cut) {
      CAPTURE(cut);
      sha1 h;
      h.update(std::string_view(data).substr(0, cut));
      h.update(std::string_view(data).substr(cut));
      CHECK(hex(h.finish()) == v.digest);
    }
  }
}

TEST_CASE("base64: RFC 4648 section 10 vectors, both ways") {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& vec : vectors) {
    const std::string_view plain = vec.first, encoded = vec.second;
    CAPTURE(plain);
    CHECK(base64_encode(plain) == encoded);
    const auto decoded = base64_decode(encoded);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == plain);
  }
}

TEST_CASE("base64: every byte value, and round trips of every length 0..40") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  const std::string expected =
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9Q"
      "UVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6Ch"
      "oqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy"
      "8/T19vf4+fr7/P3+/w==";
  CHECK(base64_encode(all) == expected);
  REQUIRE(base64_decode(expected).has_value());
  CHECK(*base64_decode(expected) == all);

  for (std::size_t n = 0; n <= 40; ++n) {
    CAPTURE(n);
    const std::string data = pattern(n);
    const std::string enc = base64_encode(data);
    CHECK(enc.size() == (n + 2) / 3 * 4);
    const auto dec = base64_decode(enc);
    REQUIRE(dec.has_value());
    CHECK(*dec == data);
  }
}

TEST_CASE("base64: strict decoding rejects") {
  SUBCASE("a length that is not a multiple of 4") {
    CHECK_FALSE(base64_decode("Z").has_value());
    CHECK_FALSE(base64_decode("Zg").has_value());
    CHECK_FALSE(base64_decode("Zg=").has_value());
    CHECK_FALSE(base64_decode("Zm9vY").has_value());
    CHECK_FALSE(base64_decode("Zm9vYmFy=").has_value());
  }
  SUBCASE("characters outside the alphabet") {
    CHECK_FALSE(base64_decode("Zm9v!mFy").has_value());
    CHECK_FALSE(base64_decode("Zm9 ").has_value());
    CHECK_FALSE(base64_decode("Zm-v").has_value());  // base64url, not base64
    CHECK_FALSE(base64_decode("Zm_v").has_value());
    CHECK_FALSE(base64_decode(std::string_view("Zm\0v", 4)).has_value());
    CHECK_FALSE(base64_decode("Zm9v\r\nYmFy").has_value());
    CHECK_FALSE(base64_decode("Zm\x80v").has_value());
  }
  SUBCASE("padding in the wrong place or data after '='") {
    CHECK_FALSE(base64_decode("Zg=a").has_value());
    CHECK_FALSE(base64_decode("Z=g=").has_value());
    CHECK_FALSE(base64_decode("Z===").has_value());
    CHECK_FALSE(base64_decode("====").has_value());
    CHECK_FALSE(base64_decode("=Zg=").has_value());
    CHECK_FALSE(base64_decode("Zg==Zm9v").has_value());  // padding in a group that is not the last
    CHECK_FALSE(base64_decode("Zm8=Zm9v").has_value());
  }
  SUBCASE("the accepted neighbours of those inputs still decode") {
    CHECK(base64_decode("Zg==") == std::optional<std::string>("f"));
    CHECK(base64_decode("Zm8=") == std::optional<std::string>("fo"));
    CHECK(base64_decode("Zm9vZm9v") == std::optional<std::string>("foofoo"));
  }
}

TEST_CASE("RFC 6455 section 1.3: Sec-WebSocket-Accept of the sample key") {
  CHECK(herald::ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // The key is "the sample nonce" in base64 (16 bytes).
  const auto raw = base64_decode("dGhlIHNhbXBsZSBub25jZQ==");
  REQUIRE(raw.has_value());
  CHECK(*raw == "the sample nonce");
  // Section 4.2.2's steps spelled out: SHA-1 of key + GUID, then base64 of the 20 bytes.
  sha1 h;
  h.update("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const auto d = h.finish();
  CHECK(hex(d) == "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
  CHECK(base64_encode(d.data(), d.size()) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
