// registry<ws_session<>, Policy> for both policies on real loopback sockets: login, unicast, broadcast,
// unbinding, duplicate-login policies and a slow consumer among 1,000 healthy sessions.
#include "test_support.hpp"

#include <set>

using namespace herald_test;

TEST_CASE_TEMPLATE("unicast reaches exactly the sessions of the addressed uid", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  run(io, [&]() -> asio::awaitable<void> {
    auto alice1 = co_await login_client(server, "alice");
    auto alice2 = co_await login_client(server, "alice");
    auto bob = co_await login_client(server, "bob");
    auto carol = co_await login_client(server, "carol");
    CHECK(server.users.uid_count() == 3);
    CHECK(server.users.session_count() == 4);

    CHECK(server.users.unicast("alice", "for: alice, with: colons") == 2);
    CHECK(server.users.unicast("nobody", "lost") == 0);
    CHECK(server.users.unicast("bob", "for bob") == 1);
    CHECK(server.users.broadcast("sentinel") == 4);

    CHECK(co_await next_text(*alice1) == "for: alice, with: colons");
    CHECK(co_await next_text(*alice1) == "sentinel");
    CHECK(co_await next_text(*alice2) == "for: alice, with: colons");
    CHECK(co_await next_text(*alice2) == "sentinel");
    CHECK(co_await next_text(*bob) == "for bob");
    CHECK(co_await next_text(*bob) == "sentinel");
    CHECK(co_await next_text(*carol) == "sentinel");  // nothing addressed to others leaked here
  });
}

TEST_CASE_TEMPLATE("broadcast reaches every logged-in session exactly once, in order, sharing one frame", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  run(io, [&]() -> asio::awaitable<void> {
    std::vector<session_ptr> clients;
    for (int i = 0; i < 50; ++i) clients.push_back(co_await login_client(server, "u" + std::to_string(i)));
    auto lurker = co_await connect_client(server.port());  // connected, never logged in

    for (int m = 0; m < 20; ++m) {
      auto frame = herald::message::text("broadcast " + std::to_string(m));
      CHECK(server.users.broadcast(frame) == 50);
    }
    for (auto& c : clients)
      for (int m = 0; m < 20; ++m) CHECK(co_await next_text(*c) == "broadcast " + std::to_string(m));

    lurker->send("late");
    REQUIRE(co_await eventually([&] { return server.users.online("late"); }));
    CHECK(server.users.unicast("late", "first for late") == 1);
    CHECK(co_await next_text(*lurker) == "first for late");  // no broadcast from before its login
    CHECK(server.users.broadcast("after") == 51);
    for (auto& c : clients) CHECK(co_await next_text(*c) == "after");
    CHECK(co_await next_text(*lurker) == "after");
  });
}

TEST_CASE_TEMPLATE("a broadcast frame is encoded once and shared by the queues", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  run(io, [&]() -> asio::awaitable<void> {
    // A client that does not read lets frames pile up in the server's queue.
    server.send_buffer = 4096;
    std::vector<raw_client> stalled;
    for (int i = 0; i < 3; ++i) {
      auto rc = co_await raw_client::connect(server.port(), 4096);
      co_await rc.handshake();
      co_await rc.write(raw_client::frame(herald::ws::opcode::text, "s" + std::to_string(i)));
      stalled.push_back(std::move(rc));
    }
    REQUIRE(co_await eventually([&] { return server.users.session_count() == 3; }));
    const std::string big(256 * 1024, 'b');  // larger than the socket buffers: stays queued
    auto frame = herald::message::text(big);
    CHECK(server.users.broadcast(frame) == 3);
    CHECK(frame.use_count() == 4);  // ours + one per queue, no copies
  });
}

