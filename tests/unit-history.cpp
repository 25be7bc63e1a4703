// Per-uid history (registry_options::history, herald/history.hpp) on single_thread and
// multi_thread, over real loopback sockets: offsets, epochs, resume with replay and the seam
// to live messages (senders on other threads keep sending while clients drop with a TCP RST
// and resume), not recovered (overflow, another epoch, a future offset, age), group and
// broadcast messages outside history, the sweep of old messages and idle streams, and the
// cost when history is off.
#include "history_support.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace herald_test;

namespace {

// A server on `lanes` io_contexts, each on a thread of its own (single_thread: one). A
// session logs in with its first message as uid and the position in its URL; then
// "<uid>:<text>" unicasts, "all:<text>" broadcasts, "join:<g>" joins, "group:<g>:<text>"
// sends to a group.
template <class Policy>
struct history_server {
  using registry_type = herald::registry<session, Policy>;
  threaded_lanes lanes;
  std::unique_ptr<registry_type> users;
  std::mutex mutex;
  std::vector<herald::resume_result> logins;  // every login's history(), in order

  history_server(int n, herald::registry_options ro) : lanes(n) {
    if constexpr (std::is_same_v<Policy, herald::multi_thread>) users = std::make_unique<registry_type>(lanes.executors, ro);
    else users = std::make_unique<registry_type>(lanes.executors.front(), ro);
    lanes.start([this](tcp::socket s) {
      auto ex = s.get_executor();
      asio::co_spawn(ex, serve(std::move(s)), asio::detached);
    });
  }
  ~history_server() { lanes.stop(); }
  unsigned short port() const { return lanes.port(); }

  asio::awaitable<void> serve(tcp::socket s) {
    auto ws = co_await herald::accept_websocket(std::move(s));
    if (!ws) co_return;
    const std::optional<herald::stream_position> from = position_in(ws->target());
    auto bound = co_await users->login(*ws, [&from](std::string_view first) {
      return herald::login_verdict::accept(std::string(first)).resume_from(from);
    }, 5s);
    if (!bound) co_return;
    {
      std::lock_guard lock(mutex);
      logins.push_back(bound.history());
    }
    while (auto msg = co_await ws->read()) {
      auto [to, body] = herald::split_target(msg->text());
      if (to == "all") users->broadcast(body);
      else if (to == "join") users->join(bound, body);
      else if (to == "group") {
        auto [g, text] = herald::split_target(body);
        users->send_to_group(g, text);
      } else users->unicast(to, body);
    }
  }
};

template <class Policy>
int lanes_for() {
  return std::is_same_v<Policy, herald::multi_thread> ? 2 : 1;
}

}  // namespace

