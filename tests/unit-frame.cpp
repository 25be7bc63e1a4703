// Frame headers, masking and close codes (RFC 6455 sections 5.2, 5.3, 7.4).
#include <doctest/doctest.h>

#include "codec_support.hpp"

#include <herald/websocket/frame.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using namespace herald::ws;
using herald_test::bytes;
using herald_test::key_of;

bytes header(opcode op, bool fin, std::uint64_t size, bool masked = false, std::uint32_t key = 0) {
  std::uint8_t buf[max_frame_header_size + 4];
  std::memset(buf, 0xEE, sizeof buf);
  const std::size_t n = write_frame_header(buf, op, fin, size, masked, key);
  CHECK(n <= max_frame_header_size);
  CHECK(n == frame_header_size(size, masked));
  for (std::size_t i = n; i < sizeof buf; ++i) CHECK(buf[i] == 0xEE);  // nothing written past the header
  return bytes(buf, buf + n);
}

void reference_mask(std::uint8_t* data, std::size_t size, const std::uint8_t (&k)[4], std::size_t offset) {
  for (std::size_t i = 0; i < size; ++i) data[i] ^= k[(offset + i) % 4];
}

}  // namespace

TEST_CASE("frame: opcode classes") {
  CHECK_FALSE(is_control(opcode::continuation));
  CHECK_FALSE(is_control(opcode::text));
  CHECK_FALSE(is_control(opcode::binary));
  CHECK(is_control(opcode::close));
  CHECK(is_control(opcode::ping));
  CHECK(is_control(opcode::pong));
  for (int op = 0; op < 16; ++op) {
    CAPTURE(op);
    const bool known = op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
    CHECK(is_known_opcode(static_cast<std::uint8_t>(op)) == known);
  }
  CHECK(static_cast<int>(opcode::text) == 1);
  CHECK(static_cast<int>(opcode::binary) == 2);
  CHECK(static_cast<int>(opcode::close) == 8);
  CHECK(static_cast<int>(opcode::ping) == 9);
  CHECK(static_cast<int>(opcode::pong) == 10);
}

