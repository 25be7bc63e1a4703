// ws_session over TLS (herald/tls.hpp) on loopback, with a certificate made in process: a
// peer that stops reading is closed as a slow consumer, and the bytes written before the
// close are still a valid stream of frames.
//
// Over TLS a write is one async_write_some of the head frame, and write_offset_ stays 0 until
// it completes. Overflowing the send queue while such a write was pending used to drop the
// frame it carried and queue the close frame in its place; the completion then counted the
// written bytes against the close frame (which never went out) and walked past the end of
// the queue: a corrupt stream, or a crash under ASan.
#include "test_support.hpp"

#include <herald/tls.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

using namespace herald_test;
using herald::ws::opcode;

namespace {

// A self-signed certificate (EC P-256, CN=127.0.0.1, SHA-256) and its key, as PEM.
struct self_signed {
  std::string cert_pem;
  std::string key_pem;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

self_signed make_self_signed() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  REQUIRE(key);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  REQUIRE(cert);
  REQUIRE(X509_set_version(cert.get(), 2) == 1);
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) == 1);
  REQUIRE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600));
  REQUIRE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600));
  REQUIRE(X509_set_pubkey(cert.get(), key.get()) == 1);
  X509_NAME* name = X509_get_subject_name(cert.get());
  REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0) == 1);
  REQUIRE(X509_set_issuer_name(cert.get(), name) == 1);
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);

  self_signed out;
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(BIO_new(BIO_s_mem()), &BIO_free);
  REQUIRE(cert_bio);
  REQUIRE(PEM_write_bio_X509(cert_bio.get(), cert.get()) == 1);
  out.cert_pem = bio_text(cert_bio.get());
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new(BIO_s_mem()), &BIO_free);
  REQUIRE(key_bio);
  REQUIRE(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
  out.key_pem = bio_text(key_bio.get());
  return out;
}

// Frames of exactly 16 KiB (4 header bytes + 16380), one TLS record each: every write the
// session starts carries one whole frame, so write_offset_ is 0 while any write is pending.
constexpr std::size_t payload_size = 16 * 1024 - 4;

// Message i: its number, then a filler that changes with i.
std::string payload(int i) {
  char head[32];
  const int n = std::snprintf(head, sizeof head, "message %06d ", i);
  std::string out(head, static_cast<std::size_t>(n));
  out.resize(payload_size, static_cast<char>('a' + i % 26));
  return out;
}

}  // namespace

