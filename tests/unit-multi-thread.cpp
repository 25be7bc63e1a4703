// registry<ws_session<>, multi_thread> with real threads: two server lanes, clients on a
// third thread, and registry calls from all of them. Exact delivery counts; run under TSan
// in CI (tests/run_all.sh, config "tsan").
#include "test_support.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace herald_test;

namespace {

using mt_registry = herald::registry<session, herald::multi_thread>;

// Server side: `lanes` io_contexts, each on its own thread; the acceptor deals sockets out
// in turn. A logged-in session obeys two commands, run on its own lane's thread:
// "u:<uid>:<text>" unicasts <text> to <uid>, "b:<text>" broadcasts it.
struct threaded_server {
  threaded_lanes lanes;
  std::unique_ptr<mt_registry> users;
  std::mutex mutex;
  std::map<std::string, std::vector<herald::close_status>> ended;  // uid -> how sessions ended
  std::vector<herald::close_status> refused;

  threaded_server(int n, herald::registry_options ro) : lanes(n) {
    users = std::make_unique<mt_registry>(lanes.executors, ro);
    lanes.start([this](tcp::socket s) {
      auto ex = s.get_executor();
      asio::co_spawn(ex, serve(std::move(s)), asio::detached);
    });
  }
  ~threaded_server() { lanes.stop(); }

  unsigned short port() const { return lanes.port(); }

  asio::awaitable<void> serve(tcp::socket s) {
    auto ws = co_await herald::accept_websocket(std::move(s));
    if (!ws) co_return;
    auto bound = co_await users->login(*ws, [](std::string_view first) { return std::string(first); }, 5s);
    if (!bound) {
      std::lock_guard lock(mutex);
      refused.push_back(bound.status());
      co_return;
    }
    const std::string uid = bound.uid();
    while (auto msg = co_await ws->read()) {
      const std::string_view m = msg->text();
      if (m.rfind("u:", 0) == 0) {
        auto [to, body] = herald::split_target(m.substr(2));
        users->unicast(to, body);
      } else if (m.rfind("b:", 0) == 0) {
        users->broadcast(m.substr(2));
      }
    }
    std::lock_guard lock(mutex);
    ended[uid].push_back(ws->status());
  }
};

// A client that keeps every message it receives (on the client thread).
struct recording_client {
  session_ptr ws;
  std::vector<std::string> got;
  bool ended = false;
  herald::close_status why;
};

asio::awaitable<void> record(std::shared_ptr<recording_client> c) {
  while (auto m = co_await c->ws->read()) c->got.push_back(m->data);
  c->ended = true;
  c->why = c->ws->status();
}

asio::awaitable<std::shared_ptr<recording_client>> connect_recording(unsigned short port, const std::string& uid) {
  auto c = std::make_shared<recording_client>();
  c->ws = co_await connect_client(port);
  c->ws->send(uid);
  asio::co_spawn(co_await asio::this_coro::executor, record(c), asio::detached);
  co_return c;
}

}  // namespace

