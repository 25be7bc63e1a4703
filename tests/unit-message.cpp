// herald::message: the prebuilt, shared server frame.
#include <doctest/doctest.h>

#include <herald/deflate_support.hpp>
#include <herald/detail/utf8.hpp>
#include <herald/message.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
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

// A stand-in for zlib (message.hpp must not need it): "compresses" a payload into "Z" and its
// length, counting the calls; `grow` makes the result longer than the payload, `fail` refuses.
class fake_deflate final : public herald::deflate_support {
 public:
  explicit fake_deflate(herald::ws::deflate_config c = {}) : deflate_support(c) {}
  bool compress(std::string_view payload, std::string& out) const override {
    calls.fetch_add(1);
    if (fail) return false;
    out = "Z" + std::to_string(payload.size());
    if (grow) out += std::string(payload.size(), 'g');
    return true;
  }
  herald::inflate_status inflate(std::string_view, std::size_t, std::string&) const override {
    return herald::inflate_status::corrupt;
  }
  std::unique_ptr<herald::deflate_inflater> make_inflater(std::uint8_t) const override { return nullptr; }
  mutable std::atomic<int> calls{0};
  bool grow = false;
  bool fail = false;
};

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

TEST_CASE("message: stays one pointer") {
  CHECK(sizeof(message) == sizeof(void*));
}

TEST_CASE("message: a broadcast is compressed once for every permessage-deflate receiver") {
  const fake_deflate d;
  const std::string payload = pattern(1000);
  message m = message::binary(std::string_view(payload));
  // 19,000 sessions with the extension take the compressed frame, others the plain one.
  std::vector<message> deflate_queues, plain_queues;
  for (int i = 0; i < 19000; ++i) {
    deflate_queues.push_back(m.deflated(d));
    plain_queues.push_back(m);
  }
  CHECK(d.calls.load() == 1);
  const message c = deflate_queues.front();
  CHECK(c.compressed());
  CHECK_FALSE(m.compressed());
  CHECK(frame_of(c) == with_payload({0xC2, 0x05}, "Z1000"));  // FIN, RSV1, binary
  CHECK(c.payload() == "Z1000");
  CHECK(c.op() == opcode::binary);
  CHECK(c.use_count() == 19002);  // the queues, `c`, and the message's cache
  CHECK(m.use_count() == 19001);  // the plain queues and `m`
  bool shared = true;
  for (const auto& q : deflate_queues) shared = shared && q.frame().data() == c.frame().data();
  CHECK(shared);
  // Asking again, or from a copy, gives the same frame without compressing again.
  const message copy = m;
  CHECK(copy.deflated(d).frame().data() == c.frame().data());
  // A compressed frame is not compressed again.
  CHECK(c.deflated(d).frame().data() == c.frame().data());
  CHECK(d.calls.load() == 1);

  // Once the plain message is gone, the compressed frame lives on in whoever holds it.
  deflate_queues.clear();
  CHECK(c.use_count() == 2);
  plain_queues.clear();
  m = message{};
  CHECK(copy.use_count() == 1);
  CHECK(c.use_count() == 2);
  CHECK(c.payload() == "Z1000");
}

TEST_CASE("message: deflated() keeps the plain frame where compression does not apply") {
  herald::ws::deflate_config config;
  config.threshold = 100;
  fake_deflate d(config);
  // Below the threshold: not even tried.
  const message small = message::text(std::string(99, 's'));
  CHECK(small.deflated(d).frame().data() == small.frame().data());
  CHECK(d.calls.load() == 0);
  // Control frames never.
  const message ping = message::ping(std::string(120, 'p'));
  CHECK(ping.deflated(d).frame().data() == ping.frame().data());
  const message close = message::close(1000, std::string(120, 'c'));
  CHECK(close.deflated(d).frame().data() == close.frame().data());
  CHECK(d.calls.load() == 0);
  // An empty message (none) stays empty.
  CHECK_FALSE(message{}.deflated(d));
  CHECK_FALSE(message{}.compressed());

  // At the threshold it is compressed.
  const message at = message::text(std::string(100, 'a'));
  CHECK(at.deflated(d).compressed());
  CHECK(d.calls.load() == 1);

  // Not smaller once compressed: plain, and remembered (one try for any number of receivers).
  d.grow = true;
  const message grows = message::text(std::string(500, 'x'));
  for (int i = 0; i < 1000; ++i) CHECK(grows.deflated(d).frame().data() == grows.frame().data());
  CHECK(d.calls.load() == 2);
  // The compressor refusing: plain, remembered too.
  d.grow = false;
  d.fail = true;
  const message refused = message::text(std::string(500, 'y'));
  for (int i = 0; i < 1000; ++i) CHECK_FALSE(refused.deflated(d).compressed());
  CHECK(d.calls.load() == 3);
}

TEST_CASE("message: deflated() honours the receiver's window") {
  const fake_deflate d;  // compressor window 15
  // 1000 bytes need a 10-bit window on the receiving side (no distance reaches before byte 0).
  const message m = message::text(std::string(1000, 'w'));
  CHECK_FALSE(m.deflated(d, 8).compressed());
  CHECK_FALSE(m.deflated(d, 9).compressed());
  CHECK(m.deflated(d, 10).compressed());
  CHECK(m.deflated(d, 15).compressed());
  CHECK(m.deflated(d, 9).frame().data() == m.frame().data());
  CHECK(d.calls.load() == 1);
  // A small message suits even an 8-bit window.
  const message small = message::text(std::string(256, 's'));
  CHECK(small.deflated(d, 8).compressed());
  // A compressor with a small window makes frames for small windows.
  herald::ws::deflate_config nine;
  nine.window_bits = 9;
  const fake_deflate d9(nine);
  const message big = message::text(std::string(100000, 'b'));
  CHECK(big.deflated(d9, 9).compressed());
  CHECK_FALSE(message::text(std::string(100000, 'b')).deflated(d, 14).compressed());
}

TEST_CASE("message: threads asking for the compressed frame at once share one") {
  const fake_deflate d;
  for (int round = 0; round < 50; ++round) {
    const message m = message::text(std::string(2000, static_cast<char>('a' + round % 26)));
    std::atomic<int> ready{0};
    std::vector<const std::uint8_t*> seen(4);
    std::vector<message> kept(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < 4) {
        }
        kept[t] = m.deflated(d);
        seen[t] = kept[t].frame().data();
      });
    for (auto& t : threads) t.join();
    for (std::size_t t = 1; t < 4; ++t) CHECK(seen[t] == seen[0]);
    CHECK(kept[0].compressed());
    CHECK(kept[0].use_count() == 5);  // the four, and the cache; the losers' copies are freed
  }
  CHECK(d.calls.load() >= 50);
  CHECK(d.calls.load() <= 200);
}

TEST_CASE("message: masked() keeps a compressed frame's RSV1") {
  const fake_deflate d;
  const std::uint8_t k[4] = {0x37, 0xFA, 0x21, 0x3D};
  std::uint32_t key;
  std::memcpy(&key, k, 4);
  const message c = message::text(std::string(1000, 'm')).deflated(d);
  REQUIRE(c.compressed());
  const message masked = c.masked(key);
  CHECK(masked.compressed());
  CHECK(frame_of(masked)[0] == 0xC1);
  CHECK(frame_of(masked)[1] == (0x80 | 5));
  const message plain = message::text("Hello").masked(key);
  CHECK(frame_of(plain)[0] == 0x81);
}
