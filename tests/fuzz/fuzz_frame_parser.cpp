// libFuzzer target: herald::ws::parser in both roles, fed in chunks.
//
// Input layout: byte 0 picks the chunking (low 3 bits: largest chunk; the rest seeds the
// chunk sizes), byte 1 picks max_message_size (low 2 bits) and whether permessage-deflate is
// enabled (bit 2: RSV1 may mark a compressed message); the rest is the byte stream. Every input is
// parsed three ways per role: whole, and in chunks whose sizes come from byte 0, keeping the
// unconsumed bytes and offering them again in a fresh, exactly sized buffer (as ws_session
// does, so ASan sees any read past what was given). Checked:
//   - consumed <= size, and need_more leaves at most one incomplete header or control frame;
//   - after an error the parser stays failed and consumes nothing;
//   - message payloads are at most max_message_size, control payloads at most 125 bytes,
//     text (unless compressed) and close reasons are UTF-8, close codes are valid; only with
//     compression enabled is a message ever reported compressed;
//   - chunking changes nothing: the chunked event sequence equals the whole-buffer one
//     (for an error, the code; the reason may name the same fault differently).
#include <herald/websocket/parser.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace herald::ws;

#define FUZZ_CHECK(cond)          \
  do {                            \
    if (!(cond)) __builtin_trap(); \
  } while (0)

struct recorded {
  event_kind kind;
  opcode op;
  std::string payload;
  std::uint16_t code;
  std::string reason;
  bool compressed;
};

bool same(const recorded& a, const recorded& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == event_kind::error) return a.code == b.code;
  return a.op == b.op && a.payload == b.payload && a.code == b.code && a.reason == b.reason &&
         a.compressed == b.compressed;
}

// Largest bytes need_more may leave unconsumed: an incomplete frame header (at most 14
// bytes) or a control frame waiting to be whole (2 + 4 + 125).
constexpr std::size_t max_leftover = 2 + 4 + max_control_payload;

void check_event(const event& e, std::size_t limit, bool compression) {
  if (e.kind != event_kind::message) FUZZ_CHECK(!e.compressed);
  switch (e.kind) {
    case event_kind::message:
      FUZZ_CHECK(e.payload.size() <= limit);
      FUZZ_CHECK(e.op == opcode::text || e.op == opcode::binary);
      if (!compression) FUZZ_CHECK(!e.compressed);
      if (e.op == opcode::text && !e.compressed)
        FUZZ_CHECK(herald::detail::is_valid_utf8(e.payload.data(), e.payload.size()));
      break;
    case event_kind::ping:
    case event_kind::pong:
      FUZZ_CHECK(e.payload.size() <= max_control_payload);
      break;
    case event_kind::close:
      FUZZ_CHECK(e.payload.size() <= max_control_payload);
      FUZZ_CHECK(e.code == close_code::no_status || is_valid_close_code(e.code));
      FUZZ_CHECK(herald::detail::is_valid_utf8(e.reason.data(), e.reason.size()));
      if (e.code == close_code::no_status) FUZZ_CHECK(e.reason.empty());
      break;
    case event_kind::error:
      FUZZ_CHECK(e.code == close_code::protocol_error || e.code == close_code::invalid_payload ||
                 e.code == close_code::message_too_big);
      FUZZ_CHECK(e.reason.size() > 0);
      break;
    case event_kind::need_more:
      break;
  }
}

// Copies the event out of the parser's views (which die at the next call), touching every
// byte so a view into freed or foreign memory is reported.
recorded record(const event& e) {
  return {e.kind, e.op, std::string(e.payload), e.code, std::string(e.reason), e.compressed};
}

