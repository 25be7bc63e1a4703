// Prints herald's Prometheus exposition with every counter and gauge set to a distinct,
// non-zero value (1000 + 7 x its id), for tests/metrics/exposition_test.py to parse.
#include <herald/metrics.hpp>

#include <iostream>

int main() {
  herald::metrics m;
  for (unsigned i = 0; i < herald::metrics::count_; ++i) m.add(static_cast<herald::metrics::id>(i), 1000 + 7 * i);
  std::cout << "# ids " << herald::metrics::count_ << "\n" << m.prometheus();
}