TEST_CASE("multi_thread: unicast and broadcast from every thread, exact counts") {
  threaded_server server(2, {});
  auto& users = *server.users;
  asio::io_context client_io;  // the clients and this test body run on a third thread
  run(client_io, [&]() -> asio::awaitable<void> {
    constexpr int uids = 20, devices = 3, per_sender = 20, broadcasts = 10;
    std::vector<std::shared_ptr<recording_client>> clients;  // index = uid * devices + device
    for (int u = 0; u < uids; ++u)
      for (int d = 0; d < devices; ++d) clients.push_back(co_await connect_recording(server.port(), "u" + std::to_string(u)));
    REQUIRE(co_await eventually([&] { return users.session_count() == uids * devices; }));
    CHECK(users.uid_count() == uids);
    for (int u = 0; u < uids; ++u) CHECK(users.sessions_of("u" + std::to_string(u)) == devices);

    // Every device of uid u sends `per_sender` unicasts to uid u+1, through its own lane.
    for (int u = 0; u < uids; ++u)
      for (int d = 0; d < devices; ++d)
        for (int k = 0; k < per_sender; ++k)
          clients[u * devices + d]->ws->send("u:u" + std::to_string((u + 1) % uids) + ":from " + std::to_string(u) + "/" +
                                             std::to_string(d) + " #" + std::to_string(k));
    // And this thread, which is no lane, broadcasts.
    for (int b = 0; b < broadcasts; ++b) CHECK(users.broadcast("broadcast " + std::to_string(b)) == uids * devices);
    // Unicast from here too.
    CHECK(users.unicast("u0", "direct") == devices);

    const std::size_t each = devices * per_sender + broadcasts;
    REQUIRE(co_await eventually([&] {
      for (std::size_t i = 0; i < clients.size(); ++i) {
        const std::size_t want = each + (i < devices ? 1 : 0);
        if (clients[i]->got.size() < want) return false;
      }
      return true;
    }, 30000ms));

    for (int u = 0; u < uids; ++u) {
      const int from = (u + uids - 1) % uids;
      std::multiset<std::string> expected;
      for (int d = 0; d < devices; ++d)
        for (int k = 0; k < per_sender; ++k)
          expected.insert("from " + std::to_string(from) + "/" + std::to_string(d) + " #" + std::to_string(k));
      for (int b = 0; b < broadcasts; ++b) expected.insert("broadcast " + std::to_string(b));
      if (u == 0) expected.insert("direct");
      for (int d = 0; d < devices; ++d) {
        auto& got = clients[u * devices + d]->got;
        CHECK(std::multiset<std::string>(got.begin(), got.end()) == expected);  // exactly once each, intact
        // Broadcasts from one thread arrive in the order they were made.
        std::vector<std::string> order;
        for (auto& m : got)
          if (m.rfind("broadcast ", 0) == 0) order.push_back(m);
        for (int b = 0; b < static_cast<int>(order.size()); ++b) CHECK(order[b] == "broadcast " + std::to_string(b));
      }
    }

    // Leave: half cleanly, half abruptly; everything is unbound on the lanes' threads.
    for (std::size_t i = 0; i < clients.size(); ++i) {
      if (i % 2) clients[i]->ws->close(herald::ws::close_code::normal, "bye");
      else clients[i]->ws->drop();
    }
    REQUIRE(co_await eventually([&] { return users.session_count() == 0 && users.uid_count() == 0; }, 30000ms));
    CHECK(users.unicast("u1", "nobody") == 0);
  });
}

TEST_CASE("multi_thread: racing duplicate logins are decided once per uid") {
  for (auto policy : {herald::duplicate_login::replace, herald::duplicate_login::reject}) {
    CAPTURE(static_cast<int>(policy));
    threaded_server server(2, {.duplicates = policy});
    auto& users = *server.users;
    asio::io_context client_io;
    run(client_io, [&]() -> asio::awaitable<void> {
      constexpr int pairs = 40;
      std::vector<std::shared_ptr<recording_client>> first, second;
      // Both logins of a uid are sent back to back; consecutive sockets land on different lanes.
      for (int i = 0; i < pairs; ++i) {
        auto a = std::make_shared<recording_client>();
        auto b = std::make_shared<recording_client>();
        a->ws = co_await connect_client(server.port());
        b->ws = co_await connect_client(server.port());
        a->ws->send("dup" + std::to_string(i));
        b->ws->send("dup" + std::to_string(i));
        asio::co_spawn(client_io, record(a), asio::detached);
        asio::co_spawn(client_io, record(b), asio::detached);
        first.push_back(a);
        second.push_back(b);
      }
      // Each uid ends with exactly one session, the other one closed with the policy's code.
      REQUIRE(co_await eventually([&] {
        for (int i = 0; i < pairs; ++i)
          if (first[i]->ended == second[i]->ended) return false;
        return users.session_count() == pairs;
      }, 30000ms));
      const std::uint16_t code = policy == herald::duplicate_login::replace ? 4000 : 1008;
      for (int i = 0; i < pairs; ++i) {
        auto& loser = first[i]->ended ? first[i] : second[i];
        CHECK(loser->why.code == code);
        CHECK(users.sessions_of("dup" + std::to_string(i)) == 1);
        CHECK(users.unicast("dup" + std::to_string(i), "winner") == 1);
      }
      CHECK(users.uid_count() == pairs);
      for (int i = 0; i < pairs; ++i) {
        auto& winner = first[i]->ended ? second[i] : first[i];
        REQUIRE(co_await eventually([&] { return winner->got.size() == 1; }));
        CHECK(winner->got[0] == "winner");
        winner->ws->close();
      }
      REQUIRE(co_await eventually([&] { return users.session_count() == 0; }, 30000ms));
    });
  }
}

