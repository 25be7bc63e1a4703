// ws_session on real loopback sockets: handshake answers, close codes for bad input,
// pings, fragmentation, the closing handshake both ways, deadlines and idle detection.
#include "test_support.hpp"

#include <atomic>
#include <set>
#include <thread>

using namespace herald_test;
using herald::ws::opcode;

namespace {

// Logs a raw client in as `uid` and waits until the server has bound it.
asio::awaitable<raw_client> raw_login(test_server<>& server, const std::string& uid) {
  auto rc = co_await raw_client::connect(server.port());
  co_await rc.handshake();
  co_await rc.write(raw_client::frame(opcode::text, uid));
  REQUIRE(co_await eventually([&] { return server.users.online(uid); }));
  co_return rc;
}

asio::awaitable<herald::close_status> close_after(raw_client& rc, std::string bytes) {
  co_await rc.write(bytes);
  co_return parse_close(co_await rc.read_all());
}

}  // namespace

TEST_CASE("handshake: bad requests get an HTTP status and a reason") {
  asio::io_context io;
  test_server server(io);
  run(io, [&]() -> asio::awaitable<void> {
    struct probe {
      std::string request;
      std::string status_line;
      std::string body_has;
    };
    const std::string key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const std::vector<probe> probes = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400", "Upgrade"},
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
             "Sec-WebSocket-Version: 8\r\n\r\n",
         "HTTP/1.1 426", "version 13"},
        {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400", "GET"},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n", "HTTP/1.1 431", "too large"},
        {"nonsense\r\n\r\n", "HTTP/1.1 400", "request line"},
    };
    for (const auto& p : probes) {
      auto rc = co_await raw_client::connect(server.port());
      co_await rc.write(p.request);
      const std::string answer = co_await rc.read_all();
      CHECK_MESSAGE(answer.rfind(p.status_line, 0) == 0, answer);
      CHECK_MESSAGE(answer.find(p.body_has) != std::string::npos, answer);
      if (p.status_line == "HTTP/1.1 426") CHECK(answer.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
    }
    CHECK(server.users.session_count() == 0);
  });
}

TEST_CASE("handshake: a request sent too slowly is dropped at the handshake deadline") {
  asio::io_context io;
  test_server server(io);
  server.options->handshake_timeout = 300ms;
  run(io, [&]() -> asio::awaitable<void> {
    auto rc = co_await raw_client::connect(server.port());
    co_await rc.write("GET / HTTP/1.1\r\n");  // and nothing more
    const std::string answer = co_await rc.read_all();
    CHECK(answer.empty());  // closed without an upgrade
  });
}

TEST_CASE("frames that follow the handshake in the same packet are not lost") {
  asio::io_context io;
  test_server server(io);
  run(io, [&]() -> asio::awaitable<void> {
    auto rc = co_await raw_client::connect(server.port());
    co_await rc.write(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
        raw_client::frame(opcode::text, "eager") + raw_client::frame(opcode::text, "hello"));
    REQUIRE(co_await eventually([&] { return server.received.size() == 1; }));
    CHECK(server.users.online("eager"));
    CHECK(server.received[0] == "eager|hello");
  });
}

TEST_CASE("bad input closes only the offending connection with the right code") {
  asio::io_context io;
  test_server server(io);
  server.options->max_message_size = 1024;
  run(io, [&]() -> asio::awaitable<void> {
    auto bystander = co_await login_client(server, "bystander");

    auto big = co_await raw_login(server, "big");
    auto st = co_await close_after(big, raw_client::frame(opcode::text, std::string(2000, 'x')));
    CHECK(st.code == 1009);

    auto frag = co_await raw_login(server, "frag");  // too big only as the sum of its fragments
    st = co_await close_after(frag, raw_client::frame(opcode::text, std::string(600, 'x'), false) +
                                        raw_client::frame(opcode::continuation, std::string(600, 'x')));
    CHECK(st.code == 1009);

    auto utf = co_await raw_login(server, "utf");
    st = co_await close_after(utf, raw_client::frame(opcode::text, "bad \xC0\xAF utf-8"));
    CHECK(st.code == 1007);

    auto unmasked = co_await raw_login(server, "unmasked");
    st = co_await close_after(unmasked, raw_client::frame(opcode::text, "plain", true, false));
    CHECK(st.code == 1002);
    CHECK(st.reason == "client frame not masked");

    auto reserved = co_await raw_login(server, "rsv");
    std::string f = raw_client::frame(opcode::text, "x");
    f[0] = static_cast<char>(f[0] | 0x40);
    st = co_await close_after(reserved, f);
    CHECK(st.code == 1002);

    REQUIRE(co_await eventually([&] { return server.users.session_count() == 1; }));
    CHECK(server.ended["big"][0].code == 1009);
    CHECK(server.ended["utf"][0].code == 1007);
    CHECK(server.ended["unmasked"][0].code == 1002);
    // The bystander lost nothing.
    CHECK(server.users.unicast("bystander", "still fine") == 1);
    CHECK(co_await next_text(*bystander) == "still fine");
  });
}

