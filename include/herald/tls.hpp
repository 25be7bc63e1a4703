// herald/tls.hpp: WebSocket over TLS (wss://) with Asio's OpenSSL streams. Optional: herald.hpp
// does not include it; a program that does links OpenSSL (CMake: find_package(OpenSSL) and
// OpenSSL::SSL; Debian: libssl-dev).
//
//   #include <herald.hpp>
//   #include <herald/tls.hpp>
//
//   auto ctx = herald::make_tls_server_context("cert.pem", "key.pem");   // no exceptions
//   if (!ctx) { std::cerr << ctx.error << "\n"; return 1; }
//   ...
//   // per accepted tcp::socket (the context must outlive the sessions made with it):
//   herald::tls_stream stream(std::move(socket), *ctx.context);
//   auto ws = co_await herald::accept_websocket(std::move(stream), options);
//   if (!ws) co_return;   // TLS or HTTP handshake failed: only this connection is gone
//   // ws is a std::shared_ptr<herald::tls_session>; the rest is as over plain TCP
//   // (a registry of them is herald::registry<herald::tls_session, Policy>).
//
// accept runs the TLS server handshake and then the HTTP upgrade, both under
// session_options::handshake_timeout: a client that sends nothing, or garbage instead of a
// ClientHello, costs only its own socket, until that deadline at most.
#ifndef HERALD_TLS_HPP
#define HERALD_TLS_HPP
#include "detail/asio.hpp"

#if defined(HERALD_USE_BOOST_ASIO)
#include <boost/asio/ssl.hpp>
#else
#include <asio/ssl.hpp>
#endif

#include <memory>
#include <string>
#include <system_error>

#include "ws_session.hpp"

namespace herald {

using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;
using tls_session = ws_session<tls_stream>;

// A server context, or why there is none.
struct tls_context_result {
  std::shared_ptr<asio::ssl::context> context;  // shared by every session made with it
  std::string error;                            // set when context is null
  explicit operator bool() const noexcept { return context != nullptr; }
};

// A TLS server context (TLS 1.2 and 1.3) from PEM files: `cert_file` holds the certificate
// chain (leaf first), `key_file` its private key (unencrypted). A missing or unreadable file,
// or a key that does not match the certificate, is reported in `error`, not thrown.
inline tls_context_result make_tls_server_context(const std::string& cert_file, const std::string& key_file) {
  tls_context_result out;
  error_code ec;
  std::shared_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  } catch (const system_error& e) {  // OpenSSL could not make one (out of memory)
    out.error = std::string("TLS context: ") + e.what();
    return out;
  }
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                   ec);
  if (ec) {
    out.error = "TLS options: " + ec.message();
    return out;
  }
  // No TLS 1.2 renegotiation: a peer could make the server redo handshakes on demand.
  ::SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    out.error = "TLS certificate " + cert_file + ": " + ec.message();
    return out;
  }
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    out.error = "TLS private key " + key_file + ": " + ec.message();
    return out;
  }
  if (::SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ::ERR_clear_error();  // leave nothing in this thread's OpenSSL error queue
    out.error = "TLS private key " + key_file + " does not match the certificate " + cert_file;
    return out;
  }
  out.context = std::move(ctx);
  return out;
}

}  // namespace herald

#endif  // HERALD_TLS_HPP