TEST_CASE_TEMPLATE("history: offsets per uid, a fresh login's position, resume replays exactly what was missed, then live",
                   Policy, herald::single_thread, herald::multi_thread) {
  history_server<Policy> server(lanes_for<Policy>(), history_options(100));
  auto& users = *server.users;
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    auto alice = std::make_shared<resumer>();
    alice->uid = "alice";
    auto c = co_await open_as(server.port(), alice);
    co_await read_some(alice, c, 0, true);
    REQUIRE(alice->welcomes.size() == 1);
    CHECK(alice->welcomes[0].state == herald::resume_state::fresh);
    CHECK(alice->welcomes[0].position.offset == 0);
    CHECK(alice->welcomes[0].position.epoch.size() == 16);
    const std::string epoch = alice->pos.epoch;

    // Offsets count per uid: bob's stream is another one.
    for (int i = 1; i <= 3; ++i) {
      const herald::recorded_delivery d = users.unicast_recorded("alice", herald::message::text("a" + std::to_string(i)));
      CHECK(d.recorded);
      CHECK(d.queued == 1);
      CHECK(d.position == herald::stream_position{epoch, static_cast<std::uint64_t>(i)});
    }
    const herald::recorded_delivery to_bob = users.unicast_recorded("bob", herald::message::text("b1"));
    CHECK(to_bob.recorded);
    CHECK(to_bob.queued == 0);  // offline, but recorded
    CHECK(to_bob.position.offset == 1);
    CHECK(to_bob.position.epoch != epoch);  // each stream has its own epoch
    co_await read_some(alice, c, 3);
    CHECK(alice->got == numbered("a", 1, 3));

    // Gone (RST, no close frame); five messages meanwhile, then back with the position.
    c->drop(true);
    REQUIRE(co_await eventually([&] { return !users.online("alice"); }));
    for (int i = 4; i <= 8; ++i) users.unicast("alice", "a" + std::to_string(i));
    c = co_await open_as(server.port(), alice);
    co_await read_some(alice, c, 5, true);
    REQUIRE(alice->welcomes.size() == 2);
    CHECK(alice->welcomes[1].state == herald::resume_state::recovered);
    CHECK(alice->welcomes[1].position == herald::stream_position{epoch, 8});
    CHECK(alice->got == numbered("a", 1, 8));
    // Live again: the next one is 9.
    CHECK(users.unicast_recorded("alice", herald::message::text("a9")).queued == 1);
    co_await read_some(alice, c, 1);
    CHECK(alice->got == numbered("a", 1, 9));
    CHECK(alice->error.empty());
    CHECK(users.history_position("alice") == herald::stream_position{epoch, 9});
    {
      std::lock_guard lock(server.mutex);
      REQUIRE(server.logins.size() == 2);
      CHECK(server.logins[1].state == herald::resume_state::recovered);
      CHECK(server.logins[1].replayed == 5);
    }

    // bob logs in later and resumes from the start of his stream: b1 is replayed.
    auto bob = std::make_shared<resumer>();
    bob->uid = "bob";
    bob->pos = {to_bob.position.epoch, 0};
    auto b = co_await open_as(server.port(), bob);
    co_await read_some(bob, b, 1, true);
    CHECK(bob->welcomes.at(0).state == herald::resume_state::recovered);
    CHECK(bob->got == std::vector<std::string>{"b1"});
    // A second device of alice at the end of the stream gets what comes next, not the past.
    auto alice2 = std::make_shared<resumer>();
    alice2->uid = "alice";
    auto c2 = co_await open_as(server.port(), alice2);
    co_await read_some(alice2, c2, 0, true);
    CHECK(alice2->welcomes.at(0).state == herald::resume_state::fresh);
    CHECK(alice2->pos == herald::stream_position{epoch, 9});
    CHECK(users.unicast_recorded("alice", herald::message::text("a10")).queued == 2);
    co_await read_some(alice, c, 1);
    co_await read_some(alice2, c2, 1);
    CHECK(alice2->got == std::vector<std::string>{"a10"});
    CHECK(alice->got.back() == "a10");
    c->close();
    c2->close();
    b->close();
  });
}

TEST_CASE_TEMPLATE("history: not recovered when history no longer covers the position (overflow, the future, another epoch), then live", Policy, herald::single_thread, herald::multi_thread) {
  history_server<Policy> server(lanes_for<Policy>(), history_options(5));
  auto& users = *server.users;
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    struct attempt {
      std::uint64_t from;  // in the uid's epoch, unless `epoch` is set
      std::string epoch;
      herald::resume_state state;
      std::vector<std::string> replay;
    };
    const std::vector<attempt> attempts{
        {6, "", herald::resume_state::not_recovered, {}},         // 7 was trimmed (overflow: 8..12 kept)
        {7, "", herald::resume_state::recovered, numbered("c", 8, 12)},
        {12, "", herald::resume_state::recovered, {}},
        {13, "", herald::resume_state::not_recovered, {}},        // an offset from the future
        {11, "0123456789abcdef", herald::resume_state::not_recovered, {}},  // another epoch
        {11, "not-an-epoch", herald::resume_state::not_recovered, {}},
    };
    int k = 0;
    for (const auto& a : attempts) {
      const std::string uid = "carol" + std::to_string(k++);
      for (int i = 1; i <= 12; ++i) users.unicast(uid, "c" + std::to_string(i));
      const std::string epoch = users.history_position(uid)->epoch;
      auto carol = std::make_shared<resumer>();
      carol->uid = uid;
      carol->pos = {a.epoch.empty() ? epoch : a.epoch, a.from};
      auto c = co_await open_as(server.port(), carol);
      co_await read_some(carol, c, a.replay.size(), true);
      REQUIRE(carol->welcomes.size() == 1);
      CHECK(carol->welcomes[0].state == a.state);
      CHECK(carol->welcomes[0].position == herald::stream_position{epoch, 12});
      CHECK(carol->got == a.replay);
      // Then live from 13, whatever happened (when not recovered the client took the position).
      CHECK(users.unicast_recorded(uid, herald::message::text("live")).queued == 1);
      co_await read_some(carol, c, 1);
      REQUIRE(!carol->got.empty());
      CHECK(carol->got.back() == "live");
      CHECK(carol->error.empty());
      c->close();
    }
  });
}