TEST_CASE("running_in and is_strand tell a strand from the context under it") {
  asio::io_context io;
  const asio::any_io_executor plain = io.get_executor();
  const asio::any_io_executor strand = asio::make_strand(io);
  CHECK_FALSE(herald::detail::is_strand(plain));
  CHECK_FALSE(herald::detail::is_strand(io.get_executor()));
  CHECK(herald::detail::is_strand(strand));
  CHECK(herald::detail::is_strand(asio::make_strand(io)));
  CHECK_FALSE(herald::detail::running_in(plain));
  CHECK_FALSE(herald::detail::running_in(strand));
  int ran = 0;
  asio::post(io, [&] {
    CHECK(herald::detail::running_in(plain));
    CHECK_FALSE(herald::detail::running_in(strand));  // the context's thread, but not in the strand
    ++ran;
  });
  asio::post(strand, [&] {
    CHECK(herald::detail::running_in(plain));
    CHECK(herald::detail::running_in(strand));
    ++ran;
  });
  io.run();
  CHECK(ran == 2);
}

// Sessions need not have a thread of their own: one io_context run by two threads, a strand per
// session. Writes are then not corked (the round may end on the other thread), and a send
// from another session's strand is posted, not run inline. Every echo, every relay between
// sessions and every push from a third thread must arrive exactly once, in order.
TEST_CASE("sessions on strands of one io_context run by two threads") {
  asio::io_context server_io(2);
  auto guard = asio::make_work_guard(server_io);
  tcp::acceptor acceptor(server_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::mutex mutex;
  std::vector<session_ptr> server_sessions;
  std::atomic<int> ended{0};
  auto echo = [&](tcp::socket s) -> asio::awaitable<void> {
    auto ws = co_await herald::accept_websocket(std::move(s));
    if (!ws) co_return;
    std::size_t me = 0;
    {
      std::lock_guard lock(mutex);
      me = server_sessions.size();
      server_sessions.push_back(ws);
    }
    while (auto msg = co_await ws->read()) {
      ws->send(msg->text());
      session_ptr next;
      {
        std::lock_guard lock(mutex);
        next = server_sessions[(me + 1) % server_sessions.size()];
      }
      // From this strand to the next session's: posted there (a race under TSan if not).
      next->send("r:" + msg->data);
    }
    ++ended;
  };
  asio::co_spawn(server_io, [&]() -> asio::awaitable<void> {
    for (;;) {
      herald::error_code ec;
      auto s = co_await acceptor.async_accept(asio::make_strand(server_io), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      auto ex = s.get_executor();
      asio::co_spawn(ex, echo(std::move(s)), asio::detached);
    }
  }, asio::detached);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&] { server_io.run(); });

  constexpr int clients_n = 16, per_client = 200;
  asio::io_context client_io;
  run(client_io, [&]() -> asio::awaitable<void> {
    std::vector<session_ptr> clients;
    for (int i = 0; i < clients_n; ++i) {
      clients.push_back(co_await connect_client(acceptor.local_endpoint().port()));
      // One at a time, so that server session i is client i's and relays go to client i+1.
      REQUIRE(co_await eventually([&] {
        std::lock_guard lock(mutex);
        return server_sessions.size() == clients.size();
      }));
    }
    for (int k = 0; k < per_client; ++k)
      for (int i = 0; i < clients_n; ++i) clients[i]->send("c" + std::to_string(i) + " #" + std::to_string(k));
    {
      std::lock_guard lock(mutex);  // sends from this thread, which runs none of the strands
      for (auto& s : server_sessions) CHECK(s->send("push") == herald::send_result::posted);
    }
    for (int i = 0; i < clients_n; ++i) {
      const int from = (i + clients_n - 1) % clients_n;
      int echoes = 0, relays = 0, pushes = 0;
      while (echoes + relays + pushes < 2 * per_client + 1) {
        const std::string m = co_await next_text(*clients[i]);
        if (m == "push") ++pushes;
        else if (m.rfind("r:", 0) == 0) CHECK(m == "r:c" + std::to_string(from) + " #" + std::to_string(relays++));
        else CHECK(m == "c" + std::to_string(i) + " #" + std::to_string(echoes++));
      }
      CHECK(echoes == per_client);
      CHECK(relays == per_client);
      CHECK(pushes == 1);
    }
    for (auto& c : clients) c->close(herald::ws::close_code::normal, "bye");
    for (auto& c : clients)
      while (co_await c->read()) {
      }
    CHECK(co_await eventually([&] { return ended == clients_n; }));
  });
  asio::post(server_io, [&] { acceptor.close(); });
  guard.reset();
  for (auto& t : threads) t.join();
  std::lock_guard lock(mutex);
  CHECK(server_sessions.size() == clients_n);
}