TEST_CASE("frame: write_frame_header, unmasked, every length form") {
  CHECK(header(opcode::text, true, 0) == bytes{0x81, 0x00});
  CHECK(header(opcode::text, true, 5) == bytes{0x81, 0x05});
  CHECK(header(opcode::binary, true, 125) == bytes{0x82, 0x7D});
  CHECK(header(opcode::binary, true, 126) == bytes{0x82, 0x7E, 0x00, 0x7E});
  CHECK(header(opcode::binary, true, 256) == bytes{0x82, 0x7E, 0x01, 0x00});
  CHECK(header(opcode::binary, true, 65535) == bytes{0x82, 0x7E, 0xFF, 0xFF});
  CHECK(header(opcode::binary, true, 65536) == bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00});
  CHECK(header(opcode::binary, true, 0x0102030405060708ull) == bytes{0x82, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(header(opcode::binary, true, 0x7FFFFFFFFFFFFFFFull) ==
        bytes{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
}

TEST_CASE("frame: write_frame_header, FIN and opcode") {
  CHECK(header(opcode::text, false, 3) == bytes{0x01, 0x03});
  CHECK(header(opcode::continuation, false, 3) == bytes{0x00, 0x03});
  CHECK(header(opcode::continuation, true, 3) == bytes{0x80, 0x03});
  CHECK(header(opcode::close, true, 2) == bytes{0x88, 0x02});
  CHECK(header(opcode::ping, true, 0) == bytes{0x89, 0x00});
  CHECK(header(opcode::pong, true, 125) == bytes{0x8A, 0x7D});
}

TEST_CASE("frame: write_frame_header, masked, every length form") {
  const std::uint32_t key = key_of(0x37, 0xFA, 0x21, 0x3D);
  CHECK(header(opcode::text, true, 0, true, key) == bytes{0x81, 0x80, 0x37, 0xFA, 0x21, 0x3D});
  CHECK(header(opcode::text, true, 5, true, key) == bytes{0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D});
  CHECK(header(opcode::text, true, 125, true, key) == bytes{0x81, 0xFD, 0x37, 0xFA, 0x21, 0x3D});
  CHECK(header(opcode::text, true, 126, true, key) == bytes{0x81, 0xFE, 0x00, 0x7E, 0x37, 0xFA, 0x21, 0x3D});
  CHECK(header(opcode::text, true, 65535, true, key) == bytes{0x81, 0xFE, 0xFF, 0xFF, 0x37, 0xFA, 0x21, 0x3D});
  CHECK(header(opcode::text, true, 65536, true, key) ==
        bytes{0x81, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x37, 0xFA, 0x21, 0x3D});
  // The mask argument is ignored when masked is false.
  CHECK(header(opcode::text, true, 5, false, key) == bytes{0x81, 0x05});
  // A zero key is still written when masked.
  CHECK(header(opcode::binary, true, 1, true, 0) == bytes{0x82, 0x81, 0, 0, 0, 0});
}

TEST_CASE("frame: frame_header_size") {
  CHECK(frame_header_size(0, false) == 2);
  CHECK(frame_header_size(125, false) == 2);
  CHECK(frame_header_size(126, false) == 4);
  CHECK(frame_header_size(65535, false) == 4);
  CHECK(frame_header_size(65536, false) == 10);
  CHECK(frame_header_size(0, true) == 6);
  CHECK(frame_header_size(125, true) == 6);
  CHECK(frame_header_size(126, true) == 8);
  CHECK(frame_header_size(65535, true) == 8);
  CHECK(frame_header_size(65536, true) == 14);
  CHECK(max_frame_header_size == 14);
}

TEST_CASE("frame: RFC 6455 section 5.7 masked \"Hello\"") {
  std::uint8_t payload[] = {'H', 'e', 'l', 'l', 'o'};
  apply_mask(payload, 5, key_of(0x37, 0xFA, 0x21, 0x3D));
  const std::uint8_t expected[] = {0x7F, 0x9F, 0x4D, 0x51, 0x58};
  CHECK(std::memcmp(payload, expected, 5) == 0);
}

TEST_CASE("frame: apply_mask matches a byte-at-a-time reference, sizes 0..40, offsets 0..7") {
  const std::uint8_t k[4] = {0x12, 0xA5, 0x5A, 0xF0};
  const std::uint32_t key = key_of(k[0], k[1], k[2], k[3]);
  for (std::size_t misalign = 0; misalign < 8; misalign += 3) {  // data not 8-byte aligned either
    for (std::size_t size = 0; size <= 40; ++size) {
      for (std::size_t offset = 0; offset < 8; ++offset) {
        CAPTURE(misalign);
        CAPTURE(size);
        CAPTURE(offset);
        alignas(8) std::uint8_t buf[64];
        for (std::size_t i = 0; i < sizeof buf; ++i) buf[i] = static_cast<std::uint8_t>(i * 31 + 7);
        std::uint8_t expected[64];
        std::memcpy(expected, buf, sizeof buf);
        reference_mask(expected + misalign, size, k, offset);
        apply_mask(buf + misalign, size, key, offset);
        CHECK(std::memcmp(buf, expected, sizeof buf) == 0);  // also: nothing outside [misalign, misalign+size) moved
        // Masking twice restores the original.
        apply_mask(buf + misalign, size, key, offset);
        bool restored = true;
        for (std::size_t i = 0; i < sizeof buf; ++i) restored = restored && buf[i] == static_cast<std::uint8_t>(i * 31 + 7);
        CHECK(restored);
      }
    }
  }
}

TEST_CASE("frame: apply_mask in pieces equals apply_mask at once") {
  const std::uint32_t key = key_of(0xDE, 0xAD, 0xBE, 0xEF);
  std::uint8_t whole[50], pieces[50];
  for (std::size_t i = 0; i < 50; ++i) whole[i] = pieces[i] = static_cast<std::uint8_t>(i);
  apply_mask(whole, 50, key);
  for (std::size_t a = 0; a <= 50; ++a) {
    for (std::size_t b = a; b <= 50; ++b) {
      for (std::size_t i = 0; i < 50; ++i) pieces[i] = static_cast<std::uint8_t>(i);
      apply_mask(pieces, a, key, 0);
      apply_mask(pieces + a, b - a, key, a);
      apply_mask(pieces + b, 50 - b, key, b);
      if (std::memcmp(whole, pieces, 50) != 0) FAIL("split at " << a << "," << b << " differs");
    }
  }
  // An offset is taken modulo 4: the key phase after 1'000'001 bytes equals after 1 byte.
  std::uint8_t x[9] = {}, y[9] = {};
  apply_mask(x, 9, key, 1000001);
  apply_mask(y, 9, key, 1);
  CHECK(std::memcmp(x, y, 9) == 0);
  CHECK(x[0] == 0xAD);
  CHECK(x[3] == 0xDE);
}

TEST_CASE("frame: is_valid_close_code") {
  for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    CAPTURE(code);
    CHECK_FALSE(is_valid_close_code(code));
  }
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    CAPTURE(code);
    CHECK(is_valid_close_code(code));
  }
  // Every 16-bit value against the rule written out.
  int valid = 0;
  for (std::uint32_t c = 0; c <= 0xFFFF; ++c) {
    const bool expected = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
    if (is_valid_close_code(static_cast<std::uint16_t>(c)) != expected) FAIL("close code " << c);
    valid += expected;
  }
  CHECK(valid == 4 + 5 + 2000);
  CHECK(is_valid_close_code(close_code::normal));
  CHECK(is_valid_close_code(close_code::replaced));
  CHECK_FALSE(is_valid_close_code(close_code::no_status));
  CHECK_FALSE(is_valid_close_code(close_code::abnormal));
}
