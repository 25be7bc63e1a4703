// Small helpers shared by the codec unit tests.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

namespace herald_test {

using bytes = std::vector<std::uint8_t>;

// A masking key from its four bytes in wire order.
inline std::uint32_t key_of(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  const std::uint8_t k[4] = {a, b, c, d};
  std::uint32_t key;
  std::memcpy(&key, k, 4);
  return key;
}

}  // namespace herald_test
