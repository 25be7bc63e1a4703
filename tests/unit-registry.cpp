// registry<ws_session<>, Policy> for both policies on real loopback sockets: login, unicast, broadcast,
// unbinding, duplicate-login policies and a slow consumer among 1,000 healthy sessions.
#include "test_support.hpp"

#include <algorithm>
#include <map>
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
    b->drop();
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

TEST_CASE_TEMPLATE("groups: join, leave, send_to_group, sizes, emptied when sessions end", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  test_server<Policy> server(io);
  run(io, [&]() -> asio::awaitable<void> {
    // The server-side bindings live in test_server's coroutines; this test drives the registry
    // with bindings of its own, made by a second login path.
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto users = test_server<Policy>::make_registry(io, {});
    std::map<std::string, herald::binding<session, Policy>> bound;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (;;) {
        auto s = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(io, [&, s = std::move(s)]() mutable -> asio::awaitable<void> {
          auto ws = co_await herald::accept_websocket(std::move(s));
          auto b = co_await users.login(*ws, [](std::string_view first) { return std::string(first); }, 5s);
          if (!b) co_return;
          const std::string key = b.uid() + "#" + std::to_string(bound.size());
          bound.emplace(key, std::move(b));
          while (co_await ws->read()) {
          }
          bound.erase(key);  // the binding dies with the session: it leaves its groups
        }, asio::detached);
      }
    }, asio::detached);
    const auto port = acceptor.local_endpoint().port();
    auto connect_as = [&](std::string uid) -> asio::awaitable<session_ptr> {
      auto c = co_await connect_client(port);
      c->send(uid);
      const std::size_t before = users.sessions_of(uid);
      REQUIRE(co_await eventually([&] { return users.sessions_of(uid) > before; }));
      co_return c;
    };
    auto a1 = co_await connect_as("ann");
    auto a2 = co_await connect_as("ann");
    auto b = co_await connect_as("ben");
    auto c = co_await connect_as("cid");
    REQUIRE(bound.size() == 4);
    auto& ann1 = bound.at("ann#0");
    auto& ann2 = bound.at("ann#1");
    auto& ben = bound.at("ben#2");

    CHECK(users.join(ann1, "red"));
    CHECK(!users.join(ann1, "red"));  // already a member
    CHECK(users.join(ben, "red"));
    CHECK(users.join(ann2, "blue"));
    CHECK(!users.join(ann2, ""));  // invalid name
    CHECK(users.group_size("red") == 2);
    CHECK(users.group_size("blue") == 1);
    CHECK(users.group_size("green") == 0);
    CHECK(users.group_count() == 2);
    CHECK(users.is_member(ann1, "red"));
    CHECK(!users.is_member(ann2, "red"));

    CHECK(users.send_to_group("red", "to red") == 2);
    CHECK(users.send_to_group("blue", "to blue") == 1);
    CHECK(users.send_to_group("green", "to nobody") == 0);
    CHECK(users.broadcast("end") == 4);
    CHECK(co_await next_text(*a1) == "to red");
    CHECK(co_await next_text(*a1) == "end");
    CHECK(co_await next_text(*a2) == "to blue");
    CHECK(co_await next_text(*a2) == "end");
    CHECK(co_await next_text(*b) == "to red");
    CHECK(co_await next_text(*b) == "end");
    CHECK(co_await next_text(*c) == "end");  // in no group, got no group message

    CHECK(users.leave(ben, "red"));
    CHECK(!users.leave(ben, "red"));
    CHECK(users.group_size("red") == 1);

    // Presence.
    auto ids = users.uids();
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::string>{"ann", "ben", "cid"});
    std::size_t total = 0;
    users.for_each_uid([&](std::string_view, std::size_t n) { total += n; });
    CHECK(total == 4);

    // Sessions that end leave their groups; empty groups disappear.
    a1->close();
    a2->close();
    CHECK(!(co_await a1->read()));
    CHECK(!(co_await a2->read()));
    REQUIRE(co_await eventually([&] { return users.group_size("red") == 0 && users.group_size("blue") == 0; }));
    CHECK(users.group_count() == 0);
    CHECK(users.send_to_group("red", "x") == 0);
    CHECK(!users.online("ann"));
    acceptor.close();
  });
}