// Parses everything in `buf` (exactly sized) with `p`; appends events to `out`. Returns the
// unconsumed bytes. Stops at the first error.
std::vector<std::uint8_t> drain(parser& p, std::unique_ptr<std::uint8_t[]> buf, std::size_t size, std::size_t limit,
                                std::vector<recorded>& out) {
  std::size_t pos = 0;
  for (;;) {
    const bool was_failed = p.failed();
    const auto r = p.next(buf.get() + pos, size - pos);
    FUZZ_CHECK(r.consumed <= size - pos);
    if (was_failed) {
      FUZZ_CHECK(r.ev.kind == event_kind::error && r.consumed == 0);
      return {};
    }
    pos += r.consumed;
    check_event(r.ev, limit, p.compression_enabled());
    if (r.ev.kind == event_kind::need_more) {
      FUZZ_CHECK(size - pos <= max_leftover);
      FUZZ_CHECK(!p.failed());
      break;
    }
    out.push_back(record(r.ev));
    if (r.ev.kind == event_kind::error) {
      FUZZ_CHECK(p.failed());
      // Stays failed, whatever it is offered next.
      std::uint8_t probe[16] = {0x81, 0x80};
      const auto again = p.next(probe, sizeof probe);
      FUZZ_CHECK(again.ev.kind == event_kind::error && again.consumed == 0 && again.ev.code == r.ev.code);
      FUZZ_CHECK(p.failed());
      return {};
    }
    // Control and data events always consume something.
    FUZZ_CHECK(r.consumed > 0);
  }
  return std::vector<std::uint8_t>(buf.get() + pos, buf.get() + size);
}

std::unique_ptr<std::uint8_t[]> exact_copy(const std::uint8_t* a, std::size_t na, const std::uint8_t* b, std::size_t nb) {
  // new[0] is a valid unique allocation, so even an empty buffer is checked by ASan.
  std::unique_ptr<std::uint8_t[]> out(new std::uint8_t[na + nb]);
  if (na) std::memcpy(out.get(), a, na);
  if (nb) std::memcpy(out.get() + na, b, nb);
  return out;
}

std::vector<recorded> parse_whole(role r, std::size_t limit, bool compression, const std::uint8_t* data, std::size_t size,
                                  bool& in_message) {
  parser p(r, parser_limits{limit});
  p.enable_compression(compression);
  std::vector<recorded> events;
  drain(p, exact_copy(data, size, nullptr, 0), size, limit, events);
  in_message = p.in_message();
  return events;
}

std::vector<recorded> parse_chunked(role r, std::size_t limit, bool compression, const std::uint8_t* data, std::size_t size,
                                    std::uint32_t seed, std::size_t max_chunk, bool& in_message) {
  parser p(r, parser_limits{limit});
  p.enable_compression(compression);
  std::vector<recorded> events;
  std::vector<std::uint8_t> pending;
  std::size_t pos = 0;
  std::uint32_t state = seed * 2654435761u + 1;
  while (pos < size && !p.failed()) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    std::size_t n = max_chunk == 0 ? size - pos : 1 + state % max_chunk;
    if (n > size - pos) n = size - pos;
    const std::size_t total = pending.size() + n;
    pending = drain(p, exact_copy(pending.data(), pending.size(), data + pos, n), total, limit, events);
    pos += n;
  }
  in_message = p.in_message();
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::size_t max_chunks[8] = {1, 2, 3, 5, 8, 17, 64, 0};  // 0: one piece
  static constexpr std::size_t limits[4] = {0, 125, 1000, 64 * 1024};
  const std::size_t max_chunk = max_chunks[data[0] & 7];
  const std::uint32_t seed = data[0] >> 3;
  const std::size_t limit = limits[data[1] & 3];
  const bool compression = (data[1] & 4) != 0;
  data += 2;
  size -= 2;

  for (role r : {role::server, role::client}) {
    bool whole_in_message = false, chunked_in_message = false;
    const auto whole = parse_whole(r, limit, compression, data, size, whole_in_message);
    const auto chunked = parse_chunked(r, limit, compression, data, size, seed, max_chunk, chunked_in_message);
    FUZZ_CHECK(whole.size() == chunked.size());
    for (std::size_t i = 0; i < whole.size(); ++i) FUZZ_CHECK(same(whole[i], chunked[i]));
    const bool failed = !whole.empty() && whole.back().kind == event_kind::error;
    if (!failed) FUZZ_CHECK(whole_in_message == chunked_in_message);
  }
  return 0;
}
