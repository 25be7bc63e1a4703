// permessage-deflate in ws_session on real loopback sockets (RFC 7692): negotiation in both
// roles, a broadcast compressed once for every deflate receiver while plain receivers share the
// plain frame, the threshold, and what a peer's bad compressed message costs it: a zip bomb
// 1009, a corrupt stream 1007, RSV1 on a continuation 1002, text inflating to bad UTF-8 1007.
// Built only with zlib (herald/deflate.hpp).
#include "test_support.hpp"

#include <herald/deflate.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace herald_test;
namespace ws = herald::ws;

namespace {

// zlib's support, counting what passes through it: compress() once per message, whatever the
// number of receivers, is what these tests are about.
struct counting_support final : herald::deflate_support {
  explicit counting_support(const ws::deflate_config& c = {}) : deflate_support(c), inner(herald::make_deflate_support(c)) {}
  bool compress(std::string_view payload, std::string& out) const override {
    ++compressions;
    return inner->compress(payload, out);
  }
  herald::inflate_status inflate(std::string_view body, std::size_t max_size, std::string& out) const override {
    ++inflations;
    return inner->inflate(body, max_size, out);
  }
  std::unique_ptr<herald::deflate_inflater> make_inflater(std::uint8_t window_bits) const override {
    ++inflaters;
    return inner->make_inflater(window_bits);
  }
  std::shared_ptr<const herald::deflate_support> inner;
  mutable std::atomic<int> compressions{0}, inflations{0}, inflaters{0};
};

// A JSON-like text of `n` bytes that compresses well but not trivially.
std::string json_text(std::size_t n, unsigned seed = 1) {
  std::string s = "[";
  unsigned x = seed;
  while (s.size() + 64 < n) {
    x = x * 1103515245u + 12345u;
    s += "{\"uid\":\"u" + std::to_string(x % 1000) + "\",\"price\":" + std::to_string((x >> 8) % 10000) + ",\"ok\":true},";
  }
  s.resize(n - 1, ' ');
  return s + "]";
}

std::shared_ptr<const herald::session_options> client_options(std::shared_ptr<const herald::deflate_support> d) {
  herald::session_options o;
  o.max_message_size = 1 << 20;
  o.deflate = std::move(d);
  return std::make_shared<const herald::session_options>(o);
}

// A frame as a client sends it, masked, with RSV1 when `compressed`.
std::string client_frame(ws::opcode op, std::string_view payload, bool compressed, bool fin = true) {
  std::string f = raw_client::frame(op, payload, fin);
  if (compressed) f[0] = static_cast<char>(f[0] | 0x40);
  return f;
}

// One event as the raw peer saw it, with its payload copied.
struct seen {
  ws::event_kind kind = ws::event_kind::need_more;
  ws::opcode op = ws::opcode::continuation;
  bool compressed = false;
  std::string payload;
  std::uint16_t code = 0;
  std::string wire;  // the frame's bytes as received (for a message in one frame)
};

// A client that speaks raw bytes and parses what the server sends with herald's own parser.
struct raw_peer {
  explicit raw_peer(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  std::string in;  // received, not yet parsed
  std::string wire;  // bytes of the frame being parsed so far
  ws::parser parser{ws::role::client, {1 << 24}};
  std::string response;  // the 101's head

  static asio::awaitable<raw_peer> connect(unsigned short port) {
    tcp::socket s(co_await asio::this_coro::executor);
    co_await s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable);
    co_return raw_peer(std::move(s));
  }

  // Blocking: what the tests write fits the loopback socket's buffer, so this never waits for
  // the server (on the same thread). Not a coroutine, which g++ 12 would miscompile with a
  // temporary string argument.
  void write(std::string_view bytes) { asio::write(socket, asio::buffer(bytes)); }

