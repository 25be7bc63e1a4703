// Links through herald::tls: herald's headers and OpenSSL's, and libssl.
#include <herald/websocket/frame.hpp>  // herald::herald comes along (a light header: no Asio)
#include <openssl/ssl.h>

#include <iostream>

int main() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (!ctx) return 1;
  SSL_CTX_free(ctx);
  std::cout << "ok tls_probe (" << OpenSSL_version(OPENSSL_VERSION) << ")" << std::endl;
  return 0;
}