TEST_CASE_TEMPLATE("history: a client that keeps dropping (RST) and resuming while a thread and a session send to its uid gets "
                   "every message exactly once, in order",
                   Policy, herald::single_thread, herald::multi_thread) {
  history_server<Policy> server(lanes_for<Policy>(), history_options(10000));
  auto& users = *server.users;
  constexpr int from_thread = 3000, from_session = 3000;
  std::atomic<bool> go{false};
  // A thread that is no lane of the server: single_thread hands its unicasts over,
  // multi_thread takes the shard lock from here and posts to the session's lane.
  std::thread sender([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 1; i <= from_thread; ++i) {
      users.unicast("dana", herald::message::text("t" + std::to_string(i)));
      if (i % 16 == 0) std::this_thread::sleep_for(1ms);  // spread over the client's rounds
    }
  });
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    // eve: a session that sends "dana:s<i>" through the server all along (on multi_thread,
    // every other connection of dana is on eve's lane, where eve's unicasts are delivered
    // inline while the thread's wait in the lane's queue).
    auto eve = std::make_shared<resumer>();
    eve->uid = "eve";
    auto e = co_await open_as(server.port(), eve);
    co_await read_some(eve, e, 0, true);
    auto dana = std::make_shared<resumer>();
    dana->uid = "dana";
    auto c = co_await open_as(server.port(), dana);
    co_await read_some(dana, c, 0, true);
    CHECK(dana->pos.offset == 0);
    go = true;
    asio::co_spawn(io, [e]() -> asio::awaitable<void> {
      asio::steady_timer pause(co_await asio::this_coro::executor);
      for (int i = 1; i <= from_session; ++i) {
        e->send("dana:s" + std::to_string(i));
        if (i % 16 == 0) {
          pause.expires_after(1ms);
          co_await pause.async_wait(asio::use_awaitable);
        }
      }
    }, asio::detached);
    const std::size_t total = from_thread + from_session;
    int rounds = 0;
    while (dana->got.size() < total && dana->error.empty() && rounds < 20000) {
      const std::size_t more = std::min<std::size_t>(1 + static_cast<std::size_t>(rounds % 97), total - dana->got.size());
      co_await read_some(dana, c, more);
      c->drop(true);  // no close frame: whatever was on its way to this connection is lost with it
      c = co_await open_as(server.port(), dana);
      co_await read_some(dana, c, 0, true);
      REQUIRE(dana->welcomes.back().state == herald::resume_state::recovered);
      ++rounds;
    }
    CHECK_MESSAGE(dana->error.empty(), dana->error);
    CHECK(rounds > 20);
    std::vector<std::string> from_t, from_s;
    for (auto& g : dana->got) (g[0] == 't' ? from_t : from_s).push_back(g);
    CHECK(from_t == numbered("t", 1, from_thread));
    CHECK(from_s == numbered("s", 1, from_session));
    CHECK(dana->pos.offset == total);
    std::size_t replayed = 0;
    {
      std::lock_guard lock(server.mutex);
      for (auto& l : server.logins) replayed += l.replayed;
    }
    CHECK(replayed > 0);  // the drops lost messages in flight, and the replays brought them back
    MESSAGE(rounds << " reconnections, " << replayed << " messages replayed");
    c->close();
    e->close();
  });
  sender.join();
}

TEST_CASE_TEMPLATE("history: group and broadcast messages are formatted with offset 0 and not recorded", Policy, herald::single_thread,
                   herald::multi_thread) {
  history_server<Policy> server(lanes_for<Policy>(), history_options(10));
  auto& users = *server.users;
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    auto fay = std::make_shared<resumer>();
    fay->uid = "fay";
    auto c = co_await open_as(server.port(), fay);
    co_await read_some(fay, c, 0, true);
    c->send("join:g");
    REQUIRE(co_await eventually([&] { return users.group_size("g") == 1; }));
    c->send("group:g:to the group");
    c->send("all:to everyone");
    c->send("fay:to fay");
    co_await read_some(fay, c, 1);
    CHECK(fay->unrecorded == std::vector<std::string>{"to the group", "to everyone"});
    CHECK(fay->got == std::vector<std::string>{"to fay"});
    CHECK(users.history_position("fay")->offset == 1);
    c->close();
  });
}