  // Upgrade with `extensions` offered (none when empty); the parser accepts RSV1 when the
  // server answered permessage-deflate.
  asio::awaitable<void> handshake(const char* extensions) {
    std::string req =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    if (*extensions) req += std::string("Sec-WebSocket-Extensions: ") + extensions + "\r\n";
    req += "\r\n";
    write(req);
    while (in.find("\r\n\r\n") == std::string::npos) co_await read_more();
    const auto end = in.find("\r\n\r\n") + 4;
    response = in.substr(0, end);
    in.erase(0, end);
    REQUIRE(response.rfind("HTTP/1.1 101", 0) == 0);
    if (deflate_answered()) parser.enable_compression();
  }
  bool deflate_answered() const { return response.find("Sec-WebSocket-Extensions: permessage-deflate") != std::string::npos; }

  asio::awaitable<void> read_more() {
    char buf[8192];
    const std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::use_awaitable);
    in.append(buf, n);
  }

  // The next event (a message, control frame or protocol error); pings are not answered.
  asio::awaitable<seen> next() {
    for (;;) {
      auto r = parser.next(reinterpret_cast<std::uint8_t*>(in.data()), in.size());
      wire.append(in, 0, r.consumed);  // a client-role parser leaves the bytes as they came
      if (r.ev.kind != ws::event_kind::need_more) {
        seen s{r.ev.kind, r.ev.op, r.ev.compressed, std::string(r.ev.payload), r.ev.code, std::move(wire)};
        wire.clear();
        in.erase(0, r.consumed);
        co_return s;
      }
      in.erase(0, r.consumed);
      co_await read_more();
    }
  }

  // The server's close frame (after whatever came before it), answered with ours and a FIN so
  // that the server's session ends now rather than at its close timeout.
  asio::awaitable<seen> until_close() {
    for (int i = 0; i < 1000; ++i) {
      seen s = co_await next();
      if (s.kind == ws::event_kind::close || s.kind == ws::event_kind::error) {
        write(raw_client::frame(ws::opcode::close, ""));
        socket.shutdown(tcp::socket::shutdown_send);
        co_return s;
      }
    }
    FAIL("no close frame");
    co_return seen{};
  }
};

// Logs a raw peer in as `uid`, returning once the server has bound it.
asio::awaitable<raw_peer> raw_login(test_server<>& server, const char* uid, const char* extensions) {
  raw_peer p = co_await raw_peer::connect(server.port());
  co_await p.handshake(extensions);
  const std::size_t before = server.users.sessions_of(uid);
  p.write(client_frame(ws::opcode::text, uid, false));
  REQUIRE(co_await eventually([&] { return server.users.sessions_of(uid) == before + 1; }));
  co_return p;
}

constexpr const char* offer = "permessage-deflate; client_max_window_bits";

}  // namespace

TEST_CASE("a server with deflate answers an offer; one without, or an offer it cannot take, is declined") {
  asio::io_context io;
  test_server<> with(io), without(io);
  with.options->deflate = herald::make_deflate_support();
  run(io, [&]() -> asio::awaitable<void> {
    raw_peer a = co_await raw_login(with, "a", offer);
    CHECK(a.deflate_answered());
    CHECK(a.response.find("server_no_context_takeover") != std::string::npos);
    CHECK(a.response.find("client_no_context_takeover") != std::string::npos);
    REQUIRE(with.sessions["a"].size() == 1);
    CHECK(with.sessions["a"][0]->deflate_negotiated());

    raw_peer b = co_await raw_login(without, "b", offer);
    CHECK_FALSE(b.deflate_answered());
    CHECK(b.response.find("Sec-WebSocket-Extensions") == std::string::npos);
    CHECK_FALSE(without.sessions["b"][0]->deflate_negotiated());

    raw_peer c = co_await raw_login(with, "c", "");  // no offer
    CHECK(c.response.find("Sec-WebSocket-Extensions") == std::string::npos);
    CHECK_FALSE(with.sessions["c"][0]->deflate_negotiated());

    // An unknown parameter makes the offer unusable; the next offer in the list is taken.
    raw_peer d = co_await raw_login(with, "d", "permessage-deflate; foo=1");
    CHECK_FALSE(d.deflate_answered());
    raw_peer e = co_await raw_login(with, "e", "x-webkit-deflate-frame, permessage-deflate; foo, permessage-deflate; server_max_window_bits=10");
    CHECK(e.deflate_answered());
    CHECK(e.response.find("server_max_window_bits=10") != std::string::npos);

    // Without the extension negotiated, RSV1 is still a protocol error.
    b.write(client_frame(ws::opcode::text, "b:x", true));
    CHECK((co_await b.until_close()).code == ws::close_code::protocol_error);
    with.stop();
    without.stop();
  });
}