TEST_CASE("UTF-8 is judged as it arrives: a bad first fragment fails before the message ends") {
  asio::io_context io;
  test_server server(io);
  run(io, [&]() -> asio::awaitable<void> {
    auto rc = co_await raw_login(server, "ff");
    // The message never ends, yet the invalid byte is enough.
    auto st = co_await close_after(rc, raw_client::frame(opcode::text, "ok \xF4\x90", false));
    CHECK(st.code == 1007);
  });
}

TEST_CASE("pings are answered, fragments reassembled around control frames, big messages intact") {
  asio::io_context io;
  test_server server(io);
  server.options->max_message_size = 200 * 1024;
  run(io, [&]() -> asio::awaitable<void> {
    auto rc = co_await raw_login(server, "p");
    co_await rc.write(raw_client::frame(opcode::text, "Hel", false) + raw_client::frame(opcode::ping, "are you there") +
                      raw_client::frame(opcode::continuation, "lo \xCE", false) +
                      raw_client::frame(opcode::continuation, "\xBA end"));
    std::string got;
    while (got.size() < 2 + 13) got += co_await rc.read_some();
    CHECK(got == std::string("\x8A\x0D", 2) + "are you there");  // the pong, unmasked, same payload
    REQUIRE(co_await eventually([&] { return server.received.size() == 1; }));
    CHECK(server.received[0] == "p|Hello \xCE\xBA end");

    auto c = co_await login_client(server, "big");
    std::string payload(100 * 1024, 'z');
    for (std::size_t i = 0; i < payload.size(); i += 7) payload[i] = char('a' + i % 26);
    c->send(payload);
    REQUIRE(co_await eventually([&] { return server.received.size() == 2; }));
    CHECK(server.received[1] == "big|" + payload);
    CHECK(server.users.unicast("big", herald::message::text(payload)) == 1);
    CHECK(co_await next_text(*c) == payload);
  });
}

TEST_CASE("closing handshake, both directions") {
  asio::io_context io;
  test_server server(io);
  run(io, [&]() -> asio::awaitable<void> {
    // Client starts: the server echoes the code and ends the TCP connection.
    auto rc = co_await raw_login(server, "client-closes");
    std::string close_payload = "\x0F\xA0going";  // 4000 + reason
    auto st = co_await close_after(rc, raw_client::frame(opcode::close, close_payload));
    CHECK(st.code == 4000);  // echoed
    REQUIRE(co_await eventually([&] { return !server.users.online("client-closes"); }));
    CHECK(server.ended["client-closes"][0].code == 4000);
    CHECK(server.ended["client-closes"][0].reason == "going");

    // Server starts: the client sees the code and reason, the server finishes on the reply.
    auto c = co_await login_client(server, "server-closes");
    server.sessions["server-closes"][0]->close(4001, "as you wish");
    auto end = co_await c->read();
    REQUIRE(!end);
    CHECK(end.status().code == 4001);
    CHECK(end.status().reason == "as you wish");
    REQUIRE(co_await eventually([&] { return !server.users.online("server-closes"); }));
    CHECK(server.ended["server-closes"][0].code == 4001);

    // A close frame with no status is answered with none.
    auto bare = co_await raw_login(server, "bare");
    co_await bare.write(raw_client::frame(opcode::close, ""));
    const std::string reply = co_await bare.read_all();
    CHECK(reply == std::string("\x88\x00", 2));
    REQUIRE(co_await eventually([&] { return !server.users.online("bare"); }));
    CHECK(server.ended["bare"][0].code == 1005);
  });
}