TEST_CASE_TEMPLATE("a closed session's uid is unbound", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  run(io, [&]() -> asio::awaitable<void> {
    auto a = co_await login_client(server, "gone");
    auto b = co_await login_client(server, "stays");
    a->close(herald::ws::close_code::normal, "bye");
    auto end = co_await a->read();
    CHECK(!end);
    CHECK(end.status().code == 1000);
    REQUIRE(co_await eventually([&] { return !server.users.online("gone"); }));
    CHECK(server.users.unicast("gone", "x") == 0);
    CHECK(server.users.session_count() == 1);
    REQUIRE(server.ended["gone"].size() == 1);
    CHECK(server.ended["gone"][0].code == 1000);
    CHECK(server.ended["gone"][0].reason == "bye");

    // An abrupt end (no close frame) unbinds too.
    b->stream().close();
    REQUIRE(co_await eventually([&] { return !server.users.online("stays"); }));
    CHECK(server.ended["stays"][0].code == 1006);
    CHECK(server.users.session_count() == 0);
    CHECK(server.users.uid_count() == 0);
  });
}

TEST_CASE_TEMPLATE("duplicate login: multi delivers to every device", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io, {.duplicates = herald::duplicate_login::multi});
  run(io, [&]() -> asio::awaitable<void> {
    auto d1 = co_await login_client(server, "dup");
    auto d2 = co_await login_client(server, "dup");
    CHECK(server.users.unicast("dup", "both") == 2);
    CHECK(co_await next_text(*d1) == "both");
    CHECK(co_await next_text(*d2) == "both");
    // The seed lost the second login when the first disconnected; here it stays bound.
    d1->close();
    CHECK(!(co_await d1->read()));
    REQUIRE(co_await eventually([&] { return server.users.sessions_of("dup") == 1; }));
    CHECK(server.users.unicast("dup", "still here") == 1);
    CHECK(co_await next_text(*d2) == "still here");
  });
}

TEST_CASE_TEMPLATE("duplicate login: replace closes the older session with 4000", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io, {.duplicates = herald::duplicate_login::replace});
  run(io, [&]() -> asio::awaitable<void> {
    auto old_one = co_await connect_client(server.port());
    old_one->send("dup");
    REQUIRE(co_await eventually([&] { return server.users.online("dup"); }));
    auto new_one = co_await connect_client(server.port());
    new_one->send("dup");
    auto end = co_await old_one->read();
    REQUIRE(!end);
    CHECK(end.status().code == 4000);
    CHECK(end.status().reason == "replaced by a newer login");
    CHECK(server.users.sessions_of("dup") == 1);
    CHECK(server.users.unicast("dup", "to the new one") == 1);
    CHECK(co_await next_text(*new_one) == "to the new one");
  });
}

TEST_CASE_TEMPLATE("duplicate login: reject closes the new session with 1008", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io, {.duplicates = herald::duplicate_login::reject});
  run(io, [&]() -> asio::awaitable<void> {
    auto first = co_await login_client(server, "dup");
    auto second = co_await connect_client(server.port());
    second->send("dup");
    auto end = co_await second->read();
    REQUIRE(!end);
    CHECK(end.status().code == 1008);
    CHECK(end.status().reason == "uid already logged in");
    CHECK(server.users.sessions_of("dup") == 1);
    CHECK(server.users.unicast("dup", "to the first") == 1);
    CHECK(co_await next_text(*first) == "to the first");
    REQUIRE(server.refused.size() == 1);
    CHECK(server.refused[0].code == 1008);
  });
}

TEST_CASE_TEMPLATE("login: deadline, refusal and invalid uids close with 1008 and a reason", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  server.login_deadline = 200ms;
  run(io, [&]() -> asio::awaitable<void> {
    auto silent = co_await connect_client(server.port());
    auto end = co_await silent->read();
    REQUIRE(!end);
    CHECK(end.status().code == 1008);
    CHECK(end.status().reason == "login timeout");

    for (std::string bad : {std::string(""), std::string(129, 'x'), std::string("tab\there")}) {
      auto c = co_await connect_client(server.port());
      c->send(bad);
      auto e = co_await c->read();
      REQUIRE(!e);
      CHECK(e.status().code == 1008);
      CHECK(e.status().reason == "invalid uid");
    }
    CHECK(server.users.session_count() == 0);
  });
}