TEST_CASE("a broadcast to many deflate sessions is compressed once; plain sessions share the plain frame") {
  asio::io_context io;
  test_server<> server(io);
  auto counted = std::make_shared<counting_support>();
  server.options->deflate = counted;
  run(io, [&]() -> asio::awaitable<void> {
    auto deflate_clients = client_options(herald::make_deflate_support());
    std::vector<session_ptr> zipped, plain;
    for (int i = 0; i < 30; ++i) {
      auto c = co_await connect_client(server.port(), deflate_clients);
      CHECK(c->deflate_negotiated());
      c->send("z" + std::to_string(i));
      zipped.push_back(c);
    }
    for (int i = 0; i < 10; ++i) {
      auto c = co_await connect_client(server.port());
      CHECK_FALSE(c->deflate_negotiated());
      c->send("p" + std::to_string(i));
      plain.push_back(c);
    }
    raw_peer rz = co_await raw_login(server, "rz", offer);
    raw_peer rp = co_await raw_login(server, "rp", "");
    REQUIRE(co_await eventually([&] { return server.users.session_count() == 42; }));

    const std::string doc = json_text(4096);
    const auto m = herald::message::text(doc);
    const int before = counted->compressions;
    CHECK(server.users.broadcast(m) == 42);
    CHECK(counted->compressions == before + 1);  // once, for 31 deflate receivers
    for (auto& c : zipped) CHECK(co_await next_text(*c) == doc);
    for (auto& c : plain) CHECK(co_await next_text(*c) == doc);

    // On the wire: the deflate peer gets the message's one compressed frame, the plain peer its plain frame.
    const auto shared = m.deflated(*counted);
    CHECK(counted->compressions == before + 1);  // cached in the message
    REQUIRE(shared.compressed());
    CHECK(shared.frame_size() * 4 < m.frame_size());
    seen z = co_await rz.next();
    CHECK(z.compressed);
    CHECK(z.wire == std::string(reinterpret_cast<const char*>(shared.frame().data()), shared.frame_size()));
    std::string inflated;
    CHECK(counted->inner->inflate(z.payload, 1 << 20, inflated) == herald::inflate_status::ok);
    CHECK(inflated == doc);
    seen p = co_await rp.next();
    CHECK_FALSE(p.compressed);
    CHECK(p.wire == std::string(reinterpret_cast<const char*>(m.frame().data()), m.frame_size()));

    // A second broadcast: one more compression, not one per receiver.
    CHECK(server.users.broadcast(json_text(2000, 7)) == 42);
    CHECK(counted->compressions == before + 2);
    for (auto& c : zipped) CHECK(co_await next_text(*c) == json_text(2000, 7));
    server.stop();
  });
}

TEST_CASE("messages under the threshold, and those that do not shrink, go out uncompressed (RSV1 clear)") {
  asio::io_context io;
  test_server<> server(io);
  ws::deflate_config cfg;
  cfg.threshold = 100;
  server.options->deflate = herald::make_deflate_support(cfg);
  run(io, [&]() -> asio::awaitable<void> {
    raw_peer p = co_await raw_login(server, "p", offer);
    REQUIRE(p.deflate_answered());
    const std::string small(99, 'a'), big(100, 'a');
    server.users.unicast("p", small);
    server.users.unicast("p", big);
    std::string noise(400, '\0');
    unsigned x = 5;
    for (auto& c : noise) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 16);  // does not compress
    server.users.unicast("p", herald::message::binary(noise));
    seen a = co_await p.next();
    CHECK_FALSE(a.compressed);
    CHECK(a.payload == small);
    seen b = co_await p.next();
    CHECK(b.compressed);
    std::string inflated;
    CHECK(server.options->deflate->inflate(b.payload, 1000, inflated) == herald::inflate_status::ok);
    CHECK(inflated == big);
    seen c = co_await p.next();
    CHECK(c.payload == noise);
    CHECK_FALSE(c.compressed);
    server.stop();
  });
}