namespace {

// A server on one thread with any registry policy made on that thread's io_context; its
// sessions obey "u:<uid>:<text>" (unicast from the session's thread, as clients talk).
template <class Registry>
struct one_thread_server {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
  Registry users;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::thread thread;

  template <class... Args>
  explicit one_thread_server(Args&&... args) : users(make(io, std::forward<Args>(args)...)) {
    asio::co_spawn(io, herald::accept_loop(acceptor, [this](tcp::socket s) {
                     asio::co_spawn(io, serve(std::move(s)), asio::detached);
                   }), asio::detached);
    thread = std::thread([this] { io.run(); });
  }
  ~one_thread_server() {
    asio::post(io, [this] { acceptor.close(); });
    guard.reset();
    io.stop();
    thread.join();
  }
  static Registry make(asio::io_context&) { return Registry(); }
  static Registry make(asio::io_context& ctx, bool lanes) {
    (void)lanes;
    return Registry(std::vector<asio::any_io_executor>{ctx.get_executor()});
  }
  unsigned short port() const { return acceptor.local_endpoint().port(); }

  asio::awaitable<void> serve(tcp::socket s) {
    auto ws = co_await herald::accept_websocket(std::move(s));
    if (!ws) co_return;
    auto bound = co_await users.login(*ws, [](std::string_view first) { return std::string(first); }, 5s);
    if (!bound) co_return;
    while (auto msg = co_await ws->read()) {
      const std::string_view m = msg->text();
      if (m.rfind("u:", 0) == 0) {
        auto [to, body] = herald::split_target(m.substr(2));
        users.unicast(to, body);
      }
    }
  }
};

// Two worker threads (neither the server's nor the clients') broadcast, unicast and query
// while the clients talk to each other through the server; every message is counted.
template <class Server>
void workers_push_while_clients_talk(Server& server) {
  auto& users = server.users;
  static constexpr int clients_n = 12, talk = 30, rounds = 150, workers_n = 2;
  asio::io_context client_io;
  run(client_io, [&]() -> asio::awaitable<void> {
    std::vector<std::shared_ptr<recording_client>> clients;
    for (int i = 0; i < clients_n; ++i) clients.push_back(co_await connect_recording(server.port(), "c" + std::to_string(i)));
    // Queries from this thread (not the server's) wait for the server's answer.
    REQUIRE(co_await eventually([&] { return users.session_count() == clients_n; }));
    CHECK(users.uid_count() == clients_n);
    CHECK(users.online("c3"));
    CHECK(!users.online("nobody"));
    CHECK(users.sessions_of("c5") == 1);

    // First alone, while the server's thread is idle: a write corked on the wrong thread
    // used to leave the session muted for good.
    std::thread([&users] {
      users.broadcast("alone b");
      users.unicast("c0", "alone u");
    }).join();
    REQUIRE(co_await eventually([&] {
      for (auto& c : clients)
        if (c->got.size() < 1 + (c == clients[0] ? 1u : 0u)) return false;
      return true;
    }));
    for (auto& c : clients) {
      CHECK(c->got[0] == "alone b");
      c->got.erase(c->got.begin());
    }
    CHECK(clients[0]->got == std::vector<std::string>{"alone u"});
    clients[0]->got.clear();

    std::atomic<int> wrong_answers{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < workers_n; ++w) {
      workers.emplace_back([&users, &wrong_answers, w] {
        for (int r = 0; r < rounds; ++r) {
          users.broadcast("w" + std::to_string(w) + " b" + std::to_string(r));
          users.unicast("c" + std::to_string(r % clients_n), "w" + std::to_string(w) + " u" + std::to_string(r));
          if (!users.online("c" + std::to_string(r % clients_n)) || users.uid_count() != clients_n) ++wrong_answers;
        }
      });
    }
    // Meanwhile every client talks to the next one, through the server's thread.
    for (int i = 0; i < clients_n; ++i)
      for (int k = 0; k < talk; ++k)
        clients[i]->ws->send("u:c" + std::to_string((i + 1) % clients_n) + ":talk " + std::to_string(i) + " " + std::to_string(k));

    // Wait for the workers without blocking this thread's io_context (the clients read on it).
    std::atomic<bool> joined{false};
    std::thread joiner([&] {
      for (auto& t : workers) t.join();
      joined = true;
    });
    const bool done = co_await eventually([&] { return joined.load(); }, 60000ms);
    joiner.join();
    REQUIRE(done);
    CHECK(wrong_answers == 0);

    auto expected = [&](int i) {
      std::size_t n = workers_n * rounds + talk;  // every broadcast, and the talk of the previous client
      for (int r = 0; r < rounds; ++r)
        if (r % clients_n == i) n += workers_n;
      return n;
    };
    REQUIRE(co_await eventually([&] {
      for (int i = 0; i < clients_n; ++i)
        if (clients[i]->got.size() < expected(i)) return false;
      return true;
    }, 60000ms));
    for (int i = 0; i < clients_n; ++i) {
      std::multiset<std::string> got(clients[i]->got.begin(), clients[i]->got.end());
      CHECK(clients[i]->got.size() == expected(i));
      int missing = 0, twice = 0;
      auto once = [&](const std::string& m) {
        const auto n = got.count(m);
        missing += n == 0;
        twice += n > 1;
      };
      for (int w = 0; w < workers_n; ++w)
        for (int r = 0; r < rounds; ++r) {
          once("w" + std::to_string(w) + " b" + std::to_string(r));
          if (r % clients_n == i) once("w" + std::to_string(w) + " u" + std::to_string(r));
        }
      const int from = (i + clients_n - 1) % clients_n;
      for (int k = 0; k < talk; ++k) once("talk " + std::to_string(from) + " " + std::to_string(k));
      CHECK(missing == 0);
      CHECK(twice == 0);
      // Each worker's broadcasts arrive in the order it sent them.
      for (int w = 0; w < workers_n; ++w) {
        int last = -1, out_of_order = 0;
        for (auto& m : clients[i]->got) {
          const std::string prefix = "w" + std::to_string(w) + " b";
          if (m.rfind(prefix, 0) != 0) continue;
          const int r = std::stoi(m.substr(prefix.size()));
          out_of_order += r < last;
          last = r;
        }
        CHECK(out_of_order == 0);
      }
    }
    // A query for something absent, and close_all, from this thread.
    CHECK(users.sessions_of("nobody") == 0);
    CHECK(users.close_all(herald::ws::close_code::going_away, "bye") <= clients_n);
    REQUIRE(co_await eventually([&] {
      for (auto& c : clients)
        if (!c->ended) return false;
      return true;
    }, 30000ms));
    for (auto& c : clients) CHECK(c->why.code == 1001);
  });
}

}  // namespace

TEST_CASE("single_thread: worker threads broadcast, unicast and query while clients talk") {
  one_thread_server<herald::registry<session, herald::single_thread>> server;
  workers_push_while_clients_talk(server);
}

TEST_CASE("multi_thread: threads that are no lane broadcast, unicast and query while clients talk") {
  one_thread_server<herald::registry<session, herald::multi_thread>> server(true);
  workers_push_while_clients_talk(server);
}
