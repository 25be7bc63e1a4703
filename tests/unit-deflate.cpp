// herald/deflate.hpp: permessage-deflate bodies with zlib (RFC 7692 section 7.2), inflating
// under a limit checked while inflating (zip bombs: 1009), corrupt streams (1007), the session
// inflater for peers that keep their context, and message::deflated with the real compressor.
#include <doctest/doctest.h>

#include <herald/deflate.hpp>
#include <herald/message.hpp>
#include <herald/websocket/parser.hpp>

#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace herald;

namespace {

const std::string tail("\x00\x00\xFF\xFF", 4);

std::string bytes_of(std::initializer_list<unsigned> b) {
  std::string s;
  for (unsigned c : b) s += static_cast<char>(c);
  return s;
}

// Payloads of three kinds: very compressible, text-like, and incompressible.
std::string zeros(std::size_t n) { return std::string(n, '\0'); }
std::string texty(std::size_t n) {
  static const std::string_view words[] = {"{\"uid\":", "42,", "\"event\":", "\"price\",", "\"value\":", "17.25}", " ", "\n"};
  std::string s;
  std::uint32_t x = 12345;
  while (s.size() < n) {
    x = x * 1103515245u + 12345u;
    s += words[(x >> 16) % 8];
  }
  s.resize(n);
  return s;
}
std::string noise(std::size_t n, std::uint32_t seed = 7) {
  std::string s(n, '\0');
  std::uint32_t x = seed;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

// Plain zlib, nothing of herald: inflates a raw deflate stream (the body plus the sync flush
// tail) of at most `max_out` bytes. Returns false on any zlib error.
//
// `strict_window_bits`: inflate one output byte per call with a window of 2^w. zlib checks a
// distance against its window only when it reaches before what the current call wrote, so
// this makes it refuse any back-reference longer than the window ("invalid distance too far
// back"); with one big call it would accept them.
bool zlib_inflate(std::string_view body, std::size_t max_out, std::string& out, int strict_window_bits = 0) {
  z_stream z{};
  if (inflateInit2(&z, strict_window_bits ? -strict_window_bits : -15) != Z_OK) return false;
  std::string in(body);
  in += tail;
  out.assign(max_out + 1, '\0');
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  std::size_t produced = 0;
  int r = Z_OK;
  while (r == Z_OK && produced < out.size() && z.avail_in > 0) {
    const uInt room = strict_window_bits ? 1 : static_cast<uInt>(out.size() - produced);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z.avail_out = room;
    r = inflate(&z, Z_SYNC_FLUSH);
    produced += room - z.avail_out;
  }
  const bool ok = (r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR) && produced <= max_out;
  out.resize(produced);
  inflateEnd(&z);
  return ok;
}

// A compressor that keeps its context from message to message (as a client allowed context
// takeover does): plain zlib, sync flush, tail removed.
class context_deflater {
 public:
  explicit context_deflater(int window_bits = 15) {
    REQUIRE(deflateInit2(&z_, 6, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  }
  ~context_deflater() { deflateEnd(&z_); }
  std::string next(std::string_view in) {
    std::string out(deflateBound(&z_, in.size()) + 64, '\0');
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&z_, Z_SYNC_FLUSH) == Z_OK);
    REQUIRE(z_.avail_out > 0);
    out.resize(out.size() - z_.avail_out);
    REQUIRE(out.substr(out.size() - 4) == tail);
    out.resize(out.size() - 4);
    return out;
  }

 private:
  z_stream z_{};
};

std::shared_ptr<const deflate_support> support_with(ws::deflate_config c = {}) { return make_deflate_support(c); }

std::string compress(const deflate_support& s, std::string_view payload) {
  std::string body;
  REQUIRE(s.compress(payload, body));
  return body;
}

// Counts compress() calls and passes everything on to zlib.
class counting_support final : public deflate_support {
 public:
  explicit counting_support(ws::deflate_config c = {}) : deflate_support(c), zlib_(make_deflate_support(c)) {}
  bool compress(std::string_view payload, std::string& out) const override {
    compress_calls.fetch_add(1);
    return zlib_->compress(payload, out);
  }
  inflate_status inflate(std::string_view body, std::size_t max_size, std::string& out) const override {
    return zlib_->inflate(body, max_size, out);
  }
  std::unique_ptr<deflate_inflater> make_inflater(std::uint8_t window_bits) const override {
    return zlib_->make_inflater(window_bits);
  }
  mutable std::atomic<int> compress_calls{0};

 private:
  std::shared_ptr<const deflate_support> zlib_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// RFC 7692 section 7.2.3 examples

TEST_CASE("deflate: RFC 7692 examples") {
  const auto s = support_with();
  // 7.2.3.1: "Hello" compressed, the sync flush tail removed.
  CHECK(compress(*s, "Hello") == bytes_of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  std::string out;
  CHECK(s->inflate(bytes_of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), 100, out) == inflate_status::ok);
  CHECK(out == "Hello");
  // 7.2.3.3: a stored (uncompressed) block.
  CHECK(s->inflate(bytes_of({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), 100, out) ==
        inflate_status::ok);
  CHECK(out == "Hello");
  // 7.2.3.6: the empty message is the single byte 0x00.
  CHECK(compress(*s, "") == bytes_of({0x00}));
  CHECK(s->inflate(bytes_of({0x00}), 100, out) == inflate_status::ok);
  CHECK(out.empty());
  // An empty body is taken as the empty message too.
  CHECK(s->inflate("", 100, out) == inflate_status::ok);
  CHECK(out.empty());
}

TEST_CASE("deflate: a final block (BFINAL) ends a message; what follows it is ignored") {
  const auto s = support_with();
  std::string out;
  const std::string final_hello = bytes_of({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  CHECK(s->inflate(final_hello, 100, out) == inflate_status::ok);
  CHECK(out == "Hello");
  CHECK(s->inflate(final_hello + std::string(1, '\0'), 100, out) == inflate_status::ok);
  CHECK(out == "Hello");
  // The thread's inflater starts the next message afresh.
  CHECK(s->inflate(compress(*s, "again"), 100, out) == inflate_status::ok);
  CHECK(out == "again");
}

TEST_CASE("deflate: context takeover, RFC 7692 section 7.2.3.2") {
  const auto s = support_with();
  const std::string first = bytes_of({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  const std::string second = bytes_of({0xf2, 0x00, 0x11, 0x00, 0x00});  // refers back to the first
  auto inflater = s->make_inflater(15);
  std::string out;
  CHECK(inflater->inflate(first, 100, out) == inflate_status::ok);
  CHECK(out == "Hello");
  CHECK(inflater->inflate(second, 100, out) == inflate_status::ok);
  CHECK(out == "Hello");
  // The per-thread inflater takes no context over: the back-reference reaches nothing.
  CHECK(s->inflate(second, 100, out) == inflate_status::corrupt);
  // After a final block the window is kept for the next message.
  auto after_final = s->make_inflater(15);
  CHECK(after_final->inflate(bytes_of({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), 100, out) == inflate_status::ok);
  CHECK(after_final->inflate(second, 100, out) == inflate_status::ok);
  CHECK(out == "Hello");
}

// ---------------------------------------------------------------------------------------
// Round trips

TEST_CASE("deflate: round trips of many sizes, read back by herald and by plain zlib") {
  const auto s = support_with();
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 300; n += 7) sizes.push_back(n);
  for (std::size_t p = 9; p <= 20; ++p)
    for (std::size_t d : {std::size_t(0), std::size_t(1)}) {
      sizes.push_back((std::size_t(1) << p) - d);
      sizes.push_back((std::size_t(1) << p) + d);
    }
  for (std::size_t n : sizes) {
    for (int kind = 0; kind < 3; ++kind) {
      CAPTURE(n);
      CAPTURE(kind);
      const std::string payload = kind == 0 ? zeros(n) : kind == 1 ? texty(n) : noise(n, static_cast<std::uint32_t>(n + 1));
      const std::string body = compress(*s, payload);
      CHECK_FALSE(body.empty());
      if (kind < 2 && n >= 1024) CHECK(body.size() < payload.size() / 2);
      std::string out;
      REQUIRE(s->inflate(body, payload.size(), out) == inflate_status::ok);
      CHECK(out == payload);
      std::string plain;
      REQUIRE(zlib_inflate(body, payload.size(), plain));
      CHECK(plain == payload);
      if (n <= 70000) {
        REQUIRE(zlib_inflate(body, payload.size(), plain, 15));
        CHECK(plain == payload);
      }
    }
  }
}

TEST_CASE("deflate: the compressor's window is the configured one") {
  ws::deflate_config c;
  c.window_bits = 9;
  const auto s = support_with(c);
  const std::string payload = texty(100000) + noise(3000) + texty(50000);
  const std::string body = compress(*s, payload);
  std::string plain;
  REQUIRE(zlib_inflate(body, payload.size(), plain, 9));  // distances within 512 bytes
  CHECK(plain == payload);
  const std::string repeat = noise(3000) + noise(3000);  // one 3000-byte repeat
  REQUIRE(zlib_inflate(compress(*s, repeat), repeat.size(), plain, 9));
  CHECK(plain == repeat);
  // With the default window, the repeat is found, and needs a window larger than 11 bits.
  const std::string wide = compress(*support_with(), repeat);
  CHECK(wide.size() < 3100);
  CHECK_FALSE(zlib_inflate(wide, repeat.size(), plain, 11));
  REQUIRE(zlib_inflate(wide, repeat.size(), plain, 12));
  CHECK(plain == repeat);
}

TEST_CASE("deflate: a message no longer than 2^w bytes inflates with a window of w bits, whatever the compressor's") {
  const auto s = support_with();  // window 15
  for (std::size_t n : {1u, 100u, 200u, 256u}) {
    CAPTURE(n);
    const std::string payload = texty(n / 2) + texty(n - n / 2);
    CHECK(ws::window_needed(n, 15) == 8);
    std::string plain;
    REQUIRE(zlib_inflate(compress(*s, payload), n, plain, 8));
    CHECK(plain == payload);
  }
  for (std::size_t n : {3000u, 4096u}) {
    const std::string payload = noise(n / 2) + noise(n - n / 2);  // a repeat as far back as it can be
    CHECK(ws::window_needed(payload.size(), 15) == 12);
    std::string plain;
    REQUIRE(zlib_inflate(compress(*s, payload), n, plain, 12));
    CHECK(plain == payload);
  }
  // The bound is tight: 4097 bytes with a 2049-byte repeat distance need 13 bits.
  const std::string payload = noise(2049) + noise(2048);
  CHECK(ws::window_needed(payload.size(), 15) == 13);
  std::string plain;
  CHECK_FALSE(zlib_inflate(compress(*s, payload), payload.size(), plain, 11));
}

// ---------------------------------------------------------------------------------------
// Limits: max_message_size counts inflated bytes, checked while inflating

TEST_CASE("deflate: a message exactly at the limit passes, one byte more is too big") {
  const auto s = support_with();
  for (std::size_t n : {1u, 255u, 256u, 257u, 1023u, 1024u, 1025u, 4096u, 65535u, 65536u, 65537u, 300000u}) {
    for (int kind = 0; kind < 3; ++kind) {
      CAPTURE(n);
      CAPTURE(kind);
      const std::string payload = kind == 0 ? zeros(n) : kind == 1 ? texty(n) : noise(n);
      const std::string body = compress(*s, payload);
      std::string out;
      CHECK(s->inflate(body, n, out) == inflate_status::ok);
      CHECK(out == payload);
      CHECK(s->inflate(body, n - 1, out) == inflate_status::too_big);
      CHECK(out.size() <= n);
      auto inflater = s->make_inflater(15);
      CHECK(inflater->inflate(body, n, out) == inflate_status::ok);
      CHECK(out == payload);
      CHECK(inflater->inflate(body, n - 1, out) == inflate_status::too_big);
    }
  }
  std::string out;
  CHECK(s->inflate(compress(*s, "x"), 0, out) == inflate_status::too_big);
  CHECK(s->inflate(compress(*s, ""), 0, out) == inflate_status::ok);
}

TEST_CASE("deflate: zip bombs are stopped at the limit, not after inflating them") {
  const auto s = support_with();
  // One MiB of zeros compresses to about 1 KB: DEFLATE's best ratio is near 1032:1, so a
  // 1 KB frame inflates to a megabyte at most.
  const std::string segment = compress(*s, zeros(1 << 20));
  CHECK(segment.size() < 1100);
  // 1024 segments, each ended by an empty stored block: a ~1 MB message that would inflate to
  // 1 GiB.
  std::string gigabyte;
  for (int i = 0; i < 1024; ++i) {
    gigabyte += segment;
    if (i != 1023) gigabyte += tail;
  }
  CHECK(gigabyte.size() < (1u << 21));

  for (const std::string* bomb : {&segment, static_cast<const std::string*>(&gigabyte)}) {
    for (std::size_t limit : {std::size_t(0), std::size_t(1000), std::size_t(64 * 1024), std::size_t(1000 * 1000)}) {
      CAPTURE(bomb->size());
      CAPTURE(limit);
      std::string out;
      CHECK(s->inflate(*bomb, limit, out) == inflate_status::too_big);
      // At most the limit plus one byte was produced, into a buffer that never grew past
      // twice that.
      CHECK(out.size() <= limit + 1);
      CHECK(out.capacity() <= 2 * (limit + 1) + 256);
      auto inflater = s->make_inflater(15);
      CHECK(inflater->inflate(*bomb, limit, out) == inflate_status::too_big);
      CHECK(out.capacity() <= 2 * (limit + 1) + 256);
    }
  }
  // Under a limit that allows it, the 1 KB bomb is just a megabyte of zeros.
  std::string out;
  CHECK(s->inflate(segment, 1 << 20, out) == inflate_status::ok);
  CHECK(out == zeros(1 << 20));
}

// ---------------------------------------------------------------------------------------
// Corrupt streams: 1007

TEST_CASE("deflate: corrupt streams are 1007 and leave the inflater usable") {
  const auto s = support_with();
  CHECK(close_code_of(inflate_status::corrupt) == 1007);
  CHECK(close_code_of(inflate_status::too_big) == 1009);
  std::string out;
  // Block type 3 is reserved.
  CHECK(s->inflate(bytes_of({0xff}), 1000, out) == inflate_status::corrupt);
  CHECK(s->inflate(bytes_of({0x07, 0x00}), 1000, out) == inflate_status::corrupt);
  // A stored block whose length and its complement disagree.
  CHECK(s->inflate(bytes_of({0x00, 0x05, 0x00, 0xfa, 0xfe, 'H', 'e', 'l', 'l', 'o', 0x00}), 1000, out) ==
        inflate_status::corrupt);
  // Garbage.
  CHECK(s->inflate(noise(5000, 99), 1 << 20, out) == inflate_status::corrupt);
  // A message cut short: it ends inside a block.
  const std::string whole = compress(*s, texty(5000));
  for (std::size_t cut : {whole.size() / 4, whole.size() / 2, whole.size() - 3, whole.size() - 1}) {
    CAPTURE(cut);
    CHECK(s->inflate(whole.substr(0, cut), 1 << 20, out) == inflate_status::corrupt);
    auto inflater = s->make_inflater(15);
    CHECK(inflater->inflate(whole.substr(0, cut), 1 << 20, out) == inflate_status::corrupt);
  }
  // The next message on this thread is fine.
  CHECK(s->inflate(whole, 1 << 20, out) == inflate_status::ok);
  CHECK(out == texty(5000));
}

TEST_CASE("deflate: one inflater per thread serves messages of many sessions, in any order") {
  const auto s = support_with();
  std::vector<std::string> payloads, bodies;
  for (int i = 0; i < 50; ++i) {
    payloads.push_back(texty(static_cast<std::size_t>(i) * 97 + 1) + std::to_string(i));
    bodies.push_back(compress(*s, payloads.back()));
  }
  for (int round = 0; round < 3; ++round) {
    for (std::size_t k = 0; k < bodies.size(); ++k) {
      const std::size_t i = (k * 17 + static_cast<std::size_t>(round) * 5) % bodies.size();
      std::string out;
      REQUIRE(s->inflate(bodies[i], 1 << 20, out) == inflate_status::ok);
      CHECK(out == payloads[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------
// A session whose client keeps its context

TEST_CASE("deflate: a session inflater follows a client that keeps its context") {
  const auto s = support_with();
  for (int window : {9, 12, 15}) {
    CAPTURE(window);
    context_deflater client(window);
    auto inflater = s->make_inflater(static_cast<std::uint8_t>(window));
    CHECK(inflater->memory() == 0);  // nothing until the first message
    for (int i = 0; i < 40; ++i) {
      const std::string payload = texty(200 + static_cast<std::size_t>(i) * 31) + std::to_string(i);
      const std::string body = client.next(payload);
      std::string out;
      REQUIRE(inflater->inflate(body, 1 << 20, out) == inflate_status::ok);
      CHECK(out == payload);
    }
  }
  // The same messages without the context are not readable from the second one on.
  context_deflater client(15);
  const std::string first = client.next(texty(3000));
  const std::string second = client.next(texty(3000));
  CHECK(second.size() < 100);
  std::string out;
  CHECK(s->inflate(first, 1 << 20, out) == inflate_status::ok);
  CHECK(s->inflate(second, 1 << 20, out) == inflate_status::corrupt);
}

TEST_CASE("deflate: memory of a session inflater (context takeover)") {
  const auto s = support_with();
  for (int window = 8; window <= 15; ++window) {
    auto inflater = s->make_inflater(static_cast<std::uint8_t>(window));
    std::string out;
    // A client held to `window` bits: plain zlib at that window (9 for 8: zlib has no 8-bit deflate).
    context_deflater peer(window < 9 ? 9 : window);
    REQUIRE(inflater->inflate(peer.next(noise(70000)), 1 << 20, out) == inflate_status::ok);
    const std::size_t held = inflater->memory();
    const std::size_t window_bytes = std::size_t(1) << (window < 9 ? 9 : window);
    MESSAGE("context-takeover inflater, window ", window, " bits: zlib holds ", held, " bytes (window ", window_bytes,
            " + state ", held - window_bytes, "), object ", sizeof(zlib_session_inflater), " bytes");
    CHECK(held >= window_bytes);
    CHECK(held <= window_bytes + 8 * 1024);
  }
}

// ---------------------------------------------------------------------------------------
// session_options and message::deflated with zlib

TEST_CASE("deflate: enable_deflate") {
  session_options o;
  CHECK_FALSE(o.deflate);
  enable_deflate(o);
  REQUIRE(o.deflate);
  CHECK(o.deflate->config().window_bits == 15);
  ws::deflate_config off;
  off.enabled = false;
  enable_deflate(o, off);
  CHECK_FALSE(o.deflate);
  ws::deflate_config bad;
  bad.level = 0;
  CHECK_THROWS_AS(enable_deflate(o, bad), std::invalid_argument);
  bad = {};
  bad.window_bits = 16;
  CHECK_THROWS_AS(make_deflate_support(bad), std::invalid_argument);
}

TEST_CASE("deflate: a broadcast is compressed once, and every receiver reads the same frame") {
  const counting_support s;
  const std::string json = texty(2000);
  const message m = message::text(json);
  std::vector<message> queues;
  for (int i = 0; i < 19000; ++i) queues.push_back(m.deflated(s));
  CHECK(s.compress_calls.load() == 1);
  const message& c = queues.front();
  CHECK(c.compressed());
  CHECK(c.frame()[0] == 0xC1);  // FIN, RSV1, text
  CHECK(c.frame_size() < m.frame_size() / 2);
  CHECK(c.use_count() == 19001);  // the queues and the message's cache
  for (const auto& q : queues) CHECK(q.frame().data() == c.frame().data());

  // A client reads it: the parser reports it compressed, the inflater gives the text back.
  std::vector<std::uint8_t> wire(c.frame().begin(), c.frame().end());
  ws::parser p(ws::role::client);
  p.enable_compression();
  const auto r = p.next(wire.data(), wire.size());
  REQUIRE(r.ev.kind == ws::event_kind::message);
  CHECK(r.ev.compressed);
  CHECK(r.ev.op == ws::opcode::text);
  std::string out;
  REQUIRE(s.inflate(r.ev.payload, 1 << 20, out) == inflate_status::ok);
  CHECK(out == json);

  // Receivers whose window is too small for this 2000-byte message get the plain frame.
  CHECK(ws::window_needed(json.size(), 15) == 11);
  CHECK(m.deflated(s, 10).frame().data() == m.frame().data());
  CHECK(m.deflated(s, 11).frame().data() == c.frame().data());
  CHECK(s.compress_calls.load() == 1);
}

TEST_CASE("deflate: incompressible and small messages go out plain, compressed at most once") {
  const counting_support s;
  const message random = message::binary(std::string_view(noise(5000)));
  for (int i = 0; i < 100; ++i) CHECK(random.deflated(s).frame().data() == random.frame().data());
  CHECK(s.compress_calls.load() == 1);
  const message small = message::text(texty(100));
  CHECK(small.deflated(s).frame().data() == small.frame().data());
  CHECK(s.compress_calls.load() == 1);
}

TEST_CASE("deflate: threads compress and inflate at once, each with its own zlib state") {
  const counting_support s;
  const message shared = message::text(texty(20000));
  std::vector<message> got(4);
  std::vector<int> errors(4, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 30; ++i) {
        const std::string payload = texty(1000 + t * 300 + static_cast<std::size_t>(i)) + std::to_string(t);
        std::string body, out;
        if (!s.compress(payload, body) || s.inflate(body, 1 << 20, out) != inflate_status::ok || out != payload) ++errors[t];
      }
      got[t] = shared.deflated(s);
    });
  for (auto& t : threads) t.join();
  for (std::size_t t = 0; t < 4; ++t) {
    CHECK(errors[t] == 0);
    CHECK(got[t].frame().data() == got[0].frame().data());
  }
  std::string out;
  REQUIRE(s.inflate(got[0].payload(), 1 << 20, out) == inflate_status::ok);
  CHECK(out == shared.payload());
}
