// The single header with the optional parts on top, as the README says:
//   g++ -std=c++20 -I include/single -I include optional_parts.cpp -pthread -lssl -lcrypto -lhiredis
// <herald.hpp> is include/single/herald.hpp (first on the path); <herald/tls.hpp> and
// <herald/policy/redis_cluster.hpp> come from include/ and include headers the single header
// already holds (detail/asio.hpp, ws_session.hpp, registry.hpp, ...), which their include
// guards skip: it compiles only if nothing is defined twice. Run, it uses both parts a little
// (no Redis and no certificate are needed) and prints "ok optional_parts".
#include <herald.hpp>
#include <herald/policy/redis_cluster.hpp>
#include <herald/tls.hpp>

#include <iostream>

int main() {
  asio::io_context io(1);
  const auto tls = herald::make_tls_server_context("no-such-cert.pem", "no-such-key.pem");
  if (tls || tls.error.empty()) {
    std::cerr << "FAIL optional_parts: a TLS context from missing files" << std::endl;
    return 1;
  }
  herald::registry<herald::tls_session> secure;
  herald::redis_cluster_options cluster;
  cluster.redis.port = 1;  // never connected: io is not run
  herald::registry<herald::ws_session<>, herald::redis_cluster> nodes(io.get_executor(), cluster);
  if (secure.uid_count() != 0 || nodes.uid_count() != 0 || nodes.online("alice")) {
    std::cerr << "FAIL optional_parts: new registries are not empty" << std::endl;
    return 1;
  }
  nodes.stop();
  std::cout << "ok optional_parts: tls.hpp and redis_cluster.hpp on top of the single header" << std::endl;
  return 0;
}
