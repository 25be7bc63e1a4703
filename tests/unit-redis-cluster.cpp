// registry<Session, redis_cluster> in process: several nodes (registries) in one io_context
// behind a real redis-server that the test starts on a free 127.0.0.1 port and kills by PID.
// Groups across nodes (every member exactly once, the group channel held exactly while a
// node has a member), cluster-wide presence against known numbers (and the local fallback
// while Redis is down), and metrics::redis_reconnects after a restart.
#include "history_support.hpp"

#include <herald/policy/redis_cluster.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>

extern char** environ;

using namespace herald_test;
using cluster_registry = herald::registry<session, herald::redis_cluster>;

namespace {

unsigned short free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// A redis-server of our own, without persistence; killed by its PID only.
struct redis_server {
  unsigned short port = free_port();
  std::string dir;
  pid_t pid = -1;

  redis_server() {
    char tmpl[] = "/tmp/herald-unit-redis-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    dir = tmpl;
    start();
  }
  ~redis_server() {
    kill();
    std::string cleanup = dir + "/dump.rdb";
    ::unlink(cleanup.c_str());
    ::rmdir(dir.c_str());
  }

  void start() {
    const std::string p = std::to_string(port);
    const char* argv[] = {"redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", dir.c_str(), "--loglevel", "warning", nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawnp(&pid, "redis-server", &fa, nullptr, const_cast<char* const*>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE_MESSAGE(rc == 0, "cannot start redis-server (apt-get install redis-server)");
    // Up when it answers PING (a bound against a broken install, not a timing assertion).
    for (int i = 0; i < 500; ++i) {
      if (answers_ping()) return;
      ::usleep(20 * 1000);
    }
    FAIL("redis-server did not answer PING within 10 s");
  }

  void kill() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }

  bool answers_ping() const {
    asio::io_context io;
    tcp::socket s(io);
    herald::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return false;
    asio::write(s, asio::buffer(std::string_view("PING\r\n")), ec);
    char buf[16];
    const std::size_t n = ec ? 0 : s.read_some(asio::buffer(buf), ec);
    return !ec && std::string_view(buf, n) == "+PONG\r\n";
  }
};

// One node: a registry, its WebSocket acceptor, the bindings of its sessions by uid (so the
// test can join and leave groups with them).
struct node {
  asio::io_context& io;
  std::shared_ptr<herald::metrics> stats = std::make_shared<herald::metrics>();
  tcp::acceptor acceptor;
  cluster_registry users;
  std::multimap<std::string, cluster_registry::binding_type*> bound;

  node(asio::io_context& ctx, unsigned short redis_port, std::string id, herald::registry_options ro = {})
      : io(ctx),
        acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        users(ctx.get_executor(), options(redis_port, std::move(id)), with_metrics(std::move(ro))) {
    asio::co_spawn(io, herald::accept_loop(acceptor, [this](tcp::socket s) {
                     asio::co_spawn(io, serve(std::move(s)), asio::detached);
                   }), asio::detached);
  }

  herald::registry_options with_metrics(herald::registry_options ro) const {
    ro.metrics = stats;
    return ro;
  }

  static herald::redis_cluster_options options(unsigned short redis_port, std::string id) {
    herald::redis_cluster_options rc;
    rc.redis.port = redis_port;
    rc.redis.backoff_min = std::chrono::milliseconds(20);
    rc.redis.backoff_max = std::chrono::milliseconds(200);
    rc.prefix = "unit";
    rc.node_id = std::move(id);
    rc.presence_interval = std::chrono::milliseconds(100);
    return rc;
  }

  // A session's first message is its uid (with history, its position is in the URL); then
  // "<uid>:<text>" unicasts <text>.
  asio::awaitable<void> serve(tcp::socket s) {
    auto ws = co_await herald::accept_websocket(std::move(s));
    if (!ws) co_return;
    const std::optional<herald::stream_position> from = position_in(ws->target());
    auto b = co_await users.login(*ws, [&from](std::string_view first) {
      return herald::login_verdict::accept(std::string(first)).resume_from(from);
    }, 5s);
    if (!b) co_return;
    auto it = bound.emplace(b.uid(), &b);
    while (auto m = co_await ws->read()) {
      auto [to, body] = herald::split_target(m->text());
      if (!to.empty()) users.unicast(to, body);
    }
    bound.erase(it);  // then the binding dies: its groups are left
  }