TEST_CASE("over TLS, a reader that stops reading is closed as a slow consumer and its stream stays valid") {
  const self_signed pem = make_self_signed();
  asio::ssl::context server_tls(asio::ssl::context::tls_server);
  server_tls.use_certificate(asio::const_buffer(pem.cert_pem.data(), pem.cert_pem.size()), asio::ssl::context::pem);
  server_tls.use_private_key(asio::const_buffer(pem.key_pem.data(), pem.key_pem.size()), asio::ssl::context::pem);
  asio::ssl::context client_tls(asio::ssl::context::tls_client);
  client_tls.set_verify_mode(asio::ssl::verify_none);

  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  herald::session_options o;
  o.send_queue_limit = 64 * 1024;
  o.close_timeout = 10s;  // ample for the client to drain what is in flight once it reads again
  auto options = std::make_shared<const herald::session_options>(o);

  std::shared_ptr<herald::tls_session> ws;  // the server side
  std::optional<herald::close_status> ended;  // what the server's read() returned at the end
  int server_received = 0;

  run(io, [&]() -> asio::awaitable<void> {
    // Server: accept one connection, TLS and the upgrade, then read until the session ends.
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
      // A small send buffer: less in flight before the writes block (the test runs quicker).
      s.set_option(asio::socket_base::send_buffer_size(64 * 1024));
      herald::tls_stream stream(std::move(s), server_tls);
      auto accepted = co_await herald::accept_websocket(std::move(stream), options);
      if (!accepted) co_return;
      ws = accepted;
      for (;;) {
        auto m = co_await accepted->read();
        if (!m) {
          ended = m.status();
          break;
        }
        ++server_received;
      }
    }, asio::detached);

    // Client: a small receive buffer, TLS without verification, the upgrade by hand.
    herald::tls_stream client(io, client_tls);
    client.next_layer().open(tcp::v4());
    client.next_layer().set_option(asio::socket_base::receive_buffer_size(4096));
    co_await client.next_layer().async_connect(acceptor.local_endpoint(), asio::use_awaitable);
    co_await client.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    const std::string request =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    co_await asio::async_write(client, asio::buffer(request), asio::use_awaitable);
    std::string got;
    char buf[16 * 1024];
    while (got.find("\r\n\r\n") == std::string::npos) {
      const std::size_t n = co_await client.async_read_some(asio::buffer(buf), asio::use_awaitable);
      got.append(buf, n);
    }
    REQUIRE(got.rfind("HTTP/1.1 101", 0) == 0);
    got.erase(0, got.find("\r\n\r\n") + 4);
    REQUIRE(co_await eventually([&] { return ws != nullptr; }));

    // The client reads nothing more. The server sends two frames per tick, so writes are in
    // flight (and, once the kernel buffers are full, pending) when later sends arrive, until
    // one overflows the queue.
    asio::steady_timer tick(io);
    int queued = 0;
    bool dropped = false;
    const int max_sends = 10000;
    while (!dropped && queued < max_sends) {
      for (int b = 0; b < 2 && !dropped && queued < max_sends; ++b) {
        const std::string p = payload(queued);
        const herald::send_result r = ws->send(p);
        if (r == herald::send_result::dropped) {
          dropped = true;
        } else {
          REQUIRE(r == herald::send_result::queued);
          ++queued;
        }
      }
      tick.expires_after(1ms);
      co_await tick.async_wait(asio::use_awaitable);
    }
    REQUIRE(dropped);
    CHECK(queued > 0);
    CHECK(ws->stats().overflow_closes == 1);
    CHECK(!ws->is_open());
    CHECK(ws->send(payload(queued)) == herald::send_result::closed);

    // Now the client reads everything: whole server frames (unmasked), the messages in the
    // order sent with none skipped, then a close frame with 1008, which it answers.
    herald::ws::parser parser(herald::ws::role::client, {1 << 20});
    std::size_t pos = 0;
    int messages = 0;
    int out_of_order = 0;  // messages that are not the next one sent
    std::optional<herald::close_status> close_frame;
    std::string broken;  // why the bytes are not a valid stream of frames
    for (;;) {
      while (!close_frame && broken.empty()) {
        auto r = parser.next(reinterpret_cast<std::uint8_t*>(got.data()) + pos, got.size() - pos);
        pos += r.consumed;
        if (r.ev.kind == herald::ws::event_kind::need_more) break;
        if (r.ev.kind == herald::ws::event_kind::message) {
          if (r.ev.op != opcode::text || r.ev.payload != payload(messages)) ++out_of_order;
          ++messages;
        } else if (r.ev.kind == herald::ws::event_kind::close) {
          close_frame = herald::close_status{r.ev.code, std::string(r.ev.reason)};
        } else if (r.ev.kind == herald::ws::event_kind::error) {
          broken = std::string(r.ev.reason);
        } else {
          broken = "unexpected control frame";
        }
        if (close_frame) {
          const std::string code{'\x03', '\xF0'};  // 1008
          const std::string reply = raw_client::frame(opcode::close, code);
          herald::error_code wec;
          co_await asio::async_write(client, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, wec));
        }
      }
      if (!broken.empty()) break;
      herald::error_code ec;
      const std::size_t n = co_await client.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      got.append(buf, n);
      if (ec) break;  // the server closed the connection (eof or a truncated TLS stream)
    }
    CHECK_MESSAGE(broken.empty(), "the bytes are not valid server frames: " << broken << " after " << messages << " messages");
    REQUIRE_MESSAGE(close_frame, "no close frame after " << messages << " messages (" << got.size() - pos << " bytes left unparsed)");
    CHECK(close_frame->code == 1008);
    CHECK(close_frame->reason == "send queue limit exceeded");
    CHECK(pos == got.size());  // nothing after the close frame
    CHECK(out_of_order == 0);
    CHECK(messages > 0);
    CHECK(messages <= queued);

    // The server's read() ends with the slow-consumer close; its stats agree.
    REQUIRE(co_await eventually([&] { return ended.has_value(); }, 15000ms));
    CHECK(ended->code == 1008);
    CHECK(ended->reason == "send queue limit exceeded");
    CHECK(ws->stats().overflow_closes == 1);
    CHECK(ws->stats().messages_out == static_cast<std::uint64_t>(messages));
    CHECK(server_received == 0);
    herald::error_code ignored;
    client.next_layer().close(ignored);
  });
}
