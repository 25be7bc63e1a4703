// The pull parser: RFC 6455 section 5 framing rules, fragmentation, close frames,
// UTF-8, limits, and chunking independence.
#include <doctest/doctest.h>

#include "codec_support.hpp"

#include <herald/websocket/parser.hpp>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace herald::ws;
using herald_test::bytes;
using herald_test::key_of;

const std::uint32_t rfc_key = key_of(0x37, 0xFA, 0x21, 0x3D);

// A frame as a client sends it: masked with `key`.
bytes client_frame(opcode op, bool fin, std::string_view payload, std::uint32_t key = rfc_key) {
  bytes out(max_frame_header_size + payload.size());
  const std::size_t n = write_frame_header(out.data(), op, fin, payload.size(), true, key);
  if (!payload.empty()) std::memcpy(out.data() + n, payload.data(), payload.size());
  apply_mask(out.data() + n, payload.size(), key);
  out.resize(n + payload.size());
  return out;
}

// A frame as a server sends it: unmasked.
bytes server_frame(opcode op, bool fin, std::string_view payload) {
  bytes out(max_frame_header_size + payload.size());
  const std::size_t n = write_frame_header(out.data(), op, fin, payload.size());
  if (!payload.empty()) std::memcpy(out.data() + n, payload.data(), payload.size());
  out.resize(n + payload.size());
  return out;
}

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string s;
  s += static_cast<char>(code >> 8);
  s += static_cast<char>(code & 0xFF);
  s += reason;
  return s;
}

std::string pattern(std::size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 8)) & 0xFF);
  return s;
}

// An event copied out of the parser (its views die at the next call).
struct ev {
  event_kind kind = event_kind::need_more;
  opcode op = opcode::continuation;
  std::string payload;
  std::uint16_t code = 0;
  std::string reason;
  bool compressed = false;
  bool operator==(const ev&) const = default;
};

const char* kind_name(event_kind k) {
  switch (k) {
    case event_kind::need_more: return "need_more";
    case event_kind::message: return "message";
    case event_kind::ping: return "ping";
    case event_kind::pong: return "pong";
    case event_kind::close: return "close";
    case event_kind::error: return "error";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, const ev& e) {
  os << "{" << kind_name(e.kind) << " op=" << int(e.op) << " payload(" << e.payload.size() << ")=";
  if (e.payload.size() <= 40) os << '"' << e.payload << '"';
  return os << " code=" << e.code << " reason=\"" << e.reason << "\"" << (e.compressed ? " compressed" : "") << "}";
}

}  // namespace

namespace doctest {
template <>
struct StringMaker<std::vector<ev>> {
  static String convert(const std::vector<ev>& v) {
    std::ostringstream os;
    os << "[" << v.size() << " events:";
    for (const auto& e : v) os << " " << e;
    os << "]";
    return String(os.str().c_str());
  }
};
}  // namespace doctest

namespace {

ev record(const event& e) {
  ev r;
  r.kind = e.kind;
  switch (e.kind) {
    case event_kind::need_more: break;
    case event_kind::message: r.op = e.op; r.payload = std::string(e.payload); r.compressed = e.compressed; break;
    case event_kind::ping:
    case event_kind::pong: r.payload = std::string(e.payload); break;
    case event_kind::close: r.code = e.code; r.reason = std::string(e.reason); break;
    case event_kind::error: r.code = e.code; r.reason = std::string(e.reason); break;
  }
  return r;
}

ev text(std::string_view s) { return {event_kind::message, opcode::text, std::string(s), 0, {}}; }
ev binary(std::string_view s) { return {event_kind::message, opcode::binary, std::string(s), 0, {}}; }
ev ping(std::string_view s) { return {event_kind::ping, opcode::continuation, std::string(s), 0, {}}; }
ev pong(std::string_view s) { return {event_kind::pong, opcode::continuation, std::string(s), 0, {}}; }
ev closed(std::uint16_t code, std::string_view reason = {}) { return {event_kind::close, opcode::continuation, {}, code, std::string(reason)}; }

// Drives a parser the way a session does: received bytes are appended to a pending buffer,
// next() is called until need_more, and the unconsumed rest is offered again later.
struct feeder {
  parser p;
  bytes pending;
  std::vector<ev> events;
  bool stopped = false;

  explicit feeder(role r = role::server, std::size_t max_message = 64 * 1024, bool compression = false)
      : p(r, parser_limits{max_message}) {
    p.enable_compression(compression);
  }

  void feed(const std::uint8_t* data, std::size_t n) {
    pending.insert(pending.end(), data, data + n);
    pump();
  }
  void feed(const bytes& b) { feed(b.data(), b.size()); }

  void pump() {
    for (int guard = 0; guard < 10'000'000 && !stopped; ++guard) {
      const parse_result r = p.next(pending.data(), pending.size());
      REQUIRE(r.consumed <= pending.size());
      const ev e = record(r.ev);  // copy before the buffer changes
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(r.consumed));
      if (e.kind == event_kind::need_more) {
        // Only an incomplete header, or an incomplete control frame, may be left over.
        CHECK(pending.size() < max_frame_header_size + max_control_payload);
        return;
      }
      REQUIRE((r.consumed > 0 || e.kind == event_kind::error));
      events.push_back(e);
      if (e.kind == event_kind::error) {
        stopped = true;
        return;
      }
    }
    FAIL("parser did not reach need_more");
  }

  bool failed_with(std::uint16_t code) const {
    return !events.empty() && events.back().kind == event_kind::error && events.back().code == code && p.failed();
  }
};

std::vector<ev> parse_at_once(const bytes& stream, role r = role::server, std::size_t max_message = 64 * 1024,
                              bool compression = false) {
  feeder f(r, max_message, compression);
  f.feed(stream);
  return f.events;
}

