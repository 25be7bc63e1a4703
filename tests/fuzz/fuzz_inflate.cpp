// libFuzzer target: permessage-deflate's inflate path (herald/deflate.hpp) on hostile bodies.
//
// Input layout: byte 0 picks the limit (low 2 bits: 0, 100, 4096 or 65536 bytes), the
// inflater (bit 2: the per-thread one for peers without context takeover, or a session
// inflater that keeps its context) and the session inflater's window (bits 3-5: 8 to 15);
// byte 1 is the length of a first message (0: the rest is one message), the rest the second.
// Checked for every message:
//   - the result is ok, too_big or corrupt (never failed), and the limit holds: ok gives at
//     most the limit, too_big stops after at most limit + 1 bytes in a buffer that never grew
//     past twice that (a zip bomb costs the limit, not its inflated size);
//   - the per-thread inflater, and a session inflater with a 15-bit window, agree with plain
//     zlib run once over the same body plus the 00 00 FF FF tail (a fresh stream, or for the
//     session one kept across its messages): the same bytes when both succeed, too_big exactly
//     when zlib produces more than the limit, corrupt on zlib's data errors and on bodies that
//     end inside a block;
//   - the rest of the input, taken as a payload, survives herald's compressor and inflater,
//     and one byte less of limit makes it too_big.
#include <herald/deflate.hpp>

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace {

using herald::inflate_status;

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

const herald::deflate_support& support() {
  static const auto s = herald::make_deflate_support();
  return *s;
}

void check_bounds(inflate_status st, const std::string& out, std::size_t limit) {
  FUZZ_CHECK(st == inflate_status::ok || st == inflate_status::too_big || st == inflate_status::corrupt);
  if (st == inflate_status::ok) FUZZ_CHECK(out.size() <= limit);
  if (st == inflate_status::too_big) FUZZ_CHECK(out.size() <= limit + 1);
  FUZZ_CHECK(out.capacity() <= 2 * (limit + 1) + 256);
}

// Plain zlib, one call over body + tail into a buffer of limit + 1 bytes: what the message
// should give. `ended`: the stream reached a final block (zlib takes nothing more after it).
enum class verdict { ok, too_big, corrupt };
struct reference {
  z_stream z{};
  reference() { FUZZ_CHECK(inflateInit2(&z, -15) == Z_OK); }
  ~reference() { inflateEnd(&z); }
  reference(const reference&) = delete;
  reference& operator=(const reference&) = delete;

  verdict run(std::string_view body, std::size_t limit, std::string& out, bool& ended) {
    ended = false;
    out.clear();
    if (body.empty()) return verdict::ok;  // herald reads no bytes at all as the empty message
    std::string in(body);
    in.append("\x00\x00\xFF\xFF", 4);
    out.assign(limit + 1, '\0');
    z.next_in = reinterpret_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int r = inflate(&z, Z_SYNC_FLUSH);
    out.resize(out.size() - z.avail_out);
    if (out.size() > limit) return verdict::too_big;
    if (r == Z_STREAM_END) {
      ended = true;
      return verdict::ok;
    }
    if (r != Z_OK && r != Z_BUF_ERROR) return verdict::corrupt;
    FUZZ_CHECK(z.avail_in == 0);  // output room was left, so zlib read everything
    return (z.data_type & 128) != 0 ? verdict::ok : verdict::corrupt;
  }
};

void check_against(inflate_status st, const std::string& out, verdict v, const std::string& expected) {
  switch (v) {
    case verdict::ok:
      FUZZ_CHECK(st == inflate_status::ok);
      FUZZ_CHECK(out == expected);
      break;
    case verdict::too_big:
      FUZZ_CHECK(st == inflate_status::too_big);
      break;
    case verdict::corrupt:
      FUZZ_CHECK(st == inflate_status::corrupt);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::size_t limits[4] = {0, 100, 4096, 65536};
  const std::size_t limit = limits[data[0] & 3];
  const bool session = (data[0] & 4) != 0;
  const auto window = static_cast<std::uint8_t>(8 + ((data[0] >> 3) & 7));
  const std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t first = data[1] < rest.size() ? data[1] : 0;
  const std::string_view messages[2] = {rest.substr(0, first ? first : rest.size()), rest.substr(first ? first : rest.size())};

  std::unique_ptr<herald::deflate_inflater> inflater;
  if (session) inflater = support().make_inflater(window);
  reference session_ref;  // one stream across the session's messages
  bool compare_session = session && window == 15;
  for (std::size_t i = 0; i < (first ? 2u : 1u); ++i) {
    const std::string_view body = messages[i];
    std::string out, expected;
    bool ended = false;
    if (session) {
      const auto st = inflater->inflate(body, limit, out);
      check_bounds(st, out, limit);
      if (compare_session) {
        check_against(st, out, session_ref.run(body, limit, expected, ended), expected);
        compare_session = !ended;  // herald carries the window over a final block, zlib stops
      }
      if (st != inflate_status::ok) break;  // a session closes here
    } else {
      const auto st = support().inflate(body, limit, out);
      check_bounds(st, out, limit);
      reference fresh;
      check_against(st, out, fresh.run(body, limit, expected, ended), expected);
    }
  }

  // Round trip of the input as a payload.
  std::string body, out;
  FUZZ_CHECK(support().compress(rest, body));
  FUZZ_CHECK(support().inflate(body, rest.size(), out) == inflate_status::ok);
  FUZZ_CHECK(out == rest);
  if (!rest.empty()) FUZZ_CHECK(support().inflate(body, rest.size() - 1, out) == inflate_status::too_big);
  return 0;
}