TEST_CASE_TEMPLATE("history off: nothing recorded, frames untouched, no welcome, binding says off", Policy, herald::single_thread,
                   herald::multi_thread) {
  herald::registry_options ro = history_options(0);  // format and welcome set, but history off
  history_server<Policy> server(lanes_for<Policy>(), ro);
  auto& users = *server.users;
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    auto c = co_await connect_client(server.port());
    c->send("gus");
    REQUIRE(co_await eventually([&] { return users.online("gus"); }));
    const herald::recorded_delivery d = users.unicast_recorded("gus", herald::message::text("plain"));
    CHECK(!d.recorded);
    CHECK(d.queued == 1);
    CHECK(co_await next_text(*c) == "plain");  // no header, and no welcome before it
    CHECK(!users.history_position("gus"));
    CHECK(users.history_stats().streams == 0);
    CHECK(users.unicast_recorded("nobody", herald::message::text("lost")).queued == 0);
    CHECK(users.history_stats().streams == 0);
    {
      std::lock_guard lock(server.mutex);
      REQUIRE(server.logins.size() == 1);
      CHECK(server.logins[0].state == herald::resume_state::off);
    }
    c->close();
  });
}

TEST_CASE_TEMPLATE("history: old messages expire, idle streams of absent uids are swept, an online uid keeps its stream", Policy,
                   herald::single_thread, herald::multi_thread) {
  herald::registry_options ro = history_options(100);
  ro.history.max_age = 40ms;
  ro.history.position_ttl = 80ms;
  history_server<Policy> server(lanes_for<Policy>(), ro);
  auto& users = *server.users;
  asio::io_context io;
  run(io, [&]() -> asio::awaitable<void> {
    auto hal = std::make_shared<resumer>();
    hal->uid = "hal";
    auto c = co_await open_as(server.port(), hal);
    co_await read_some(hal, c, 0, true);
    for (int i = 1; i <= 3; ++i) {
      users.unicast_recorded("hal", herald::message::text("h" + std::to_string(i)));
      users.unicast_recorded("absent", herald::message::text("x" + std::to_string(i)));
    }
    co_await read_some(hal, c, 3);
    const herald::history_stats before = users.history_stats();
    CHECK(before.streams == 2);
    CHECK(before.messages == 6);
    CHECK(before.bytes > 6 * 4);
    // Bounded waits (hang guards): the sweep takes the messages, then the absent uid's stream.
    CHECK(co_await eventually([&] { return users.history_stats().messages == 0; }));
    CHECK(co_await eventually([&] { return users.history_stats().streams == 1; }));
    CHECK(!users.history_position("absent"));
    CHECK(users.history_position("hal")->offset == 3);  // online: kept, with its epoch
    // The expired messages are no longer replayable: from 1, not recovered.
    auto hal2 = std::make_shared<resumer>();
    hal2->uid = "hal";
    hal2->pos = {hal->pos.epoch, 1};
    auto c2 = co_await open_as(server.port(), hal2);
    co_await read_some(hal2, c2, 0, true);
    CHECK(hal2->welcomes.at(0).state == herald::resume_state::not_recovered);
    CHECK(hal2->pos == herald::stream_position{hal->pos.epoch, 3});
    // From the end, recovered (nothing to replay).
    auto hal3 = std::make_shared<resumer>();
    hal3->uid = "hal";
    hal3->pos = hal->pos;
    auto c3 = co_await open_as(server.port(), hal3);
    co_await read_some(hal3, c3, 0, true);
    CHECK(hal3->welcomes.at(0).state == herald::resume_state::recovered);
    // Everyone leaves: the stream goes too, and a later login starts a new epoch.
    c->close();
    c2->close();
    c3->close();
    REQUIRE(co_await eventually([&] { return !users.online("hal"); }));
    CHECK(co_await eventually([&] { return users.history_stats().streams == 0; }));
    auto hal4 = std::make_shared<resumer>();
    hal4->uid = "hal";
    hal4->pos = hal->pos;
    auto c4 = co_await open_as(server.port(), hal4);
    co_await read_some(hal4, c4, 0, true);
    CHECK(hal4->welcomes.at(0).state == herald::resume_state::not_recovered);
    CHECK(hal4->pos.epoch != hal->pos.epoch);
    CHECK(hal4->pos.offset == 0);
    c4->close();
  });
}