TEST_CASE("compressed messages from a client are inflated; bad ones close it with the right code") {
  asio::io_context io;
  test_server<> server(io);
  auto counted = std::make_shared<counting_support>();
  server.options->deflate = counted;
  server.options->max_message_size = 64 * 1024;
  const auto& z = *counted->inner;
  auto compressed = [&](std::string_view s) {
    std::string out;
    REQUIRE(z.compress(s, out));
    return out;
  };
  run(io, [&]() -> asio::awaitable<void> {
    // A good one, in one frame and fragmented (RSV1 on the first frame only).
    raw_peer good = co_await raw_login(server, "good", offer);
    const std::string doc = json_text(3000);
    good.write(client_frame(ws::opcode::text, compressed("good:" + doc), true));
    const std::string body = compressed("good:" + doc + "!");
    good.write(client_frame(ws::opcode::text, body.substr(0, 10), true, false) +
                        client_frame(ws::opcode::continuation, body.substr(10), false, true));
    REQUIRE(co_await eventually([&] { return server.received.size() == 2; }));
    CHECK(server.received[0] == "good|good:" + doc);
    CHECK(server.received[1] == "good|good:" + doc + "!");
    CHECK(counted->inflaters == 0);  // client_no_context_takeover: the thread's inflater, none per session

    // Zip bomb: 16 KiB on the wire, 16 MiB inflated, the limit 64 KiB: 1009, found while inflating.
    raw_peer bomb = co_await raw_login(server, "bomb", offer);
    const std::string zeros = compressed(std::string(16 << 20, '\0'));
    CHECK(zeros.size() < 64 * 1024);
    bomb.write(client_frame(ws::opcode::binary, zeros, true));
    CHECK((co_await bomb.until_close()).code == ws::close_code::message_too_big);

    // Exactly the limit inflates; one byte more does not.
    raw_peer edge = co_await raw_login(server, "edge", offer);
    edge.write(client_frame(ws::opcode::binary, compressed(std::string(64 * 1024, 'e')), true));
    REQUIRE(co_await eventually([&] { return server.received.size() == 3; }));
    edge.write(client_frame(ws::opcode::binary, compressed(std::string(64 * 1024 + 1, 'e')), true));
    CHECK((co_await edge.until_close()).code == ws::close_code::message_too_big);

    // Not a deflate stream (block type 3): 1007.
    raw_peer corrupt = co_await raw_login(server, "corrupt", offer);
    corrupt.write(client_frame(ws::opcode::text, std::string("\xff\xff\xff\xff", 4), true));
    CHECK((co_await corrupt.until_close()).code == ws::close_code::invalid_payload);

    // Cut short inside a block: 1007.
    raw_peer cut = co_await raw_login(server, "cut", offer);
    cut.write(client_frame(ws::opcode::text, compressed(doc).substr(0, 100), true));
    CHECK((co_await cut.until_close()).code == ws::close_code::invalid_payload);

    // Text that inflates to bytes that are not UTF-8: 1007.
    raw_peer bad_text = co_await raw_login(server, "badtext", offer);
    bad_text.write(client_frame(ws::opcode::text, compressed("badtext:\xc3\x28 not utf-8"), true));
    CHECK((co_await bad_text.until_close()).code == ws::close_code::invalid_payload);
    // ... while the same bytes as binary are fine.
    raw_peer bin = co_await raw_login(server, "bin", offer);
    bin.write(client_frame(ws::opcode::binary, compressed("bin:\xc3\x28 binary"), true));
    REQUIRE(co_await eventually([&] { return server.received.size() == 4; }));
    CHECK(server.received[3] == "bin|bin:\xc3\x28 binary");

    // RSV1 on a continuation frame: 1002.
    raw_peer cont = co_await raw_login(server, "cont", offer);
    cont.write(client_frame(ws::opcode::text, "cont:", false, false) +
                        client_frame(ws::opcode::continuation, compressed("x"), true, true));
    CHECK((co_await cont.until_close()).code == ws::close_code::protocol_error);

    // The server's sessions ended with those codes too.
    REQUIRE(co_await eventually([&] { return server.ended.size() == 6; }));
    CHECK(server.ended["bomb"].at(0).code == ws::close_code::message_too_big);
    CHECK(server.ended["edge"].at(0).code == ws::close_code::message_too_big);
    CHECK(server.ended["corrupt"].at(0).code == ws::close_code::invalid_payload);
    CHECK(server.ended["cut"].at(0).code == ws::close_code::invalid_payload);
    CHECK(server.ended["badtext"].at(0).code == ws::close_code::invalid_payload);
    CHECK(server.ended["cont"].at(0).code == ws::close_code::protocol_error);
    CHECK(server.received.size() == 4);  // nothing of the bad ones was delivered
    server.stop();
  });
}