TEST_CASE_TEMPLATE("metrics: counts after a scripted run", Policy, herald::single_thread, herald::multi_thread) {
  asio::io_context io;
  auto m = std::make_shared<herald::metrics>();
  herald::registry_options ro;
  ro.metrics = m;
  test_server<Policy> server(io, ro);
  server.options->metrics = m;
  server.options->send_queue_limit = 64 * 1024;
  server.options->close_timeout = 300ms;
  server.send_buffer = 8192;
  server.login_deadline = 2000ms;
  run(io, [&]() -> asio::awaitable<void> {
    auto a = co_await login_client(server, "a");
    auto b = co_await login_client(server, "b");
    auto b2 = co_await login_client(server, "b");
    auto refused = co_await connect_client(server.port());
    refused->send("");  // invalid uid: refused
    CHECK(!(co_await refused->read()));
    auto bad = co_await raw_client::connect(server.port());  // refused handshake
    co_await bad.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    co_await bad.read_all();

    a->send("hello server");  // one message in (after the login message)
    REQUIRE(co_await eventually([&] { return server.received.size() == 1; }));
    CHECK(server.users.unicast("b", "12345") == 2);  // 2 messages, 10 payload bytes out
    CHECK(server.users.broadcast("xyz") == 3);        // 3 messages, 9 bytes out
    CHECK(co_await next_text(*b) == "12345");
    CHECK(co_await next_text(*b2) == "12345");
    CHECK(co_await next_text(*a) == "xyz");
    CHECK(co_await next_text(*b) == "xyz");
    CHECK(co_await next_text(*b2) == "xyz");

    auto s1 = m->snapshot();
    CHECK(s1.sessions == 3);
    CHECK(s1.uids == 2);
    CHECK(s1.logins_ok == 3);
    CHECK(s1.logins_refused == 1);
    CHECK(s1.handshakes_refused == 1);
    CHECK(s1.messages_in == 5);  // 4 login messages + "hello server"
    CHECK(s1.messages_out == 5);
    CHECK(s1.bytes_out == 19);
    CHECK(s1.queued_bytes == 0);
    CHECK(s1.closes_policy == 1);  // the refused login

    // A slow consumer: a raw client that never reads, closed at its queue limit.
    auto slow = co_await raw_client::connect(server.port(), 4096);
    co_await slow.handshake();
    co_await slow.write(raw_client::frame(herald::ws::opcode::text, "slow"));
    REQUIRE(co_await eventually([&] { return server.users.online("slow"); }));
    const std::string big(16 * 1024, 's');
    for (int i = 0; i < 64 && server.users.online("slow"); ++i) server.users.unicast("slow", big);
    REQUIRE(co_await eventually([&] { return !server.users.online("slow"); }));

    a->close(1000, "bye");
    CHECK(!(co_await a->read()));
    b->drop();  // abrupt
    REQUIRE(co_await eventually([&] { return m->snapshot().sessions == 1; }));
    auto s2 = m->snapshot();
    CHECK(s2.slow_consumer_closes == 1);
    CHECK(s2.dropped >= 1);
    CHECK(s2.closes_policy == 2);  // + the slow consumer
    CHECK(s2.closes_normal == 1);
    CHECK(s2.closes_abnormal == 1);
    CHECK(s2.uids == 1);
    CHECK(s2.queued_bytes == 0);
    const std::string text = m->prometheus();
    CHECK(text.find("herald_sessions 1\n") != std::string::npos);
    CHECK(text.find("herald_logins_total 4\n") != std::string::npos);
    CHECK(text.find("herald_closes_total{class=\"abnormal\"} 1\n") != std::string::npos);
    CHECK(text.find("# TYPE herald_sessions gauge") != std::string::npos);
  });
}