  // The binding of the only session of `uid` here.
  cluster_registry::binding_type& of(const std::string& uid) {
    REQUIRE(bound.count(uid) == 1);
    return *bound.find(uid)->second;
  }

  // Channels Redis says the subscriber connection holds: every SUBSCRIBE/UNSUBSCRIBE answered.
  std::size_t subscriptions() const { return users.redis_stats().subscriptions; }
  bool links_up() const { return users.redis_stats().publisher_up && users.redis_stats().subscriber_up; }

  asio::awaitable<session_ptr> login(const std::string& uid) {
    auto c = co_await connect_client(acceptor.local_endpoint().port());
    const std::size_t before = users.sessions_of(uid);
    c->send(uid);
    REQUIRE(co_await eventually([&] { return users.sessions_of(uid) == before + 1; }));
    co_return c;
  }
};

// Everything `c` receives up to `marker` (excluded).
asio::awaitable<std::vector<std::string>> until_marker(session& c, const std::string& marker) {
  std::vector<std::string> got;
  for (;;) {
    const std::string m = co_await next_text(c);
    if (m == marker) co_return got;
    got.push_back(m);
  }
}

// PUBSUB NUMSUB of one channel, asked on a connection of the test's own.
asio::awaitable<long long> numsub(unsigned short port, const std::string& channel) {
  auto c = std::make_shared<herald::redis::connection>(co_await asio::this_coro::executor);
  const herald::error_code ec = co_await c->connect("127.0.0.1", port, 5s);
  REQUIRE_MESSAGE(!ec, ec.message());
  c->write_command({"PUBSUB", "NUMSUB", channel});
  const herald::redis::reply_ptr r = co_await c->read();
  REQUIRE(r);
  REQUIRE(r->type == REDIS_REPLY_ARRAY);
  REQUIRE(r->elements == 2);
  const long long n = r->element[1]->integer;
  c->close();
  co_return n;
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

}  // namespace

TEST_CASE("redis_cluster groups: every member on every node exactly once; a node holds the channel while it has a member") {
  redis_server redis;
  asio::io_context io;
  node a(io, redis.port, "a"), b(io, redis.port, "b"), c(io, redis.port, "c");
  run(io, [&]() -> asio::awaitable<void> {
    REQUIRE(co_await eventually([&] { return a.subscriptions() == 1 && b.subscriptions() == 1 && c.subscriptions() == 1; }));
    auto ann = co_await a.login("ann");
    auto abe = co_await a.login("abe");
    auto ben = co_await b.login("ben");
    auto bea = co_await b.login("bea");
    auto cid = co_await c.login("cid");
    const std::vector<session*> everyone{ann.get(), abe.get(), ben.get(), bea.get(), cid.get()};

    CHECK(a.users.join(a.of("ann"), "red"));
    CHECK(!a.users.join(a.of("ann"), "red"));  // already a member
    CHECK(!a.users.join(a.of("abe"), ""));     // invalid name
    CHECK(b.users.join(b.of("ben"), "red"));
    CHECK(b.users.join(b.of("bea"), "red"));
    CHECK(c.users.join(c.of("cid"), "red"));
    CHECK(c.users.join(c.of("cid"), "blue"));
    // all + uids + groups, answered by Redis: the group channels are in place.
    REQUIRE(co_await eventually([&] { return a.subscriptions() == 4 && b.subscriptions() == 4 && c.subscriptions() == 4; }));
    const std::string red = a.users.group_channel("red");
    CHECK(red == "unit:group:red");
    CHECK(co_await numsub(redis.port, red) == 3);
    CHECK(a.users.group_size("red") == 1);
    CHECK(b.users.group_size("red") == 2);
    CHECK(c.users.group_count() == 2);
    CHECK(a.users.is_member(a.of("ann"), "red"));
    CHECK(!a.users.is_member(a.of("abe"), "red"));

    // From a node with a member and a non-member: local count now, the others through Redis.
    CHECK(a.users.send_to_group("red", "red from a") == 1);
    CHECK(a.users.broadcast("end a1") == 2);  // same publisher as the group message: after it everywhere
    const std::map<session*, std::vector<std::string>> want{
        {ann.get(), {"red from a"}}, {abe.get(), {}}, {ben.get(), {"red from a"}}, {bea.get(), {"red from a"}}, {cid.get(), {"red from a"}}};
    for (auto* s : everyone) CHECK(co_await until_marker(*s, "end a1") == want.at(s));

    // Confirmed: Redis says how many other nodes hold the group.
    const std::string blue = "blue";
    const herald::message m = herald::message::text("blue from b");
    const herald::cluster_delivery d = co_await b.users.send_to_group_confirmed(blue, m);
    CHECK(d.local == 0);
    REQUIRE(d.nodes);
    CHECK(*d.nodes == 1);
    b.users.broadcast("end b1");
    for (auto* s : everyone) {
      const auto got = co_await until_marker(*s, "end b1");
      CHECK(got == (s == cid.get() ? std::vector<std::string>{"blue from b"} : std::vector<std::string>{}));
    }

    // Leaving: b keeps the channel while bea is in, drops it after her.
    CHECK(b.users.leave(b.of("ben"), "red"));
    CHECK(!b.users.leave(b.of("ben"), "red"));
    CHECK(b.users.group_size("red") == 1);
    CHECK(b.users.redis_stats().subscriptions == 4);
    CHECK(b.users.leave(b.of("bea"), "red"));
    CHECK(b.users.group_count() == 0);
    REQUIRE(co_await eventually([&] { return b.subscriptions() == 3; }));
    CHECK(co_await numsub(redis.port, red) == 2);
    CHECK(b.users.send_to_group("red", "red from b") == 0);
    b.users.broadcast("end b2");
    for (auto* s : everyone) {
      const auto got = co_await until_marker(*s, "end b2");
      CHECK(got == (s == ann.get() || s == cid.get() ? std::vector<std::string>{"red from b"} : std::vector<std::string>{}));
    }

    // Disconnecting: cid was c's only member of red and blue; c drops both channels.
    cid->close();
    CHECK(!(co_await cid->read()));
    REQUIRE(co_await eventually([&] { return c.users.session_count() == 0 && c.subscriptions() == 1; }));
    CHECK(c.users.group_count() == 0);
    CHECK(co_await numsub(redis.port, red) == 1);
    CHECK(co_await numsub(redis.port, a.users.group_channel("blue")) == 0);
    CHECK(c.users.send_to_group("red", "red from c") == 0);
    c.users.broadcast("end c1");
    for (auto* s : {ann.get(), abe.get(), ben.get(), bea.get()}) {
      const auto got = co_await until_marker(*s, "end c1");
      CHECK(got == (s == ann.get() ? std::vector<std::string>{"red from c"} : std::vector<std::string>{}));
    }

    // Own echoes were skipped, the others' messages delivered: nothing twice.
    CHECK(a.users.cluster_stats().own_echoes >= 2);
    for (auto* s : {ann.get(), abe.get(), ben.get(), bea.get()}) s->close();
  });
}

TEST_CASE("redis_cluster presence: uids, sessions and nodes cluster-wide; the local view while Redis is down; reconnects counted") {
  redis_server redis;
  asio::io_context io;
  node a(io, redis.port, "a"), b(io, redis.port, "b");
  std::unique_ptr<node> c;  // a third node, later (it lives until the io_context stops)
  run(io, [&]() -> asio::awaitable<void> {
    auto ann1 = co_await a.login("ann");
    auto ann2 = co_await a.login("ann");
    auto abe = co_await a.login("abe");
    auto ann3 = co_await b.login("ann");
    auto ben = co_await b.login("ben");
    REQUIRE(co_await eventually([&] { return a.subscriptions() == 3 && b.subscriptions() == 3; }));

    const herald::cluster_uids ids = co_await a.users.uids_in_cluster();
    CHECK(ids.cluster_wide);
    auto sorted = ids.uids;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<std::string>{"abe", "ann", "ben"});
    const herald::cluster_count uids = co_await b.users.uid_count_in_cluster();
    CHECK(uids.cluster_wide);
    CHECK(uids.count == 3);
    const herald::cluster_count nodes = co_await a.users.node_count_in_cluster();
    CHECK(nodes.cluster_wide);
    CHECK(nodes.count == 2);
    const std::string who = "ben";
    const herald::cluster_presence ben_seen = co_await a.users.online_in_cluster(who);
    CHECK(ben_seen.online);
    CHECK(ben_seen.cluster_wide);
    CHECK(a.users.uid_count() == 2);
    CHECK(a.users.session_count() == 3);

    // Sessions: each node's report reaches Redis within a presence interval (a bounded wait).
    auto sessions_seen_by = [](node& n, std::size_t want) -> asio::awaitable<bool> {
      for (int i = 0; i < 500; ++i) {
        const herald::cluster_count s = co_await n.users.session_count_in_cluster();
        if (s.cluster_wide && s.count == want) co_return true;
        co_await pause(20ms);
      }
      co_return false;
    };
    auto uids_seen_by = [](node& n, std::size_t want) -> asio::awaitable<bool> {
      for (int i = 0; i < 500; ++i) {
        const herald::cluster_count u = co_await n.users.uid_count_in_cluster();
        if (u.cluster_wide && u.count == want) co_return true;
        co_await pause(20ms);
      }
      co_return false;
    };
    CHECK(co_await sessions_seen_by(a, 5));
    CHECK(co_await sessions_seen_by(b, 5));

    // A third node that stops reporting (as if it died): its uids leave with its subscriber
    // connection, its sessions are counted until its report expires (3 intervals).
    c = std::make_unique<node>(io, redis.port, "c");
    auto cat = co_await c->login("cat");
    CHECK(co_await sessions_seen_by(a, 6));
    CHECK(co_await uids_seen_by(a, 4));
    c->users.stop();
    CHECK(co_await sessions_seen_by(a, 5));
    CHECK(co_await uids_seen_by(a, 3));
    cat->close();
    CHECK(!(co_await cat->read()));

    // Redis down: every answer is the local view, marked as such.
    redis.kill();
    REQUIRE(co_await eventually([&] { return !a.links_up() && !b.links_up(); }));
    const herald::cluster_count local_uids = co_await a.users.uid_count_in_cluster();
    CHECK(!local_uids.cluster_wide);
    CHECK(local_uids.count == 2);
    const herald::cluster_count local_sessions = co_await a.users.session_count_in_cluster();
    CHECK(!local_sessions.cluster_wide);
    CHECK(local_sessions.count == 3);
    const herald::cluster_uids local_ids = co_await b.users.uids_in_cluster();
    CHECK(!local_ids.cluster_wide);
    CHECK(local_ids.uids.size() == 2);
    const std::string abe_uid = "abe";
    const herald::cluster_presence abe_from_b = co_await b.users.online_in_cluster(abe_uid);
    CHECK(!abe_from_b.cluster_wide);
    CHECK(!abe_from_b.online);
    CHECK(a.stats->snapshot().redis_reconnects == 0);

    // Back: each node's two links reconnect once each, and say so.
    redis.start();
    REQUIRE(co_await eventually([&] { return a.links_up() && b.links_up() && a.subscriptions() == 3 && b.subscriptions() == 3; }, 20000ms));
    for (node* n : {&a, &b}) {
      CHECK(n->stats->snapshot().redis_reconnects == 2);
      CHECK(n->users.redis_stats().reconnects == 2);
      CHECK(n->stats->prometheus().find("herald_redis_reconnects_total 2\n") != std::string::npos);
    }
    CHECK((co_await b.users.uid_count_in_cluster()).count == 3);
    CHECK(co_await sessions_seen_by(b, 5));  // reported again at once on reconnection
    // Logins and uids are counted as on the other policies.
    CHECK(a.stats->snapshot().logins_ok == 3);
    CHECK(a.stats->snapshot().uids == 2);
    for (auto* s : {ann1.get(), ann2.get(), abe.get(), ann3.get(), ben.get()}) s->close();
  });
}

namespace {

// One command on a connection of the test's own; its reply (REQUIREd). `args` must outlive the wait.
asio::awaitable<herald::redis::reply_ptr> redis_command(unsigned short port, const std::vector<std::string>& args) {
  auto c = std::make_shared<herald::redis::connection>(co_await asio::this_coro::executor);
  const herald::error_code ec = co_await c->connect("127.0.0.1", port, 5s);
  REQUIRE_MESSAGE(!ec, ec.message());
  const std::vector<std::string_view> views(args.begin(), args.end());
  c->write_command(views);
  herald::redis::reply_ptr r = co_await c->read();
  REQUIRE(r);
  c->close();
  co_return r;
}

// Sends "<to>:<prefix><i>" for i in 1..count from session `s`, a pause every 8.
asio::awaitable<void> keep_sending(session_ptr s, std::string to, std::string prefix, int count) {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (int i = 1; i <= count; ++i) {
    s->send(to + ":" + prefix + std::to_string(i));
    if (i % 8 == 0) {
      pause.expires_after(2ms);
      co_await pause.async_wait(asio::use_awaitable);
    }
  }
}

// Logs `r` in on `n` (with its position, if any) and waits for the welcome.
asio::awaitable<session_ptr> resume_on(node& n, std::shared_ptr<resumer> r) {
  auto c = co_await open_as(n.acceptor.local_endpoint().port(), r);
  co_await read_some(r, c, 0, true);
  REQUIRE_MESSAGE(r->error.empty(), r->error);
  co_return c;
}

}  // namespace

TEST_CASE("redis_cluster history: a client cut (RST) and resumed on another node each time, while two nodes' sessions and a "
          "third node's API send to its uid, gets every message exactly once, in order") {
  redis_server redis;
  asio::io_context io;
  const auto ro = history_options(5000);
  node a(io, redis.port, "a", ro), b(io, redis.port, "b", ro), c(io, redis.port, "c", ro);
  const std::vector<node*> nodes{&a, &b, &c};
  run(io, [&]() -> asio::awaitable<void> {
    REQUIRE(co_await eventually([&] { return a.links_up() && b.links_up() && c.links_up(); }));
    auto sb = std::make_shared<resumer>(), sc = std::make_shared<resumer>();
    sb->uid = "sender-b";
    sc->uid = "sender-c";
    auto on_b = co_await resume_on(b, sb);
    auto on_c = co_await resume_on(c, sc);
    auto dana = std::make_shared<resumer>();
    dana->uid = "dana";
    auto d = co_await resume_on(a, dana);
    CHECK(dana->welcomes.at(0).state == herald::resume_state::fresh);
    CHECK(dana->pos.offset == 0);
    constexpr int per_sender = 400;
    asio::co_spawn(io, keep_sending(on_b, "dana", "b", per_sender), asio::detached);
    asio::co_spawn(io, keep_sending(on_c, "dana", "c", per_sender), asio::detached);
    asio::co_spawn(io, [&a]() -> asio::awaitable<void> {  // node a's API: unicast_confirmed, position in the answer
      std::uint64_t last = 0;
      const std::string uid = "dana";
      for (int i = 1; i <= per_sender; ++i) {
        const herald::message m = herald::message::text("a" + std::to_string(i));
        const herald::cluster_delivery d = co_await a.users.unicast_confirmed(uid, m);
        REQUIRE(d.position);
        CHECK(d.position->offset > last);
        last = d.position->offset;
      }
    }, asio::detached);
    const std::size_t total = 3 * per_sender;
    int rounds = 0;
    while (dana->got.size() < total && dana->error.empty() && rounds < 1000) {
      const std::size_t more = std::min<std::size_t>(1 + static_cast<std::size_t>(rounds * 7 % 61), total - dana->got.size());
      co_await read_some(dana, d, more);
      d->drop(true);
      ++rounds;
      d = co_await resume_on(*nodes[rounds % 3], dana);
      REQUIRE(dana->welcomes.back().state == herald::resume_state::recovered);
    }
    CHECK_MESSAGE(dana->error.empty(), dana->error);
    CHECK(dana->got.size() == total);
    CHECK(dana->pos.offset == total);
    std::map<char, std::vector<std::string>> by;
    for (auto& g : dana->got) by[g[0]].push_back(g);
    CHECK(by['a'] == numbered("a", 1, per_sender));
    CHECK(by['b'] == numbered("b", 1, per_sender));
    CHECK(by['c'] == numbered("c", 1, per_sender));
    std::uint64_t recovered = 0, replayed = 0;
    for (node* n : nodes) {
      recovered += n->users.cluster_stats().history_recovered;
      replayed += n->users.cluster_stats().history_replayed;
      CHECK(n->users.cluster_stats().history_lost == 0);
      // No live session ever had to catch up: the seam of each resume (replay, then the live
      // messages held meanwhile above it) left no gap. (Gaps would heal, through history, so
      // this is what shows the seam itself is right.)
      CHECK(n->users.cluster_stats().history_gaps == 0);
    }
    CHECK(recovered == static_cast<std::uint64_t>(rounds));
    MESSAGE(rounds << " resumes across 3 nodes, " << replayed << " messages replayed");
    // Every history key has a TTL.
    const std::vector<std::string> pttl_meta{"PTTL", "unit:history:dana"}, pttl_log{"PTTL", "unit:history-log:dana"};
    CHECK((co_await redis_command(redis.port, pttl_meta))->integer > 0);
    CHECK((co_await redis_command(redis.port, pttl_log))->integer > 0);
    d->close();
    on_b->close();
    on_c->close();
  });
}

TEST_CASE("redis_cluster history: overflow and other epochs are not recovered; the keys of a uid that went away expire") {
  redis_server redis;
  asio::io_context io;
  auto ro = history_options(5);
  node a(io, redis.port, "a", ro), b(io, redis.port, "b", ro);
  ro.history.max_age = 150ms;
  ro.history.position_ttl = 300ms;
  node brief(io, redis.port, "brief", ro);
  run(io, [&]() -> asio::awaitable<void> {
    REQUIRE(co_await eventually([&] { return a.links_up() && b.links_up() && brief.links_up(); }));
    const std::string uid = "erin";
    herald::stream_position last;
    for (int i = 1; i <= 8; ++i) {  // erin has no session anywhere: recorded all the same
      const herald::message m = herald::message::text("e" + std::to_string(i));
      const herald::cluster_delivery d = co_await a.users.unicast_confirmed(uid, m);
      REQUIRE(d.position);
      CHECK(d.position->offset == static_cast<std::uint64_t>(i));
      CHECK(d.local == 0);
      last = *d.position;
    }
    struct attempt {
      herald::stream_position from;
      herald::resume_state state;
      std::vector<std::string> replay;
    };
    const std::vector<attempt> attempts{
        {{last.epoch, 2}, herald::resume_state::not_recovered, {}},  // 3 was trimmed: only 4..8 kept
        {{last.epoch, 3}, herald::resume_state::recovered, numbered("e", 4, 8)},
        {{last.epoch, 8}, herald::resume_state::recovered, {}},
        {{last.epoch, 9}, herald::resume_state::not_recovered, {}},
        {{"0123456789abcdef", 5}, herald::resume_state::not_recovered, {}},
    };
    for (const auto& at : attempts) {
      auto erin = std::make_shared<resumer>();
      erin->uid = uid;
      erin->pos = at.from;
      auto e = co_await resume_on(b, erin);
      co_await read_some(erin, e, at.replay.size());
      CHECK(erin->welcomes.at(0).state == at.state);
      CHECK(erin->welcomes.at(0).position == last);
      CHECK(erin->got == at.replay);
      e->close();
      CHECK(!(co_await e->read()));
    }
    // On the node with a short max_age and position_ttl: the log goes first, then the position.
    const herald::message m = herald::message::text("short-lived");
    const std::string gone = "gone";
    const herald::cluster_delivery d = co_await brief.users.unicast_confirmed(gone, m);
    REQUIRE(d.position);
    const std::vector<std::string> exists_log{"EXISTS", "unit:history-log:gone"}, exists_meta{"EXISTS", "unit:history:gone"};
    CHECK((co_await redis_command(redis.port, exists_log))->integer == 1);
    bool log_gone = false, position_gone = false;
    for (int i = 0; i < 500 && !(log_gone && position_gone); ++i) {  // bounded: a hang guard, not a timing
      log_gone = (co_await redis_command(redis.port, exists_log))->integer == 0;
      position_gone = (co_await redis_command(redis.port, exists_meta))->integer == 0;
      co_await pause(10ms);
    }
    CHECK(log_gone);
    CHECK(position_gone);
  });
}

TEST_CASE("redis_cluster history: Redis restarted without persistence: a new epoch; a live session is told its history was "
          "lost, a resuming one is not recovered; both go on live") {
  redis_server redis;
  asio::io_context io;
  const auto ro = history_options(100);
  node a(io, redis.port, "a", ro), b(io, redis.port, "b", ro);
  run(io, [&]() -> asio::awaitable<void> {
    REQUIRE(co_await eventually([&] { return a.links_up() && b.links_up(); }));
    auto fred = std::make_shared<resumer>(), gail = std::make_shared<resumer>();
    fred->uid = "fred";
    gail->uid = "gail";
    auto f = co_await resume_on(a, fred);
    auto g = co_await resume_on(b, gail);
    CHECK(a.users.unicast("fred", "f1") == 1);
    CHECK(b.users.unicast("gail", "g1") == 1);
    co_await read_some(fred, f, 1);
    co_await read_some(gail, g, 1);
    const std::string old_epoch = fred->pos.epoch;
    g->drop(true);  // gail is away while Redis restarts
    REQUIRE(co_await eventually([&] { return b.users.session_count() == 0; }));

    redis.kill();
    REQUIRE(co_await eventually([&] { return !a.links_up() && !b.links_up(); }));
    redis.start();
    REQUIRE(co_await eventually([&] { return a.links_up() && b.links_up() && a.subscriptions() == 2; }, 20000ms));
    // fred, live on a, catches up when a's subscriber is back: another epoch, so "lost".
    while (fred->lost.empty() && fred->error.empty()) {
      auto m = co_await f->read();
      REQUIRE(m);
      take(*fred, m->data);
    }
    REQUIRE(fred->lost.size() == 1);
    CHECK(fred->lost[0].epoch != old_epoch);
    CHECK(fred->lost[0].offset == 0);
    CHECK(b.users.unicast("fred", "f2 after the restart") == 0);
    co_await read_some(fred, f, 1);
    CHECK(fred->got.back() == "f2 after the restart");
    CHECK(fred->pos == herald::stream_position{fred->lost[0].epoch, 1});
    CHECK(a.users.cluster_stats().history_lost == 1);

    // gail resumes with the position of the lost epoch: not recovered, then live.
    a.users.unicast("gail", "g2 while she was away, after the restart");
    auto g2 = co_await resume_on(a, gail);
    CHECK(gail->welcomes.back().state == herald::resume_state::not_recovered);
    CHECK(gail->pos.epoch != old_epoch);
    CHECK(gail->pos.offset == 1);
    b.users.unicast("gail", "g3");
    co_await read_some(gail, g2, 1);
    CHECK(gail->got == std::vector<std::string>{"g1", "g3"});
    CHECK(fred->error.empty());
    CHECK(gail->error.empty());
    f->close();
    g2->close();
  });
}

TEST_CASE("redis_cluster history: the subscriber links drop (CLIENT KILL TYPE pubsub) while messages flow: live sessions "
          "catch up from history, nothing is lost") {
  redis_server redis;
  asio::io_context io;
  const auto ro = history_options(5000);
  node a(io, redis.port, "a", ro), b(io, redis.port, "b", ro);
  run(io, [&]() -> asio::awaitable<void> {
    REQUIRE(co_await eventually([&] { return a.links_up() && b.links_up(); }));
    auto hope = std::make_shared<resumer>(), sender = std::make_shared<resumer>();
    hope->uid = "hope";
    sender->uid = "sender";
    auto h = co_await resume_on(a, hope);
    auto s = co_await resume_on(b, sender);
    constexpr int count = 600;
    asio::co_spawn(io, keep_sending(s, "hope", "m", count), asio::detached);
    co_await read_some(hope, h, 50);
    const std::vector<std::string> kill_subscribers{"CLIENT", "KILL", "TYPE", "pubsub"};
    const auto killed = co_await redis_command(redis.port, kill_subscribers);
    CHECK(killed->integer == 2);  // both nodes' subscribers
    co_await read_some(hope, h, count - 50);
    CHECK_MESSAGE(hope->error.empty(), hope->error);
    CHECK(hope->got == numbered("m", 1, count));
    CHECK(hope->lost.empty());
    CHECK(a.users.cluster_stats().history_reads >= 2);  // the login, and the catch-up after the reconnection
    MESSAGE("node a: " << a.users.cluster_stats().history_reads << " reads, " << a.users.cluster_stats().history_replayed
                       << " replayed, " << a.users.cluster_stats().history_gaps << " gaps");
    h->close();
    s->close();
  });
}