TEST_CASE_TEMPLATE("login: an awaitable authenticator and its refusal reason", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  run(io, [&]() -> asio::awaitable<void> {
    // A server whose authenticator is itself a coroutine (e.g. asks a token service).
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto users = test_server<Policy>::make_registry(io, {});
    auto check = [](std::string_view token) -> asio::awaitable<herald::login_verdict> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
      co_await t.async_wait(asio::use_awaitable);
      if (token.rfind("token-", 0) == 0) co_return herald::login_verdict::accept(std::string(token.substr(6)));
      co_return herald::login_verdict::refuse("bad token");
    };
    std::vector<herald::binding<session, Policy>> kept;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (int i = 0; i < 2; ++i) {
        auto s = co_await acceptor.async_accept(asio::use_awaitable);
        auto ws = co_await herald::accept_websocket(std::move(s));
        auto b = co_await users.login(*ws, check, 5s);
        if (b) kept.push_back(std::move(b));
      }
    }, asio::detached);
    auto good = co_await connect_client(acceptor.local_endpoint().port());
    good->send("token-zoe");
    REQUIRE(co_await eventually([&] { return users.online("zoe"); }));
    auto bad = co_await connect_client(acceptor.local_endpoint().port());
    bad->send("guess");
    auto e = co_await bad->read();
    REQUIRE(!e);
    CHECK(e.status().code == 1008);
    CHECK(e.status().reason == "bad token");
    kept.clear();  // dropping the binding unbinds
    CHECK(!users.online("zoe"));
  });
}

TEST_CASE_TEMPLATE("a client that stops reading is closed at its queue limit while 1,000 others get everything", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  server.options->send_queue_limit = 64 * 1024;
  server.options->close_timeout = 500ms;
  server.send_buffer = 16 * 1024;
  run(io, std::function<asio::awaitable<void>()>([&]() -> asio::awaitable<void> {
    auto slow = co_await raw_client::connect(server.port(), 4096);
    co_await slow.handshake();
    co_await slow.write(raw_client::frame(herald::ws::opcode::text, "slow"));
    REQUIRE(co_await eventually([&] { return server.users.online("slow"); }));

    constexpr int healthy = 1000, rounds = 40, per_round = 5;
    std::vector<session_ptr> clients;
    for (int i = 0; i < healthy; ++i) clients.push_back(co_await login_client(server, "h" + std::to_string(i)));

    // Every healthy client reads everything and checks order and content.
    std::vector<int> next(healthy, 0);
    int bad = 0;
    for (int i = 0; i < healthy; ++i) {
      asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
        while (next[i] < rounds * per_round) {
          auto m = co_await clients[i]->read();
          if (!m) co_return;
          const std::string expected = std::to_string(next[i]) + ":" + std::string(1000, char('a' + next[i] % 26));
          if (m->data != expected) ++bad;
          ++next[i];
        }
      }, asio::detached);
    }
    int sent = 0;
    for (int r = 0; r < rounds; ++r) {
      for (int k = 0; k < per_round; ++k, ++sent)
        server.users.broadcast(std::to_string(sent) + ":" + std::string(1000, char('a' + sent % 26)));
      // A window: the next round waits until the healthy ones have this one.
      REQUIRE(co_await eventually([&] {
        for (int v : next)
          if (v < sent) return false;
        return true;
      }));
    }
    CHECK(bad == 0);
    for (int v : next) CHECK(v == rounds * per_round);
    REQUIRE(co_await eventually([&] { return !server.users.online("slow"); }));
    REQUIRE(server.ended["slow"].size() == 1);
    CHECK(server.ended["slow"][0].code == 1008);
    CHECK(server.ended["slow"][0].reason == "send queue limit exceeded");
    CHECK(server.users.session_count() == healthy);
  }), 120s);
}
