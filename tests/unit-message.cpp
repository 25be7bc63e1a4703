// herald::message: the prebuilt, shared server frame.
#include <doctest/doctest.h>

#include <herald/detail/utf8.hpp>
#include <herald/message.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using herald::message;
using namespace herald::ws;
using bytes = std::vector<std::uint8_t>;

bytes frame_of(const message& m) { return bytes(m.frame().begin(), m.frame().end()); }

bytes with_payload(bytes header, std::string_view payload) {
  header.insert(header.end(), payload.begin(), payload.end());
  return header;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 37 + 11) & 0xFF);
  return s;
}

std::string repeat(std::string_view s, std::size_t times) {
  std::string r;
  for (std::size_t i = 0; i < times; ++i) r += s;
  return r;
}

}  // namespace

TEST_CASE("message: text frames, every header form") {
  const message hello = message::text("Hello");
  CHECK(frame_of(hello) == bytes{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'});
  CHECK(hello.payload() == "Hello");
  CHECK(hello.op() == opcode::text);
  CHECK_FALSE(hello.is_control());
  CHECK(hello.frame_size() == 7);
  CHECK(static_cast<bool>(hello));

  CHECK(frame_of(message::text("")) == bytes{0x81, 0x00});
  CHECK(message::text("").payload().empty());

  const std::string p125(125, 'a'), p126(126, 'b'), p65535(65535, 'c'), p65536(65536, 'd');
  CHECK(frame_of(message::text(p125)) == with_payload({0x81, 0x7D}, p125));
  CHECK(frame_of(message::text(p126)) == with_payload({0x81, 0x7E, 0x00, 0x7E}, p126));
  CHECK(frame_of(message::text(p65535)) == with_payload({0x81, 0x7E, 0xFF, 0xFF}, p65535));
  CHECK(frame_of(message::text(p65536)) == with_payload({0x81, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}, p65536));
  CHECK(message::text(p65536).frame_size() == 10 + 65536);
  CHECK(message::text(p65536).payload() == p65536);
}

TEST_CASE("message: binary frames, from bytes or a string") {
  const std::string data = pattern(300);
  const message from_string = message::binary(std::string_view(data));
  CHECK(frame_of(from_string) == with_payload({0x82, 0x7E, 0x01, 0x2C}, data));
  CHECK(from_string.op() == opcode::binary);
  CHECK(from_string.payload() == data);

  const bytes raw = {0x00, 0xFF, 0x80, 0x7F};
  const message from_span = message::binary(std::span<const std::uint8_t>(raw));
  CHECK(frame_of(from_span) == bytes{0x82, 0x04, 0x00, 0xFF, 0x80, 0x7F});
  CHECK(from_span.payload() == std::string_view("\x00\xFF\x80\x7F", 4));

  const std::string p125 = pattern(125), p126 = pattern(126), p65536 = pattern(65536);
  CHECK(frame_of(message::binary(std::string_view(p125))) == with_payload({0x82, 0x7D}, p125));
  CHECK(frame_of(message::binary(std::string_view(p126))) == with_payload({0x82, 0x7E, 0x00, 0x7E}, p126));
  CHECK(frame_of(message::binary(std::string_view(p65536))) ==
        with_payload({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}, p65536));
}

TEST_CASE("message: the payload is a copy, not a view of the caller's string") {
  std::string s = "original";
  const message m = message::text(s);
  s = "changed!";
  CHECK(m.payload() == "original");
}

TEST_CASE("message: copies share one representation") {
  message a = message::text("shared");
  CHECK(a.use_count() == 1);
  {
    message b = a;
    CHECK(a.use_count() == 2);
    CHECK(b.use_count() == 2);
    CHECK(b.frame().data() == a.frame().data());
    CHECK(b.payload().data() == a.payload().data());
    std::vector<message> queue(5, a);
    CHECK(a.use_count() == 7);
    queue.clear();
    CHECK(a.use_count() == 2);
  }
  CHECK(a.use_count() == 1);

  message moved = std::move(a);
  CHECK(moved.use_count() == 1);
  CHECK_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move): a moved-from message is empty
  CHECK(a.use_count() == 0);
  CHECK(moved.payload() == "shared");

  message c = message::text("other");
  message d = c;
  CHECK(c.use_count() == 2);
  d = moved;  // d lets go of "other", shares "shared"
  CHECK(c.use_count() == 1);
  CHECK(moved.use_count() == 2);
  CHECK(d.payload() == "shared");
  message& alias = d;
  d = alias;  // self-assignment keeps it
  CHECK(d.use_count() == 2);
  CHECK(d.payload() == "shared");

  const message empty;
  CHECK_FALSE(static_cast<bool>(empty));
  CHECK(empty.use_count() == 0);
}

TEST_CASE("message: close frames") {
  CHECK(frame_of(message::close(1000)) == bytes{0x88, 0x02, 0x03, 0xE8});
  CHECK(frame_of(message::close(1000, "bye")) == bytes{0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'});
  CHECK(frame_of(message::close(4000, "replaced")) == with_payload({0x88, 0x0A, 0x0F, 0xA0}, "replaced"));
  CHECK(frame_of(message::close(1011)) == bytes{0x88, 0x02, 0x03, 0xF3});
  const message c = message::close(1001, "going");
  CHECK(c.op() == opcode::close);
  CHECK(c.is_control());
  CHECK(c.payload() == std::string_view("\x03\xE9going", 7));
  // 1005 means "no code": an empty close frame; so does a code that may not be sent.
  CHECK(frame_of(message::close(close_code::no_status)) == bytes{0x88, 0x00});
  CHECK(frame_of(message::close(close_code::no_status, "ignored")) == bytes{0x88, 0x00});
  CHECK(frame_of(message::close(1006)) == bytes{0x88, 0x00});
  CHECK(frame_of(message::close(999, "x")) == bytes{0x88, 0x00});
}

TEST_CASE("message: a long close reason is cut to 123 bytes at a character boundary") {
  SUBCASE("ASCII: exactly 123 bytes kept") {
    const std::string reason(200, 'r');
    const message m = message::close(1000, reason);
    CHECK(m.payload().size() == 125);
    CHECK(m.frame_size() == 127);
    CHECK(frame_of(m)[1] == 125);
    CHECK(m.payload().substr(2) == reason.substr(0, 123));
  }
  SUBCASE("a 123-byte reason is not cut") {
    const std::string reason = std::string(121, 'r') + "\xCE\xBA";
    CHECK(message::close(1000, reason).payload().substr(2) == reason);
  }
  SUBCASE("two-byte characters: 61 of them, 122 bytes") {
    const std::string reason = repeat("\xCE\xBA", 70);  // κ x 70 = 140 bytes, byte 123 is a continuation
    const message m = message::close(1000, reason);
    CHECK(m.payload().size() == 2 + 122);
    CHECK(m.payload().substr(0, 2) == "\x03\xE8");
    CHECK(m.payload().substr(2) == repeat("\xCE\xBA", 61));
  }
  SUBCASE("three-byte characters: 41 of them, 123 bytes") {
    const std::string reason = repeat("\xE2\x82\xAC", 50);
    const message m = message::close(1000, reason);
    CHECK(m.payload().substr(2) == repeat("\xE2\x82\xAC", 41));
  }
  SUBCASE("four-byte characters: 30 of them, 120 bytes") {
    const std::string reason = repeat("\xF0\x9F\x98\x80", 40);
    const message m = message::close(4000, reason);
    CHECK(m.payload().size() == 2 + 120);
    CHECK(m.payload().substr(2) == repeat("\xF0\x9F\x98\x80", 30));
  }
  SUBCASE("mixed: the cut is valid UTF-8 at every alignment") {
    for (std::size_t lead = 0; lead < 4; ++lead) {
      CAPTURE(lead);
      const std::string reason = std::string(lead, 'a') + repeat("\xF0\x9F\x98\x80\xE2\x82\xAC\xCE\xBA" "z", 20);
      const message m = message::close(1000, reason);
      const std::string_view kept = m.payload().substr(2);
      CHECK(kept.size() <= 123);
      CHECK(kept.size() >= 120);
      CHECK(reason.substr(0, kept.size()) == kept);
      CHECK(herald::detail::is_valid_utf8(kept.data(), kept.size()));
    }
  }
}

TEST_CASE("message: ping and pong") {
  CHECK(frame_of(message::ping()) == bytes{0x89, 0x00});
  CHECK(frame_of(message::ping("abc")) == bytes{0x89, 0x03, 'a', 'b', 'c'});
  CHECK(frame_of(message::pong("abc")) == bytes{0x8A, 0x03, 'a', 'b', 'c'});
  CHECK(frame_of(message::pong("")) == bytes{0x8A, 0x00});
  CHECK(message::ping().op() == opcode::ping);
  CHECK(message::pong("").op() == opcode::pong);
  CHECK(message::ping().is_control());
  // Control payloads are at most 125 bytes.
  const std::string long_payload = pattern(200);
  const message p = message::ping(long_payload);
  CHECK(frame_of(p) == with_payload({0x89, 0x7D}, long_payload.substr(0, 125)));
  const message q = message::pong(std::string(125, 'q'));
  CHECK(frame_of(q) == with_payload({0x8A, 0x7D}, std::string(125, 'q')));
}

TEST_CASE("message: masked() builds the client-role frame") {
  const std::uint8_t k[4] = {0x37, 0xFA, 0x21, 0x3D};
  std::uint32_t key;
  std::memcpy(&key, k, 4);
  const message hello = message::text("Hello");
  const message m = hello.masked(key);
  // RFC 6455 section 5.7.
  CHECK(frame_of(m) == bytes{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  CHECK(m.use_count() == 1);
  CHECK(hello.use_count() == 1);
  CHECK(hello.payload() == "Hello");  // the original is untouched

  const std::string big = pattern(70000);
  const message b = message::binary(std::string_view(big)).masked(key);
  const bytes f = frame_of(b);
  REQUIRE(f.size() == 14 + big.size());
  CHECK(bytes(f.begin(), f.begin() + 14) == bytes{0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70, 0x37, 0xFA, 0x21, 0x3D});
  bool unmasked_ok = true;
  for (std::size_t i = 0; i < big.size(); ++i)
    unmasked_ok = unmasked_ok && static_cast<char>(f[14 + i] ^ k[i % 4]) == big[i];
  CHECK(unmasked_ok);

  CHECK(frame_of(message::close(1000).masked(key)) == bytes{0x88, 0x82, 0x37, 0xFA, 0x21, 0x3D, 0x03 ^ 0x37, 0xE8 ^ 0xFA});
}