std::vector<ev> parse_bytewise(const bytes& stream, role r = role::server, std::size_t max_message = 64 * 1024,
                               bool compression = false) {
  feeder f(r, max_message, compression);
  for (std::uint8_t b : stream) {
    f.feed(&b, 1);
    if (f.stopped) break;
  }
  return f.events;
}

std::vector<ev> parse_chunked(const bytes& stream, unsigned seed, std::size_t max_chunk, role r = role::server,
                              std::size_t max_message = 64 * 1024, bool compression = false) {
  feeder f(r, max_message, compression);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> size(1, max_chunk);
  for (std::size_t pos = 0; pos < stream.size() && !f.stopped;) {
    const std::size_t n = std::min(size(rng), stream.size() - pos);
    f.feed(stream.data() + pos, n);
    pos += n;
  }
  return f.events;
}

// Parses `stream` at once, byte-wise and in random chunks; all must give `expected`.
void check_all_ways(const bytes& stream, const std::vector<ev>& expected, role r = role::server,
                    std::size_t max_message = 64 * 1024, bool compression = false) {
  CHECK(parse_at_once(stream, r, max_message, compression) == expected);
  CHECK(parse_bytewise(stream, r, max_message, compression) == expected);
  for (unsigned seed = 1; seed <= 3; ++seed)
    CHECK(parse_chunked(stream, seed, 17, r, max_message, compression) == expected);
}