TEST_CASE("a peer that vanishes without FIN is pinged, then dropped and unbound") {
  asio::io_context io;
  test_server server(io);
  server.options->idle_timeout = 150ms;
  run(io, [&]() -> asio::awaitable<void> {
    auto ghost = co_await raw_login(server, "ghost");  // will never answer again
    auto alive = co_await login_client(server, "alive");  // herald's client answers pings while reading
    asio::co_spawn(io, [alive]() -> asio::awaitable<void> {
      while (co_await alive->read()) {
      }
    }, asio::detached);
    REQUIRE(co_await eventually([&] { return !server.users.online("ghost"); }, 5000ms));
    CHECK(server.ended["ghost"][0].code == 1006);
    CHECK(server.ended["ghost"][0].reason == "idle timeout: no answer to ping");
    // It was pinged before being dropped.
    const std::string got = co_await ghost.read_all();
    CHECK(got.find(std::string("\x89\x00", 2)) != std::string::npos);
    // The live one, silent as well but answering pings, stays.
    CHECK(server.users.online("alive"));
  });
}

TEST_CASE("send from another thread is posted to the session's thread") {
  asio::io_context io;
  test_server server(io);
  run(io, [&]() -> asio::awaitable<void> {
    auto c = co_await login_client(server, "t");
    auto s = server.sessions["t"][0];
    std::vector<herald::send_result> results;
    std::thread other([&] {
      for (int i = 0; i < 100; ++i) results.push_back(s->send("from afar " + std::to_string(i)));
    });
    other.join();
    for (auto r : results) CHECK(r == herald::send_result::posted);
    for (int i = 0; i < 100; ++i) CHECK(co_await next_text(*c) == "from afar " + std::to_string(i));
  });
}

TEST_CASE("per-session user data: typed, per session, default-constructed") {
  struct profile {
    std::string name = "anonymous";
    int messages = 0;
  };
  using profiled_session = herald::ws_session<tcp::socket, profile>;
  static_assert(std::is_same_v<profiled_session::user_data_type, profile>);
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::vector<std::shared_ptr<profiled_session>> served;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (int i = 0; i < 2; ++i) {
        auto s = co_await acceptor.async_accept(asio::use_awaitable);
        auto ws = co_await herald::accept_websocket<profile>(std::move(s));
        REQUIRE(ws);
        CHECK(ws->data().name == "anonymous");
        served.push_back(ws);
        asio::co_spawn(io, [ws]() -> asio::awaitable<void> {
          while (auto m = co_await ws->read()) {
            ws->data().name = m->data;
            ++ws->data().messages;
          }
        }, asio::detached);
      }
    }, asio::detached);
    auto a = co_await connect_client(acceptor.local_endpoint().port());
    auto b = co_await connect_client(acceptor.local_endpoint().port());
    a->send("first");
    a->send("alice");
    b->send("bob");
    REQUIRE(co_await eventually([&] {
      return served.size() == 2 && served[0]->data().messages + served[1]->data().messages == 3;
    }));
    std::set<std::string> names{served[0]->data().name, served[1]->data().name};
    CHECK(names == std::set<std::string>{"alice", "bob"});
  });
}

