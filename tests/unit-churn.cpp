// Churn: rounds of clients that connect, log in, receive a unicast and leave, half with a
// closing handshake and half abruptly (FIN or RST without a close frame). After every round
// the registry is empty, nothing is delivered to a departed uid, and every session object on
// both sides has been destroyed (no reference cycle keeps one alive; LeakSanitizer checks
// the rest at exit in the sanitizer build).
#include "test_support.hpp"

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

using namespace herald_test;

namespace {

enum class departure { clean, fin, reset };

departure departure_of(int i) {
  if (i % 2 == 0) return departure::clean;
  return i % 4 == 1 ? departure::fin : departure::reset;
}

}  // namespace

TEST_CASE("churn: 5 rounds of 500 clients leave nothing behind") {
  asio::io_context io;
  test_server server(io);
  constexpr int rounds = 5, per_round = 500;
  run(io, std::function<asio::awaitable<void>()>([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int round = 0; round < rounds; ++round) {
      CAPTURE(round);
      std::vector<std::string> uids;
      for (int i = 0; i < per_round; ++i) uids.push_back("r" + std::to_string(round) + "-" + std::to_string(i));

      int logged_in = 0, got_unicast = 0, left = 0, wrong = 0;
      std::vector<std::weak_ptr<session>> client_sides;
      for (int i = 0; i < per_round; ++i) {
        asio::co_spawn(ex, [&, i]() -> asio::awaitable<void> {
          auto c = co_await connect_client(server.port());
          client_sides.push_back(c);
          c->send(uids[static_cast<std::size_t>(i)]);
          ++logged_in;  // sent; the server binds it when the message arrives
          auto m = co_await c->read();
          if (!m || m->data != "hello " + uids[static_cast<std::size_t>(i)]) ++wrong;
          else ++got_unicast;
          switch (departure_of(i)) {
            case departure::clean:
              c->close(herald::ws::close_code::normal, "bye");
              while (co_await c->read()) {
              }
              break;
            case departure::fin:
              c->drop();
              break;
            case departure::reset:
              c->drop(true);  // RST
              break;
          }
          ++left;
        }, [&](std::exception_ptr e) {
          if (e) ++wrong;
        });
      }
      REQUIRE(co_await eventually([&] { return server.users.session_count() == per_round; }, 30000ms));
      CHECK(server.users.uid_count() == per_round);
      int queued = 0;
      for (const auto& uid : uids) queued += static_cast<int>(server.users.unicast(uid, "hello " + uid));
      CHECK(queued == per_round);

      REQUIRE(co_await eventually([&] { return left + wrong == per_round; }, 30000ms));
      CHECK(wrong == 0);
      CHECK(got_unicast == per_round);
      CHECK(logged_in == per_round);

      // Everyone has left: the registry is empty and nothing reaches a departed uid.
      REQUIRE(co_await eventually([&] { return server.users.session_count() == 0 && server.users.uid_count() == 0; }, 30000ms));
      int delivered = 0;
      for (const auto& uid : uids) delivered += static_cast<int>(server.users.unicast(uid, "too late"));
      CHECK(delivered == 0);
      CHECK(server.users.broadcast("to nobody") == 0);

      // Each ended as it left: 1000 with the reason, or 1006 without a close frame.
      int clean = 0, abrupt = 0, odd = 0;
      for (int i = 0; i < per_round; ++i) {
        const auto& e = server.ended[uids[static_cast<std::size_t>(i)]];
        if (e.size() != 1) {
          ++odd;
          continue;
        }
        if (departure_of(i) == departure::clean) (e[0].code == 1000 && e[0].reason == "bye") ? ++clean : ++odd;
        else (e[0].code == 1006) ? ++abrupt : ++odd;
      }
      CHECK(clean == per_round / 2);
      CHECK(abrupt == per_round / 2);
      CHECK(odd == 0);

      // No session object outlives its connection, on either side.
      std::vector<std::weak_ptr<session>> server_sides;
      for (auto& [uid, list] : server.sessions)
        for (auto& s : list) server_sides.push_back(s);
      server.sessions.clear();
      server.ended.clear();
      auto all_gone = [&] {
        for (auto& w : server_sides)
          if (!w.expired()) return false;
        for (auto& w : client_sides)
          if (!w.expired()) return false;
        return true;
      };
      REQUIRE(co_await eventually(all_gone, 10000ms));
      CHECK(server_sides.size() == per_round);
      CHECK(client_sides.size() == per_round);
    }
    CHECK(server.refused.empty());
  }), 120s);
}