// Expect exactly one error event with `code` after the given stream (fed at once and byte-wise).
void check_error(const bytes& stream, std::uint16_t code, role r = role::server, std::size_t max_message = 64 * 1024,
                 bool compression = false) {
  feeder f(r, max_message, compression);
  f.feed(stream);
  REQUIRE(!f.events.empty());
  CHECK(f.events.back().kind == event_kind::error);
  CHECK(f.events.back().code == code);
  CHECK(f.events.back().reason != "");
  CHECK(f.p.failed());
  // Byte-wise: the same events; an error's reason text may differ (e.g. "ends inside a
  // sequence" when the bad byte is the last one seen), its code may not.
  auto bytewise = parse_bytewise(stream, r, max_message, compression);
  REQUIRE(bytewise.size() == f.events.size());
  CHECK(bytewise.back().kind == event_kind::error);
  CHECK(bytewise.back().code == code);
  bytewise.back().reason = f.events.back().reason;
  CHECK(bytewise == f.events);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// RFC 6455 section 5.7 examples

TEST_CASE("parser: RFC 5.7 single-frame unmasked text (client role)") {
  const bytes frame = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  check_all_ways(frame, {text("Hello")}, role::client);
}

TEST_CASE("parser: RFC 5.7 single-frame masked text (server role)") {
  const bytes frame = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  check_all_ways(frame, {text("Hello")});
  CHECK(client_frame(opcode::text, true, "Hello") == frame);  // the test helper builds the same bytes
}

TEST_CASE("parser: RFC 5.7 fragmented unmasked text") {
  const bytes frames = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
  check_all_ways(frames, {text("Hello")}, role::client);
  // The same, masked, as a server reads it.
  check_all_ways(cat({client_frame(opcode::text, false, "Hel"), client_frame(opcode::continuation, true, "lo")}),
                 {text("Hello")});
}

TEST_CASE("parser: RFC 5.7 unmasked ping and masked pong") {
  check_all_ways({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}, {ping("Hello")}, role::client);
  check_all_ways({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, {pong("Hello")});
}

TEST_CASE("parser: RFC 5.7 256-byte binary (16-bit length) and 64KiB binary (64-bit length)") {
  const std::string p256 = pattern(256);
  bytes f256 = {0x82, 0x7E, 0x01, 0x00};
  f256.insert(f256.end(), p256.begin(), p256.end());
  check_all_ways(f256, {binary(p256)}, role::client);

  const std::string p64k = pattern(65536, 2);
  bytes f64k = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
  f64k.insert(f64k.end(), p64k.begin(), p64k.end());
  CHECK(parse_at_once(f64k, role::client) == std::vector<ev>{binary(p64k)});
  CHECK(parse_bytewise(f64k, role::client) == std::vector<ev>{binary(p64k)});
  CHECK(parse_chunked(f64k, 7, 5000, role::client) == std::vector<ev>{binary(p64k)});
}

// ---------------------------------------------------------------------------------------
// Lengths, masking, roles

TEST_CASE("parser: every length boundary, text and binary, server role") {
  for (std::size_t n : {0, 1, 125, 126, 127, 65535, 65536, 65537}) {
    CAPTURE(n);
    const std::string payload = pattern(n, static_cast<unsigned>(n));
    const std::string ascii(n, 'x');
    const std::uint32_t key = key_of(0x01, 0x80, 0xFE, 0x7F);
    const bytes b = client_frame(opcode::binary, true, payload, key);
    CHECK(b.size() == frame_header_size(n, true) + n);
    CHECK(parse_at_once(b, role::server, 1 << 20) == std::vector<ev>{binary(payload)});
    CHECK(parse_chunked(b, 3, 1000, role::server, 1 << 20) == std::vector<ev>{binary(payload)});
    const bytes t = client_frame(opcode::text, true, ascii, key);
    CHECK(parse_at_once(t, role::server, 1 << 20) == std::vector<ev>{text(ascii)});
    if (n <= 65536) CHECK(parse_bytewise(b, role::server, 1 << 20) == std::vector<ev>{binary(payload)});
    // Unmasked, as a client reads it.
    const bytes s = server_frame(opcode::binary, true, payload);
    CHECK(parse_at_once(s, role::client, 1 << 20) == std::vector<ev>{binary(payload)});
    CHECK(parse_chunked(s, 4, 1000, role::client, 1 << 20) == std::vector<ev>{binary(payload)});
  }
}

TEST_CASE("parser: a message of exactly max_message_size is accepted, one byte more is 1009") {
  const std::size_t limit = 1000;
  check_all_ways(client_frame(opcode::binary, true, pattern(limit)), {binary(pattern(limit))}, role::server, limit);
  check_error(client_frame(opcode::binary, true, pattern(limit + 1)), close_code::message_too_big, role::server, limit);
  // The default limit is 64 KiB.
  CHECK(parse_at_once(client_frame(opcode::binary, true, pattern(65536))) == std::vector<ev>{binary(pattern(65536))});
  check_error(client_frame(opcode::binary, true, pattern(65537)), close_code::message_too_big);
}

TEST_CASE("parser: an oversized frame is refused from its header, before its payload arrives") {
  const bytes frame = client_frame(opcode::text, true, std::string(2000, 'a'));
  feeder f(role::server, 1000);
  f.feed(frame.data(), frame_header_size(2000, true));
  CHECK(f.failed_with(close_code::message_too_big));
}

TEST_CASE("parser: the sum of fragments over max_message_size is 1009") {
  const std::size_t limit = 100;
  SUBCASE("exactly the limit in three fragments is fine") {
    check_all_ways(cat({client_frame(opcode::text, false, std::string(40, 'a')),
                        client_frame(opcode::continuation, false, std::string(40, 'b')),
                        client_frame(opcode::continuation, true, std::string(20, 'c'))}),
                   {text(std::string(40, 'a') + std::string(40, 'b') + std::string(20, 'c'))}, role::server, limit);
  }
  SUBCASE("one byte over") {
    feeder f(role::server, limit);
    f.feed(client_frame(opcode::text, false, std::string(40, 'a')));
    f.feed(client_frame(opcode::continuation, false, std::string(40, 'b')));
    CHECK(f.events.empty());
    CHECK_FALSE(f.p.failed());
    f.feed(client_frame(opcode::continuation, true, std::string(21, 'c')));
    CHECK(f.failed_with(close_code::message_too_big));
  }
}

TEST_CASE("parser: the size limit is per message, not per connection") {
  // Each message is under the limit; together they are over it.
  const std::size_t limit = 100;
  SUBCASE("whole messages") {
    check_all_ways(cat({client_frame(opcode::text, true, std::string(60, 'a')),
                        client_frame(opcode::text, true, std::string(60, 'b')),
                        client_frame(opcode::binary, true, std::string(100, 'c'))}),
                   {text(std::string(60, 'a')), text(std::string(60, 'b')), binary(std::string(100, 'c'))},
                   role::server, limit);
  }
  SUBCASE("a fragmented message, then a whole one") {
    check_all_ways(cat({client_frame(opcode::text, false, std::string(30, 'a')),
                        client_frame(opcode::continuation, true, std::string(30, 'b')),
                        client_frame(opcode::binary, true, std::string(60, 'c'))}),
                   {text(std::string(30, 'a') + std::string(30, 'b')), binary(std::string(60, 'c'))}, role::server,
                   limit);
  }
  SUBCASE("the default 64 KiB limit, two 40 KB messages") {
    check_all_ways(cat({client_frame(opcode::binary, true, pattern(40000, 1)),
                        client_frame(opcode::binary, true, pattern(40000, 2))}),
                   {binary(pattern(40000, 1)), binary(pattern(40000, 2))});
  }
}

TEST_CASE("parser: a server requires masked frames, a client refuses them") {
  check_error(server_frame(opcode::text, true, "Hello"), close_code::protocol_error, role::server);
  check_error(server_frame(opcode::ping, true, ""), close_code::protocol_error, role::server);
  check_error(client_frame(opcode::text, true, "Hello"), close_code::protocol_error, role::client);
  check_error(client_frame(opcode::close, true, ""), close_code::protocol_error, role::client);
  // An unmasked continuation in the middle of a masked message.
  check_error(cat({client_frame(opcode::text, false, "He"), server_frame(opcode::continuation, true, "llo")}),
              close_code::protocol_error);
}

TEST_CASE("parser: payloads of a whole message are unmasked in the caller's buffer") {
  bytes frame = client_frame(opcode::binary, true, "zero-copy");
  parser p;
  const auto r = p.next(frame.data(), frame.size());
  REQUIRE(r.ev.kind == event_kind::message);
  CHECK(r.consumed == frame.size());
  CHECK(r.ev.payload == "zero-copy");
  CHECK(reinterpret_cast<const std::uint8_t*>(r.ev.payload.data()) == frame.data() + 6);
}

// ---------------------------------------------------------------------------------------
// Protocol errors (1002)

TEST_CASE("parser: reserved bits without an extension are 1002") {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
    CAPTURE(int(rsv));
    bytes t = client_frame(opcode::text, true, "Hello");
    t[0] |= rsv;
    check_error(t, close_code::protocol_error);
    bytes pg = client_frame(opcode::ping, true, "");
    pg[0] |= rsv;
    check_error(pg, close_code::protocol_error);
    // On a continuation frame too.
    bytes c = client_frame(opcode::continuation, true, "lo");
    c[0] |= rsv;
    check_error(cat({client_frame(opcode::text, false, "Hel"), c}), close_code::protocol_error);
  }
}

TEST_CASE("parser: unknown opcodes 3-7 and 11-15 are 1002") {
  for (int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
    CAPTURE(op);
    bytes f = client_frame(opcode::binary, true, "x");
    f[0] = static_cast<std::uint8_t>(0x80 | op);
    check_error(f, close_code::protocol_error);
    f[0] = static_cast<std::uint8_t>(op);  // and without FIN
    check_error(f, close_code::protocol_error);
    // After a valid message, the error comes after that message's event.
    feeder g;
    g.feed(cat({client_frame(opcode::text, true, "ok"), f}));
    CHECK(g.events.size() == 2);
    CHECK(g.events.front() == text("ok"));
    CHECK(g.failed_with(close_code::protocol_error));
  }
}

TEST_CASE("parser: control frames with FIN=0 are 1002") {
  for (opcode op : {opcode::close, opcode::ping, opcode::pong}) {
    CAPTURE(int(op));
    check_error(client_frame(op, false, ""), close_code::protocol_error);
  }
}

TEST_CASE("parser: control frames longer than 125 bytes are 1002") {
  for (opcode op : {opcode::close, opcode::ping, opcode::pong}) {
    CAPTURE(int(op));
    check_error(client_frame(op, true, std::string(126, 'a')), close_code::protocol_error);
    check_error(client_frame(op, true, std::string(65536, 'a')), close_code::protocol_error, role::server, 1 << 20);
  }
  // 125 is fine.
  check_all_ways(client_frame(opcode::ping, true, std::string(125, 'p')), {ping(std::string(125, 'p'))});
  check_all_ways(client_frame(opcode::pong, true, std::string(125, 'q')), {pong(std::string(125, 'q'))});
  // Refused from the two header bytes alone.
  feeder f;
  f.feed(client_frame(opcode::ping, true, std::string(126, 'a')).data(), 2);
  CHECK(f.failed_with(close_code::protocol_error));
}

TEST_CASE("parser: a continuation frame without a message is 1002") {
  check_error(client_frame(opcode::continuation, true, "lo"), close_code::protocol_error);
  check_error(client_frame(opcode::continuation, false, "lo"), close_code::protocol_error);
  // After a message that ended.
  check_error(cat({client_frame(opcode::text, true, "Hel"), client_frame(opcode::continuation, true, "lo")}),
              close_code::protocol_error);
  check_error(cat({client_frame(opcode::text, false, "Hel"), client_frame(opcode::continuation, true, "lo"),
                   client_frame(opcode::continuation, true, "!")}),
              close_code::protocol_error);
}

TEST_CASE("parser: a new data message while a fragmented one is open is 1002") {
  check_error(cat({client_frame(opcode::text, false, "Hel"), client_frame(opcode::text, true, "lo")}),
              close_code::protocol_error);
  check_error(cat({client_frame(opcode::binary, false, "Hel"), client_frame(opcode::binary, false, "lo")}),
              close_code::protocol_error);
  check_error(cat({client_frame(opcode::text, false, "Hel"), client_frame(opcode::ping, true, ""),
                   client_frame(opcode::binary, true, "lo")}),
              close_code::protocol_error);
}

TEST_CASE("parser: length encodings that are not the shortest are 1002") {
  const std::uint8_t k[4] = {0x37, 0xfa, 0x21, 0x3d};
  auto frame16 = [&](std::uint16_t len) {
    bytes f = {0x82, 0xFE, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
    f.insert(f.end(), k, k + 4);
    f.insert(f.end(), len, 0);
    return f;
  };
  auto frame64 = [&](std::uint64_t len, std::size_t payload) {
    bytes f = {0x82, 0xFF};
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
    f.insert(f.end(), k, k + 4);
    f.insert(f.end(), payload, 0);
    return f;
  };
  for (std::uint16_t len : {0, 1, 125}) {
    CAPTURE(len);
    check_error(frame16(len), close_code::protocol_error);
  }
  for (std::uint64_t len : {0ull, 125ull, 126ull, 65535ull}) {
    CAPTURE(len);
    check_error(frame64(len, len), close_code::protocol_error, role::server, 1 << 20);
  }
  // The shortest forms are accepted.
  // (The wire payload is zeros, so the unmasked payload is the key repeated.)
  auto key_repeated = [&](std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(k[i % 4]);
    return s;
  };
  CHECK(parse_at_once(frame16(126)) == std::vector<ev>{binary(key_repeated(126))});
  CHECK(parse_at_once(frame16(65535), role::server, 1 << 20) == std::vector<ev>{binary(key_repeated(65535))});
  CHECK(parse_at_once(frame64(65536, 65536), role::server, 1 << 20) == std::vector<ev>{binary(key_repeated(65536))});
}

TEST_CASE("parser: a 64-bit length with the top bit set is 1002") {
  bytes f = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x37, 0xfa, 0x21, 0x3d};
  check_error(f, close_code::protocol_error, role::server, std::size_t(-1));
  f[2] = 0xFF;
  check_error(f, close_code::protocol_error, role::server, std::size_t(-1));
  // Without the top bit, a huge length is just too big (1009), not a protocol error.
  f[2] = 0x7F;
  check_error(f, close_code::message_too_big);
}

// ---------------------------------------------------------------------------------------
// Control frames between fragments, close frames

TEST_CASE("parser: ping and pong between the fragments of a message") {
  const bytes stream = cat({client_frame(opcode::text, false, "Hel", key_of(1, 2, 3, 4)),
                            client_frame(opcode::ping, true, "p1", key_of(5, 6, 7, 8)),
                            client_frame(opcode::continuation, false, "lo", key_of(9, 10, 11, 12)),
                            client_frame(opcode::pong, true, "p2", key_of(13, 14, 15, 16)),
                            client_frame(opcode::ping, true, "", key_of(17, 18, 19, 20)),
                            client_frame(opcode::continuation, true, "!", key_of(21, 22, 23, 24))});
  check_all_ways(stream, {ping("p1"), pong("p2"), ping(""), text("Hello!")});
  // A close in the middle of a message is reported too.
  check_all_ways(cat({client_frame(opcode::binary, false, "ab"), client_frame(opcode::close, true, close_payload(1001))}),
                 {closed(1001)});
}

TEST_CASE("parser: in_message() while a fragmented message is open") {
  feeder f;
  CHECK_FALSE(f.p.in_message());
  f.feed(client_frame(opcode::text, false, "Hel"));
  CHECK(f.p.in_message());
  f.feed(client_frame(opcode::ping, true, "x"));
  CHECK(f.p.in_message());
  f.feed(client_frame(opcode::continuation, true, "lo"));
  CHECK_FALSE(f.p.in_message());
  CHECK(f.events == std::vector<ev>{ping("x"), text("Hello")});
}

TEST_CASE("parser: close frames") {
  SUBCASE("empty: code 1005, no reason") {
    check_all_ways(client_frame(opcode::close, true, ""), {closed(close_code::no_status)});
  }
  SUBCASE("a code alone") {
    check_all_ways(client_frame(opcode::close, true, close_payload(1000)), {closed(1000)});
  }
  SUBCASE("code and reason") {
    check_all_ways(client_frame(opcode::close, true, close_payload(1001, "going away")), {closed(1001, "going away")});
    check_all_ways(client_frame(opcode::close, true, close_payload(4999, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")),
                   {closed(4999, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")});
    const std::string longest(123, 'r');
    check_all_ways(client_frame(opcode::close, true, close_payload(3000, longest)), {closed(3000, longest)});
  }
  SUBCASE("a one-byte payload is 1002") {
    check_error(client_frame(opcode::close, true, std::string(1, '\x03')), close_code::protocol_error);
    // Even when the byte after the frame would make a valid code (0x03 0xE8 = 1000).
    bytes f = client_frame(opcode::close, true, std::string(1, '\x03'));
    f.push_back(0xE8);
    check_error(f, close_code::protocol_error);
  }
  SUBCASE("invalid codes are 1002") {
    for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
      CAPTURE(code);
      check_error(client_frame(opcode::close, true, close_payload(code)), close_code::protocol_error);
      check_error(client_frame(opcode::close, true, close_payload(code, "why")), close_code::protocol_error);
    }
  }
  SUBCASE("valid codes are reported") {
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
      CAPTURE(code);
      check_all_ways(client_frame(opcode::close, true, close_payload(code, "r")), {closed(code, "r")});
    }
  }
  SUBCASE("a reason that is not UTF-8 is 1007") {
    check_error(client_frame(opcode::close, true, close_payload(1000, "bad \xFF")), close_code::invalid_payload);
    check_error(client_frame(opcode::close, true, close_payload(1000, "cut \xE2\x82")), close_code::invalid_payload);
    check_error(client_frame(opcode::close, true, close_payload(1000, "\xED\xA0\x80")), close_code::invalid_payload);
  }
  SUBCASE("client role, unmasked") {
    check_all_ways(server_frame(opcode::close, true, close_payload(1000, "bye")), {closed(1000, "bye")}, role::client);
  }
}

// ---------------------------------------------------------------------------------------
// UTF-8

TEST_CASE("parser: invalid UTF-8 in a one-frame text message is 1007") {
  check_error(client_frame(opcode::text, true, "abc\xFF"), close_code::invalid_payload);
  check_error(client_frame(opcode::text, true, "\xC0\x80"), close_code::invalid_payload);
  check_error(client_frame(opcode::text, true, "\xED\xA0\x80"), close_code::invalid_payload);
  check_error(client_frame(opcode::text, true, "\xF4\x90\x80\x80"), close_code::invalid_payload);
  check_error(server_frame(opcode::text, true, "\xCE\xBA\xFF"), close_code::invalid_payload, role::client);
  // Ending inside a sequence.
  check_error(client_frame(opcode::text, true, "ends in \xE2\x82"), close_code::invalid_payload);
}

TEST_CASE("parser: invalid UTF-8 in the first fragment fails before the rest arrives") {
  SUBCASE("a whole first fragment") {
    feeder f;
    f.feed(client_frame(opcode::text, false, "Hello \xF4\x90"));
    CHECK(f.failed_with(close_code::invalid_payload));
    CHECK(f.events.size() == 1);
  }
  SUBCASE("part of a one-frame message") {
    const bytes frame = client_frame(opcode::text, true, "Hello \xC0\x80 and much more text after it");
    feeder f;
    f.feed(frame.data(), 6 + 8);  // header + "Hello \xC0\x80"
    CHECK(f.failed_with(close_code::invalid_payload));
  }
  SUBCASE("the bad byte in the second fragment, message still open") {
    feeder f;
    f.feed(client_frame(opcode::text, false, "ok \xE2"));
    CHECK(f.events.empty());
    f.feed(client_frame(opcode::continuation, false, "\x82" "A"));  // E2 82 then 'A'
    CHECK(f.failed_with(close_code::invalid_payload));
  }
  SUBCASE("byte-wise, the error comes at the bad byte") {
    const bytes frame = client_frame(opcode::text, false, "abc\xF4\x90zzzzzzzz");
    feeder f;
    for (std::size_t i = 0; i < frame.size() && !f.stopped; ++i) {
      f.feed(&frame[i], 1);
      if (i < 6 + 4) CHECK_FALSE(f.p.failed());
      if (i == 6 + 4) CHECK(f.failed_with(close_code::invalid_payload));
    }
  }
}

TEST_CASE("parser: a multibyte character split across fragments is accepted") {
  const std::string s = "\xF0\x9F\x98\x80\xE2\x82\xAC\xCE\xBA";
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    CAPTURE(cut);
    check_all_ways(cat({client_frame(opcode::text, false, s.substr(0, cut)),
                        client_frame(opcode::continuation, true, s.substr(cut))}),
                   {text(s)});
  }
  // Across three fragments with a ping between: F0 | 9F 98 | 80
  check_all_ways(cat({client_frame(opcode::text, false, "\xF0"), client_frame(opcode::continuation, false, "\x9F\x98"),
                      client_frame(opcode::ping, true, "mid"), client_frame(opcode::continuation, true, "\x80")}),
                 {ping("mid"), text("\xF0\x9F\x98\x80")});
}

TEST_CASE("parser: a fragmented text message that ends inside a sequence is 1007") {
  check_error(cat({client_frame(opcode::text, false, "abc"), client_frame(opcode::continuation, true, "\xF0\x9F\x98")}),
              close_code::invalid_payload);
  check_error(cat({client_frame(opcode::text, false, "\xE2\x82"), client_frame(opcode::continuation, true, "")}),
              close_code::invalid_payload);
}

TEST_CASE("parser: a text message after one that failed nothing carries no UTF-8 state") {
  // A binary message that ends mid-sequence does not leak into the next text message.
  check_all_ways(cat({client_frame(opcode::binary, false, "\xE2"), client_frame(opcode::continuation, true, "\x82"),
                      client_frame(opcode::text, true, "fine")}),
                 {binary("\xE2\x82"), text("fine")});
  check_all_ways(cat({client_frame(opcode::text, false, "\xE2\x82"), client_frame(opcode::continuation, true, "\xAC"),
                      client_frame(opcode::text, false, "\xCE"), client_frame(opcode::continuation, true, "\xBA")}),
                 {text("\xE2\x82\xAC"), text("\xCE\xBA")});
}

TEST_CASE("parser: binary messages are not UTF-8 checked") {
  const std::string junk = "\xFF\xFE\xC0\x80\xED\xA0\x80\xF4\x90\x80\x80\xE2";
  check_all_ways(client_frame(opcode::binary, true, junk), {binary(junk)});
  check_all_ways(cat({client_frame(opcode::binary, false, junk), client_frame(opcode::continuation, true, junk)}),
                 {binary(junk + junk)});
  // Nor are ping and pong payloads.
  check_all_ways(client_frame(opcode::ping, true, junk), {ping(junk)});
  check_all_ways(client_frame(opcode::pong, true, junk), {pong(junk)});
}

// ---------------------------------------------------------------------------------------
// Incremental input and the stay-failed contract

TEST_CASE("parser: an incomplete header consumes nothing") {
  const bytes frame = client_frame(opcode::binary, true, std::string(300, 'z'));  // 8-byte header
  for (std::size_t n = 0; n < 8; ++n) {
    CAPTURE(n);
    bytes copy(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
    parser p;
    const auto r = p.next(copy.data(), copy.size());
    CHECK(r.ev.kind == event_kind::need_more);
    CHECK(r.consumed == 0);
  }
  // A control frame waits until it is whole, consuming nothing before.
  const bytes pf = client_frame(opcode::ping, true, "0123456789");
  for (std::size_t n = 0; n < pf.size(); ++n) {
    CAPTURE(n);
    bytes copy(pf.begin(), pf.begin() + static_cast<std::ptrdiff_t>(n));
    parser p;
    const auto r = p.next(copy.data(), copy.size());
    CHECK(r.ev.kind == event_kind::need_more);
    CHECK(r.consumed == 0);
  }
}

TEST_CASE("parser: after an error the parser stays failed") {
  parser p;
  bytes bad = server_frame(opcode::text, true, "unmasked");
  const auto r1 = p.next(bad.data(), bad.size());
  CHECK(r1.ev.kind == event_kind::error);
  CHECK(r1.ev.code == close_code::protocol_error);
  CHECK(p.failed());
  bytes good = client_frame(opcode::text, true, "fine");
  for (int i = 0; i < 3; ++i) {
    const auto r = p.next(good.data(), good.size());
    CHECK(r.ev.kind == event_kind::error);
    CHECK(r.ev.code == close_code::protocol_error);
    CHECK(r.ev.reason == r1.ev.reason);
    CHECK(r.consumed == 0);
  }
  CHECK(good == client_frame(opcode::text, true, "fine"));  // and it did not touch the bytes
  // Same for a 1007 found in a close reason.
  parser q;
  bytes c = client_frame(opcode::close, true, close_payload(1000, "\xFF"));
  CHECK(q.next(c.data(), c.size()).ev.code == close_code::invalid_payload);
  CHECK(q.next(good.data(), good.size()).ev.code == close_code::invalid_payload);
}

TEST_CASE("parser: a large assembled message's buffer is given back after the next call") {
  feeder f(role::server, 1 << 20);
  f.feed(client_frame(opcode::binary, false, pattern(100000)));
  CHECK(f.p.buffered() >= 100000);
  // The feeder calls next() again after the message event, which gives the buffer back.
  f.feed(client_frame(opcode::continuation, true, pattern(100000, 3)));
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0] == binary(pattern(100000) + pattern(100000, 3)));
  CHECK(f.p.buffered() <= 4096);
  // Called by hand: the payload view stays valid until the next call, then the memory goes.
  parser p(role::server, parser_limits{1 << 20});
  bytes a = client_frame(opcode::binary, false, pattern(50000));
  bytes b = client_frame(opcode::continuation, true, pattern(50000, 9));
  CHECK(p.next(a.data(), a.size()).ev.kind == event_kind::need_more);
  const auto r = p.next(b.data(), b.size());
  REQUIRE(r.ev.kind == event_kind::message);
  CHECK(r.ev.payload == pattern(50000) + pattern(50000, 9));
  CHECK(p.buffered() >= 100000);
  bytes empty;
  CHECK(p.next(empty.data(), 0).ev.kind == event_kind::need_more);
  CHECK(p.buffered() <= 4096);
}

TEST_CASE("parser: one stream, any chunking, the same events") {
  std::vector<bytes> frames;
  std::vector<ev> expected;
  std::uint32_t k = 0x9E3779B9u;
  auto key = [&] { return k = k * 1664525u + 1013904223u; };
  auto add = [&](bytes f) { frames.push_back(std::move(f)); };

  add(client_frame(opcode::text, true, "Hello", key()));
  expected.push_back(text("Hello"));
  add(client_frame(opcode::text, true, "", key()));
  expected.push_back(text(""));
  add(client_frame(opcode::binary, true, pattern(126), key()));
  expected.push_back(binary(pattern(126)));
  add(client_frame(opcode::ping, true, std::string(125, 'P'), key()));
  expected.push_back(ping(std::string(125, 'P')));
  // A fragmented text message with pings between and a character split over fragments.
  add(client_frame(opcode::text, false, "caf\xC3", key()));
  add(client_frame(opcode::ping, true, "in between", key()));
  add(client_frame(opcode::continuation, false, "", key()));
  add(client_frame(opcode::continuation, false, "\xA9 \xE2\x82", key()));
  add(client_frame(opcode::pong, true, "", key()));
  add(client_frame(opcode::continuation, true, "\xAC \xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", key()));
  expected.push_back(ping("in between"));
  expected.push_back(pong(""));
  expected.push_back(text("caf\xC3\xA9 \xE2\x82\xAC \xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));
  // A large binary message (64-bit length) and a fragmented one with a 16-bit fragment.
  add(client_frame(opcode::binary, true, pattern(70000, 5), key()));
  expected.push_back(binary(pattern(70000, 5)));
  add(client_frame(opcode::binary, false, pattern(300, 6), key()));
  add(client_frame(opcode::continuation, false, pattern(1, 7), key()));
  add(client_frame(opcode::continuation, true, pattern(5000, 8), key()));
  expected.push_back(binary(pattern(300, 6) + pattern(1, 7) + pattern(5000, 8)));
  for (int i = 0; i < 20; ++i) {
    const std::string s = "message " + std::to_string(i) + std::string(static_cast<std::size_t>(i) * 13, 'x');
    add(client_frame(opcode::text, true, s, key()));
    expected.push_back(text(s));
    if (i % 4 == 0) {
      add(client_frame(opcode::pong, true, std::to_string(i), key()));
      expected.push_back(pong(std::to_string(i)));
    }
  }
  add(client_frame(opcode::close, true, close_payload(1000, "done \xE2\x9C\x93"), key()));
  expected.push_back(closed(1000, "done \xE2\x9C\x93"));

  bytes stream;
  for (const auto& f : frames) stream.insert(stream.end(), f.begin(), f.end());

  const std::size_t limit = 1 << 20;
  const auto at_once = parse_at_once(stream, role::server, limit);
  CHECK(at_once == expected);
  CHECK(parse_bytewise(stream, role::server, limit) == expected);
  for (unsigned seed = 1; seed <= 25; ++seed) {
    CAPTURE(seed);
    const std::size_t max_chunk = seed % 3 == 0 ? 7 : seed % 3 == 1 ? 200 : 20000;
    CHECK(parse_chunked(stream, seed, max_chunk, role::server, limit) == expected);
  }
  // Frame by frame.
  feeder f(role::server, limit);
  for (const auto& fr : frames) f.feed(fr);
  CHECK(f.events == expected);

  // The same messages as a client reads them (unmasked).
  bytes unmasked;
  for (const auto& fr : frames) {
    bytes copy = fr;
    const std::size_t len7 = copy[1] & 0x7F;
    const std::size_t hdr = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    std::uint32_t fk;
    std::memcpy(&fk, copy.data() + hdr, 4);
    apply_mask(copy.data() + hdr + 4, copy.size() - hdr - 4, fk);
    copy[1] &= 0x7F;
    copy.erase(copy.begin() + static_cast<std::ptrdiff_t>(hdr), copy.begin() + static_cast<std::ptrdiff_t>(hdr + 4));
    unmasked.insert(unmasked.end(), copy.begin(), copy.end());
  }
  CHECK(parse_at_once(unmasked, role::client, limit) == expected);
  CHECK(parse_bytewise(unmasked, role::client, limit) == expected);
  for (unsigned seed = 1; seed <= 5; ++seed) CHECK(parse_chunked(unmasked, seed, 300, role::client, limit) == expected);
}

TEST_CASE("parser: a stream that ends in an error gives the same events in any chunking") {
  const bytes stream = cat({client_frame(opcode::text, true, "one"), client_frame(opcode::ping, true, "p"),
                            client_frame(opcode::binary, false, pattern(500)),
                            client_frame(opcode::continuation, true, pattern(10)),
                            client_frame(opcode::text, false, "two \xCE"),
                            client_frame(opcode::continuation, false, "\xBA and then \xC1"),
                            client_frame(opcode::continuation, true, "never seen")});
  const auto at_once = parse_at_once(stream);
  REQUIRE(at_once.size() == 4);
  CHECK(at_once[0] == text("one"));
  CHECK(at_once[1] == ping("p"));
  CHECK(at_once[2] == binary(pattern(500) + pattern(10)));
  CHECK(at_once[3].kind == event_kind::error);
  CHECK(at_once[3].code == close_code::invalid_payload);
  CHECK(parse_bytewise(stream) == at_once);
  for (unsigned seed = 1; seed <= 10; ++seed) CHECK(parse_chunked(stream, seed, 50) == at_once);
}

// ---------------------------------------------------------------------------------------
// permessage-deflate (RFC 7692 section 6): RSV1 marks a compressed message

namespace {

bytes with_rsv(bytes frame, std::uint8_t bits) {
  frame[0] |= bits;
  return frame;
}

ev compressed(ev e) {
  e.compressed = true;
  return e;
}

// "Hello" compressed (RFC 7692 section 7.2.3.1): not UTF-8.
const std::string deflated_hello("\xf2\x48\xcd\xc9\xc9\x07\x00", 7);

}  // namespace

TEST_CASE("parser: with compression, RSV1 on a message's first frame marks it compressed") {
  const bool on = true;
  check_all_ways(with_rsv(client_frame(opcode::text, true, deflated_hello), 0x40), {compressed(text(deflated_hello))},
                 role::server, 64 * 1024, on);
  check_all_ways(with_rsv(client_frame(opcode::binary, true, deflated_hello), 0x40),
                 {compressed(binary(deflated_hello))}, role::server, 64 * 1024, on);
  // Fragmented: RSV1 on the first frame only, a ping between the fragments.
  const bytes fragmented = cat({with_rsv(client_frame(opcode::text, false, deflated_hello.substr(0, 2)), 0x40),
                                client_frame(opcode::ping, true, "p"),
                                client_frame(opcode::continuation, false, deflated_hello.substr(2, 3)),
                                client_frame(opcode::continuation, true, deflated_hello.substr(5))});
  check_all_ways(fragmented, {ping("p"), compressed(text(deflated_hello))}, role::server, 64 * 1024, on);
  // The next message is not compressed unless it says so, and its text is checked again.
  const bytes then_plain = cat({with_rsv(client_frame(opcode::text, true, deflated_hello), 0x40),
                                client_frame(opcode::text, true, "plain"), client_frame(opcode::binary, true, "\xff")});
  check_all_ways(then_plain, {compressed(text(deflated_hello)), text("plain"), binary("\xff")}, role::server, 64 * 1024,
                 on);
  check_error(cat({with_rsv(client_frame(opcode::text, true, deflated_hello), 0x40),
                   client_frame(opcode::text, true, deflated_hello)}),
              close_code::invalid_payload, role::server, 64 * 1024, on);
  // The client role reads compressed messages from a server just the same.
  check_all_ways(with_rsv(server_frame(opcode::text, true, deflated_hello), 0x40), {compressed(text(deflated_hello))},
                 role::client, 64 * 1024, on);
  check_all_ways(cat({with_rsv(server_frame(opcode::binary, false, "ab"), 0x40), server_frame(opcode::continuation, true, "cd")}),
                 {compressed(binary("abcd"))}, role::client, 64 * 1024, on);
}

TEST_CASE("parser: with compression, RSV1 anywhere else, RSV2 and RSV3 are still 1002") {
  const bool on = true;
  // On a continuation frame, after a compressed or a plain first frame.
  for (std::uint8_t first_rsv : {std::uint8_t(0x40), std::uint8_t(0)}) {
    CAPTURE(int(first_rsv));
    check_error(cat({with_rsv(client_frame(opcode::text, false, "a"), first_rsv),
                     with_rsv(client_frame(opcode::continuation, true, "b"), 0x40)}),
                close_code::protocol_error, role::server, 64 * 1024, on);
  }
  // On control frames.
  for (opcode op : {opcode::ping, opcode::pong, opcode::close}) {
    CAPTURE(int(op));
    check_error(with_rsv(client_frame(op, true, ""), 0x40), close_code::protocol_error, role::server, 64 * 1024, on);
  }
  // RSV2 and RSV3, alone or with RSV1.
  for (std::uint8_t rsv : {0x20, 0x10, 0x60, 0x50, 0x70}) {
    CAPTURE(int(rsv));
    check_error(with_rsv(client_frame(opcode::text, true, "x"), rsv), close_code::protocol_error, role::server, 64 * 1024, on);
    check_error(with_rsv(client_frame(opcode::binary, true, "x"), rsv), close_code::protocol_error, role::server, 64 * 1024,
                on);
  }
  // On an unknown opcode it is the opcode that is wrong, 1002 either way.
  bytes unknown = with_rsv(client_frame(opcode::binary, true, "x"), 0x40);
  unknown[0] = static_cast<std::uint8_t>((unknown[0] & 0xF0) | 0x3);
  check_error(unknown, close_code::protocol_error, role::server, 64 * 1024, on);
}

TEST_CASE("parser: compression can be turned on, and off again") {
  parser p;
  CHECK_FALSE(p.compression_enabled());
  p.enable_compression();
  CHECK(p.compression_enabled());
  p.enable_compression(false);
  CHECK_FALSE(p.compression_enabled());
  // Off: RSV1 is 1002 as before.
  check_error(with_rsv(client_frame(opcode::text, true, deflated_hello), 0x40), close_code::protocol_error);
}

TEST_CASE("parser: a compressed message's received bytes count against max_message_size") {
  const bool on = true;
  const std::string body = pattern(1000);
  const bytes one = with_rsv(client_frame(opcode::binary, true, body), 0x40);
  check_all_ways(one, {compressed(binary(body))}, role::server, 1000, on);
  check_error(one, close_code::message_too_big, role::server, 999, on);
  const bytes two = cat({with_rsv(client_frame(opcode::text, false, body.substr(0, 600)), 0x40),
                         client_frame(opcode::continuation, true, body.substr(600))});
  check_all_ways(two, {compressed(text(body))}, role::server, 1000, on);
  check_error(two, close_code::message_too_big, role::server, 999, on);
}