TEST_CASE("read() takes any completion token: a callback never runs inside read(); another context's coroutine may await it") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<std::string> got;
  int ran_inside = 0;
  herald::close_status end;
  std::shared_ptr<session> server_side;
  // A server whose reads are callbacks: read, record, read again, until the end.
  int inside_read = 0;  // > 0 while a call to read() is running
  std::function<void()> read_next = [&] {
    ++inside_read;
    server_side->read([&](herald::read_result r) {
      ran_inside += inside_read > 0;
      if (!r) {
        end = r.status();
        return;
      }
      got.push_back(r->data);
      read_next();
    });
    --inside_read;
  };
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto s = co_await acceptor.async_accept(asio::use_awaitable);
    server_side = co_await herald::accept_websocket(std::move(s));
    REQUIRE(server_side);
    read_next();
  }, asio::detached);
  run(io, [&]() -> asio::awaitable<void> {
    auto c = co_await connect_client(acceptor.local_endpoint().port());
    // Three messages, most likely in one segment: the 2nd and 3rd are buffered when read() is called.
    c->send("one");
    c->send("two");
    c->send("three");
    REQUIRE(co_await eventually([&] { return got.size() == 3; }));
    CHECK(got == std::vector<std::string>{"one", "two", "three"});
    CHECK(ran_inside == 0);
    c->send("four");
    c->close(herald::ws::close_code::normal, "bye");
    REQUIRE(co_await eventually([&] { return end.code != 0; }));
    CHECK(got.back() == "four");
    CHECK(end.code == 1000);
    CHECK(end.reason == "bye");
    CHECK(!(co_await c->read()));
  });
  // Another io_context's coroutine may await a session's read (the handler's executor is not
  // the session's: the read keeps it busy until it completes).
  asio::io_context io2;
  asio::io_context other;
  tcp::acceptor acceptor2(io2, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  // Written on `other`'s thread, read on io2's: the flag publishes the string.
  std::string across;
  std::atomic<bool> across_set{false};
  asio::co_spawn(io2, [&]() -> asio::awaitable<void> {
    auto s = co_await acceptor2.async_accept(asio::use_awaitable);
    auto ws = co_await herald::accept_websocket(std::move(s));
    REQUIRE(ws);
    asio::co_spawn(other, [ws, &across, &across_set]() -> asio::awaitable<void> {
      // The second read() finds its message buffered: its parse runs on the session's thread
      // (TSan checks), its result comes back here.
      for (int i = 0; i < 2; ++i) {
        auto m = co_await ws->read(asio::use_awaitable_t<asio::any_io_executor>{});
        if (!m) break;
        across += (i ? "|" : "") + m->data;
      }
      across_set.store(true, std::memory_order_release);
    }, asio::detached);
  }, asio::detached);
  std::thread other_thread([&other] {
    auto guard = asio::make_work_guard(other);
    other.run_for(std::chrono::seconds(20));
  });
  run(io2, [&]() -> asio::awaitable<void> {
    auto c = co_await connect_client(acceptor2.local_endpoint().port());
    c->send("across contexts");
    c->send("and back");
    REQUIRE(co_await eventually([&] { return across_set.load(std::memory_order_acquire); }));
    CHECK(across == "across contexts|and back");
    other.stop();
  });
  other_thread.join();
}

TEST_CASE("messages that arrive together are relayed together: a round's writes wait for its buffered reads") {
  // A publisher's three frames arrive in one segment; each is relayed to a receiver. The
  // receiver's queue must still hold the earlier frames when the later ones are relayed (one
  // write for the three), not be written out between them (one write each).
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::shared_ptr<session> receiver;
  std::vector<std::size_t> queued_before;  // the receiver's queued bytes as each frame is relayed
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto r = co_await acceptor.async_accept(asio::use_awaitable);
    receiver = co_await herald::accept_websocket(std::move(r));
    auto p = co_await acceptor.async_accept(asio::use_awaitable);
    auto publisher = co_await herald::accept_websocket(std::move(p));
    REQUIRE(receiver);
    REQUIRE(publisher);
    for (;;) {
      auto m = co_await publisher->read();
      if (!m) break;
      queued_before.push_back(receiver->queued_bytes());
      CHECK(receiver->send(m->data) == herald::send_result::queued);
    }
  }, asio::detached);
  run(io, [&]() -> asio::awaitable<void> {
    auto c = co_await connect_client(acceptor.local_endpoint().port());
    REQUIRE(co_await eventually([&] { return receiver != nullptr; }));
    auto pub = co_await raw_client::connect(acceptor.local_endpoint().port());
    co_await pub.handshake();
    co_await pub.write(raw_client::frame(opcode::text, "one") + raw_client::frame(opcode::text, "two") +
                       raw_client::frame(opcode::text, "three"));
    CHECK(co_await next_text(*c) == "one");
    CHECK(co_await next_text(*c) == "two");
    CHECK(co_await next_text(*c) == "three");
    REQUIRE(queued_before.size() == 3);
    CHECK(queued_before[0] == 0);
    CHECK(queued_before[1] > 0);
    CHECK(queued_before[2] > queued_before[1]);
  });
}