TEST_CASE("a peer allowed context takeover gets a session inflater; its messages build on each other") {
  asio::io_context io;
  test_server<> server(io);
  ws::deflate_config cfg;
  cfg.allow_peer_context_takeover = true;
  auto counted = std::make_shared<counting_support>(cfg);
  server.options->deflate = counted;
  run(io, [&]() -> asio::awaitable<void> {
    raw_peer p = co_await raw_login(server, "p", "permessage-deflate");  // no client_no_context_takeover
    REQUIRE(p.deflate_answered());
    CHECK(p.response.find("client_no_context_takeover") == std::string::npos);
    CHECK(counted->inflaters == 0);  // nothing until its first compressed message
    // One zlib stream across two messages (context takeover): the second refers back into the first.
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    auto next_body = [&](std::string_view text) {
      std::string out(1024, '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
      zs.avail_in = static_cast<uInt>(text.size());
      zs.next_out = reinterpret_cast<Bytef*>(out.data());
      zs.avail_out = static_cast<uInt>(out.size());
      REQUIRE(deflate(&zs, Z_SYNC_FLUSH) == Z_OK);
      out.resize(out.size() - zs.avail_out - 4);  // without the 00 00 FF FF tail
      return out;
    };
    const std::string text = "p:" + json_text(300);
    const std::string first = next_body(text), second = next_body(text);
    deflateEnd(&zs);
    CHECK(second.size() < first.size() / 4);  // it is a back-reference into the first message
    p.write(client_frame(ws::opcode::text, first, true));
    p.write(client_frame(ws::opcode::text, second, true));
    REQUIRE(co_await eventually([&] { return server.received.size() == 2; }));
    CHECK(server.received[0] == "p|" + text);
    CHECK(server.received[1] == "p|" + text);
    CHECK(counted->inflaters == 1);
    server.stop();
  });
}

TEST_CASE("client role: a herald client offers, compresses what it sends and inflates what it gets") {
  asio::io_context io;
  test_server<> server(io);
  auto on_server = std::make_shared<counting_support>();
  server.options->deflate = on_server;
  run(io, [&]() -> asio::awaitable<void> {
    auto on_client = std::make_shared<counting_support>();
    auto c = co_await connect_client(server.port(), client_options(on_client));
    REQUIRE(c->deflate_negotiated());
    c->send("alice");
    REQUIRE(co_await eventually([&] { return server.sessions["alice"].size() == 1; }));
    CHECK(server.sessions["alice"][0]->deflate_negotiated());

    // Client -> server: compressed by the client, inflated by the server.
    const std::string doc = json_text(5000, 3);
    c->send(doc);
    REQUIRE(co_await eventually([&] { return server.received.size() == 1; }));
    CHECK(server.received[0] == "alice|" + doc);
    CHECK(on_client->compressions == 1);
    CHECK(on_server->inflations == 1);
    // Server -> client: compressed by the server, inflated here.
    server.users.unicast("alice", doc);
    CHECK(co_await next_text(*c) == doc);
    CHECK(on_server->compressions == 1);
    CHECK(on_client->inflations == 1);
    // Small ones stay plain both ways.
    c->send("hi");
    server.users.unicast("alice", "ho");
    CHECK(co_await next_text(*c) == "ho");
    REQUIRE(co_await eventually([&] { return server.received.size() == 2; }));
    CHECK(server.received[1] == "alice|hi");
    CHECK(on_client->compressions == 1);
    CHECK(on_server->inflations == 1);
    CHECK(on_client->inflations == 1);

    // A deflate client against a server without it: declined, plain both ways.
    test_server<> plain(io);
    auto d = co_await connect_client(plain.port(), client_options(on_client));
    CHECK_FALSE(d->deflate_negotiated());
    d->send("bob");
    REQUIRE(co_await eventually([&] { return plain.sessions["bob"].size() == 1; }));
    d->send(doc);
    plain.users.unicast("bob", doc);
    CHECK(co_await next_text(*d) == doc);
    REQUIRE(co_await eventually([&] { return plain.received.size() == 1; }));
    CHECK(plain.received[0] == "bob|" + doc);
    CHECK(on_client->compressions == 1);
    server.stop();
    plain.stop();
  });
}

namespace {
// A fake server that answers the upgrade with `extensions_answer` as its extension header.
asio::awaitable<void> answer_upgrade(tcp::acceptor& acceptor, const char* extensions_answer) {
  tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos) {
    const std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::use_awaitable);
    req.append(buf, n);
  }
  const auto at = req.find("Sec-WebSocket-Key: ") + 19;
  const std::string key = req.substr(at, req.find("\r\n", at) - at);
  std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                     ws::accept_key(key) + "\r\n";
  if (*extensions_answer) resp += std::string("Sec-WebSocket-Extensions: ") + extensions_answer + "\r\n";
  resp += "\r\n";
  co_await asio::async_write(s, asio::buffer(resp), asio::use_awaitable);
  herald::error_code ec;
  co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));  // until the client hangs up
}

asio::awaitable<herald::close_status> connect_to_answer(const char* answer, std::shared_ptr<const herald::session_options> o) {
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(ex, answer_upgrade(acceptor, answer), asio::detached);
  tcp::socket s(ex);
  co_await s.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
  herald::close_status why;
  auto c = co_await session::connect(std::move(s), "127.0.0.1", "/", o, &why);
  if (c) {
    why.reason = c->deflate_negotiated() ? "negotiated" : "declined";
    c->drop();
  }
  co_return why;
}
}  // namespace

TEST_CASE("client role: the server's answer must fit the offer, else the handshake fails") {
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    auto with = client_options(herald::make_deflate_support());
    auto without = client_options(nullptr);
    CHECK((co_await connect_to_answer("permessage-deflate; server_no_context_takeover", with)).reason == "negotiated");
    CHECK((co_await connect_to_answer("permessage-deflate; server_no_context_takeover; client_max_window_bits=9", with)).reason ==
          "negotiated");
    CHECK((co_await connect_to_answer("", with)).reason == "declined");
    // Refused: server context takeover we did not allow, a parameter without its value or
    // unknown, an extension not offered, any extension when none was offered.
    auto refused = [](const herald::close_status& s) { return s.code == ws::close_code::abnormal && s.reason != "negotiated"; };
    CHECK(refused(co_await connect_to_answer("permessage-deflate", with)));
    CHECK(refused(co_await connect_to_answer("permessage-deflate; server_no_context_takeover; client_max_window_bits", with)));
    CHECK(refused(co_await connect_to_answer("permessage-deflate; server_no_context_takeover; x=1", with)));
    CHECK(refused(co_await connect_to_answer("x-webkit-deflate-frame", with)));
    CHECK(refused(co_await connect_to_answer("permessage-deflate; server_no_context_takeover", without)));
  });
}
