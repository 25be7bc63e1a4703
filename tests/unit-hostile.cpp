// Hostile clients on real loopback sockets, one scenario per test case, each while a stream
// of numbered broadcasts runs to 200 healthy logged-in herald clients that check every
// message arrives exactly once, in order and intact. The hostile connection must end the
// way the README says (code and reason), in bounded time, and cost the healthy ones nothing.
#include "test_support.hpp"

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

using namespace herald_test;
using herald::ws::opcode;
using clock_type = std::chrono::steady_clock;

namespace {

// Broadcast number `seq`: "<seq>:" and a body whose size and letters depend on seq.
std::string numbered(std::uint64_t seq, std::size_t max_body) {
  std::string s = std::to_string(seq) + ":";
  const std::size_t n = 1 + (seq * 37) % max_body;
  s.reserve(s.size() + n);
  for (std::size_t i = 0; i < n; ++i) s += static_cast<char>('a' + (seq + i) % 26);
  return s;
}

// N healthy clients that read everything, and a coroutine broadcasting numbered messages to
// every logged-in session in windows: a round of `per_round` broadcasts, then a wait until
// every healthy client has all of them, then a short pause that lets the scenario run.
template <class Server>
class crowd {
 public:
  struct settings {
    int clients = 200;
    int per_round = 4;
    std::size_t max_body = 1000;
    std::chrono::milliseconds pause = 2ms;
  };

  crowd(Server& server, settings s) : server_(server), settings_(s), next_(static_cast<std::size_t>(s.clients), 0) {}

  static std::string uid(int i) { return "healthy-" + std::to_string(i); }

  // Logs the clients in and starts their readers and the broadcaster.
  asio::awaitable<void> start() {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < settings_.clients; ++i) clients_.push_back(co_await login_client(server_, uid(i)));
    for (int i = 0; i < settings_.clients; ++i) asio::co_spawn(ex, reader(static_cast<std::size_t>(i)), asio::detached);
    asio::co_spawn(ex, broadcaster(), [this](std::exception_ptr e) {
      failure_ = e;
      broadcaster_done_ = true;
    });
  }

  // Stops the broadcaster and checks that every healthy client got every message, once, in
  // order, intact, and is still logged in; then closes them cleanly (1000 on the server side).
  asio::awaitable<void> finish() {
    stop_ = true;
    REQUIRE(co_await eventually([&] { return broadcaster_done_; }, 20000ms));
    if (failure_) std::rethrow_exception(failure_);
    MESSAGE(sent_ << " broadcasts in " << rounds_ << " rounds reached " << settings_.clients << " healthy clients");
    CHECK(rounds_ >= 2);  // the stream really ran alongside the scenario
    CHECK(bad_ == 0);
    CHECK(ended_early_ == 0);
    int short_of = 0;
    for (auto n : next_) short_of += n != sent_;
    CHECK(short_of == 0);
    int missing = 0;
    for (int i = 0; i < settings_.clients; ++i) missing += server_.users.sessions_of(uid(i)) != 1 || server_.ended.count(uid(i)) != 0;
    CHECK(missing == 0);

    for (auto& c : clients_) c->close(herald::ws::close_code::normal, "done");
    REQUIRE(co_await eventually([&] { return readers_done_ == settings_.clients; }));
    REQUIRE(co_await eventually([&] {
      for (int i = 0; i < settings_.clients; ++i)
        if (server_.users.online(uid(i))) return false;
      return true;
    }));
    int unclean = 0;
    for (int i = 0; i < settings_.clients; ++i) {
      const auto& e = server_.ended[uid(i)];
      unclean += e.size() != 1 || e[0].code != 1000;
    }
    CHECK(unclean == 0);
  }

 private:
  asio::awaitable<void> reader(std::size_t i) {
    auto c = clients_[i];
    for (;;) {
      auto m = co_await c->read();
      if (!m) {
        if (!stop_) ++ended_early_;
        ++readers_done_;
        co_return;
      }
      if (m->data != numbered(next_[i], settings_.max_body)) ++bad_;
      ++next_[i];
    }
  }

  asio::awaitable<void> broadcaster() {
    asio::steady_timer pause(co_await asio::this_coro::executor);
    while (!stop_) {
      for (int k = 0; k < settings_.per_round; ++k) server_.users.broadcast(numbered(sent_++, settings_.max_body));
      REQUIRE(co_await eventually([&] {
        for (auto n : next_)
          if (n < sent_) return false;
        return true;
      }));
      ++rounds_;
      pause.expires_after(settings_.pause);
      co_await pause.async_wait(asio::use_awaitable);
    }
  }

  Server& server_;
  settings settings_;
  std::vector<session_ptr> clients_;
  std::vector<std::uint64_t> next_;
  std::uint64_t sent_ = 0;
  std::uint64_t rounds_ = 0;
  int bad_ = 0;
  int ended_early_ = 0;
  int readers_done_ = 0;
  bool stop_ = false;
  bool broadcaster_done_ = false;
  std::exception_ptr failure_;
};

template <class Server>
crowd(Server&, typename crowd<Server>::settings) -> crowd<Server>;

template <class Server>
asio::awaitable<raw_client> raw_login(Server& server, const std::string& uid, int receive_buffer = 0) {
  auto rc = co_await raw_client::connect(server.port(), receive_buffer);
  co_await rc.handshake();
  co_await rc.write(raw_client::frame(opcode::text, uid));
  REQUIRE(co_await eventually([&] { return server.users.online(uid); }));
  co_return rc;
}

// Every event in bytes a server sent (frames as a client parses them).
std::vector<herald::ws::event_kind> events_in(std::string bytes) {
  herald::ws::parser p(herald::ws::role::client, {1 << 30});
  std::vector<herald::ws::event_kind> out;
  std::size_t pos = 0;
  for (;;) {
    auto r = p.next(reinterpret_cast<std::uint8_t*>(bytes.data()) + pos, bytes.size() - pos);
    pos += r.consumed;
    if (r.ev.kind == herald::ws::event_kind::need_more) break;
    out.push_back(r.ev.kind);
    if (r.ev.kind == herald::ws::event_kind::error) break;
  }
  return out;
}

bool contains(const std::vector<herald::ws::event_kind>& v, herald::ws::event_kind k) {
  for (auto e : v)
    if (e == k) return true;
  return false;
}

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

const std::string upgrade_request =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

}  // namespace

TEST_CASE("hostile: a handshake sent one byte per 100 ms is dropped at the handshake deadline") {
  asio::io_context io;
  test_server server(io);
  server.options->handshake_timeout = 500ms;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    auto rc = co_await raw_client::connect(server.port());
    const auto t0 = clock_type::now();
    bool closed = false;
    std::size_t written = 0;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      asio::steady_timer tick(co_await asio::this_coro::executor);
      while (!closed && written < upgrade_request.size()) {
        herald::error_code ec;
        co_await asio::async_write(rc.socket, asio::buffer(upgrade_request.data() + written, 1),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        ++written;
        tick.expires_after(100ms);
        co_await tick.async_wait(asio::use_awaitable);
      }
    }, asio::detached);
    const std::string answer = co_await rc.read_all();
    closed = true;
    const double took = ms_since(t0);
    CHECK(answer.empty());  // not a byte back: no 101, no error response
    CHECK(written < upgrade_request.size());
    MESSAGE("dropped after " << took << " ms and " << written << " of " << upgrade_request.size() << " bytes");
    CHECK(server.users.session_count() == 200);

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: a connection that never sends its first message is closed with 1008 login timeout") {
  asio::io_context io;
  test_server server(io);
  server.login_deadline = 400ms;
  server.options->close_timeout = 300ms;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    auto rc = co_await raw_client::connect(server.port());
    co_await rc.handshake();
    const std::string got = co_await rc.read_all();  // never answers the close either
    const auto st = parse_close(got);
    CHECK(st.code == 1008);
    CHECK(st.reason == "login timeout");
    REQUIRE(server.refused.size() == 1);
    CHECK(server.refused[0].code == 1008);
    CHECK(server.refused[0].reason == "login timeout");

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: an oversize header block is answered 431") {
  asio::io_context io;
  test_server server(io);
  server.options->max_handshake_size = 2048;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    // A complete head over the limit.
    auto big = co_await raw_client::connect(server.port());
    co_await big.write("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(4000, 'p') + "\r\n\r\n");
    std::string answer = co_await big.read_all();
    CHECK_MESSAGE(answer.rfind("HTTP/1.1 431 ", 0) == 0, answer);
    CHECK(answer.find("too large") != std::string::npos);

    // A head that never ends: refused once the limit is reached, not when it ends.
    auto endless = co_await raw_client::connect(server.port());
    bool closed = false;
    std::size_t written = 0;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      co_await endless.write("GET / HTTP/1.1\r\nHost: x\r\n");
      const std::string line = "X-More: " + std::string(200, 'm') + "\r\n";
      while (!closed && written < 1000 * line.size()) {
        herald::error_code ec;
        co_await asio::async_write(endless.socket, asio::buffer(line), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        written += line.size();
        co_await sleep_for(1ms);
      }
    }, asio::detached);
    answer = co_await endless.read_all();
    closed = true;
    CHECK_MESSAGE(answer.rfind("HTTP/1.1 431 ", 0) == 0, answer);
    CHECK(written < 100 * 1024);  // stopped long before the 200 KB it would have sent
    CHECK(server.users.session_count() == 200);

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: a frame announcing more than the limit is closed with 1009 at once") {
  asio::io_context io;
  test_server server(io);
  server.options->max_message_size = 64 * 1024;
  server.options->idle_timeout = 5s;
  server.options->close_timeout = 300ms;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    auto rc = co_await raw_login(server, "announcer");
    // A binary frame header for 1 GiB, masked, and not one byte of payload.
    const std::string header = std::string("\x82\xFF\x00\x00\x00\x00\x40\x00\x00\x00", 10) + "\x11\x22\x33\x44";
    co_await rc.write(header);
    const std::string got = co_await rc.read_all(64 << 20);
    const auto st = parse_close(got);
    CHECK(st.code == 1009);
    REQUIRE(co_await eventually([&] { return !server.users.online("announcer"); }));
    REQUIRE(server.ended["announcer"].size() == 1);
    CHECK(server.ended["announcer"][0].code == 1009);
    CHECK(server.ended["announcer"][0].reason == "message larger than the limit");

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: a fragmented message that never ends is closed with 1009 when its sum passes the limit") {
  asio::io_context io;
  test_server server(io);
  server.options->max_message_size = 64 * 1024;
  server.options->close_timeout = 300ms;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    auto rc = co_await raw_login(server, "endless");
    bool closed = false;
    std::size_t payload_sent = 0;
    std::size_t payload_when_closed = 0;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      const std::string piece(2000, 'f');  // each fragment far below the limit
      bool first = true;
      while (!closed) {
        herald::error_code ec;
        const std::string f = raw_client::frame(first ? opcode::text : opcode::continuation, piece, false);
        co_await asio::async_write(rc.socket, asio::buffer(f), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        first = false;
        payload_sent += piece.size();
        co_await sleep_for(2ms);
      }
    }, asio::detached);
    const std::string got = co_await rc.read_all(64 << 20);
    payload_when_closed = payload_sent;
    closed = true;
    const auto st = parse_close(got);
    CHECK(st.code == 1009);
    CHECK(payload_when_closed > 64 * 1024);      // not before the sum passed the limit
    CHECK(payload_when_closed < 200 * 1024);     // and not long after
    REQUIRE(co_await eventually([&] { return !server.users.online("endless"); }));
    REQUIRE(server.ended["endless"].size() == 1);
    CHECK(server.ended["endless"][0].code == 1009);
    CHECK(server.ended["endless"][0].reason == "message larger than the limit");
    MESSAGE("closed after " << payload_when_closed << " bytes of fragments");

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: a fragmented message that stops arriving is dropped by the idle timeout") {
  asio::io_context io;
  test_server server(io);
  server.options->idle_timeout = 1000ms;  // healthy clients under ASan need time to pong
  server.options->send_queue_limit = 16 << 20;  // the stalled peer reads nothing; keep the queue out of it
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {.max_body = 200});
    co_await healthy.start();

    auto rc = co_await raw_login(server, "stalled");
    co_await rc.write(raw_client::frame(opcode::text, "the start of something", false));
    REQUIRE(co_await eventually([&] { return !server.users.online("stalled"); }, 15000ms));
    REQUIRE(server.ended["stalled"].size() == 1);
    CHECK(server.ended["stalled"][0].code == 1006);
    CHECK(server.ended["stalled"][0].reason == "idle timeout: no answer to ping");
    const auto events = events_in(co_await rc.read_all(64 << 20));
    CHECK(contains(events, herald::ws::event_kind::ping));
    CHECK(!contains(events, herald::ws::event_kind::close));  // dropped, as a vanished peer is

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: a flood of pings from a client that does not read its pongs is closed at its queue limit") {
  asio::io_context io;
  test_server server(io);
  server.options->send_queue_limit = 64 * 1024;
  server.options->close_timeout = 300ms;
  server.login_deadline = 20000ms;  // the flood must be stopped by the queue limit, not by this
  server.send_buffer = 16 * 1024;   // fixed kernel buffers, so the pongs pile up in herald's queue
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    // Not logged in: no broadcast reaches it, only the answers to its own pings.
    auto rc = co_await raw_client::connect(server.port(), 4096);
    co_await rc.handshake();
    const std::string ping = raw_client::frame(opcode::ping, std::string(125, 'p'));
    std::string batch;
    for (int i = 0; i < 200; ++i) batch += ping;
    int pings = 0;
    const auto t0 = clock_type::now();
    while (pings < 20000) {
      herald::error_code ec;
      co_await asio::async_write(rc.socket, asio::buffer(batch), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      pings += 200;
    }
    // Whatever it managed to send, the server ends it at the queue limit, well before the login deadline.
    REQUIRE(co_await eventually([&] { return server.refused.size() == 1; }, 5000ms));
    const double took = ms_since(t0);
    CHECK(server.refused[0].code == 1008);
    CHECK(server.refused[0].reason == "send queue limit exceeded");
    MESSAGE(pings << " pings written before the server's verdict, after " << took << " ms");
    CHECK(server.users.session_count() == 200);

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: a client that stops reading is closed with 1008 at its queue limit") {
  asio::io_context io;
  test_server server(io);
  server.options->send_queue_limit = 64 * 1024;
  server.options->close_timeout = 300ms;
  server.send_buffer = 16 * 1024;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {});
    co_await healthy.start();

    auto rc = co_await raw_login(server, "sleeper", 4096);  // the broadcasts pile up for it
    auto sleeper = server.sessions["sleeper"][0];
    REQUIRE(co_await eventually([&] { return !server.users.online("sleeper"); }, 10000ms));
    REQUIRE(server.ended["sleeper"].size() == 1);
    CHECK(server.ended["sleeper"][0].code == 1008);
    CHECK(server.ended["sleeper"][0].reason == "send queue limit exceeded");
    CHECK(sleeper->stats().overflow_closes == 1);
    CHECK(sleeper->queued_bytes() == 0);  // released at the close

    co_await healthy.finish();
  });
}

TEST_CASE("hostile: half-open peers are pinged, then dropped with 1006") {
  asio::io_context io;
  test_server server(io);
  server.options->idle_timeout = 1000ms;  // healthy clients under ASan need time to pong
  server.options->send_queue_limit = 16 << 20;
  run(io, [&]() -> asio::awaitable<void> {
    crowd healthy(server, {.max_body = 200});
    co_await healthy.start();

    // Logged in, then silent forever: neither reading nor writing, no FIN.
    std::vector<raw_client> ghosts;
    for (int i = 0; i < 3; ++i) ghosts.push_back(co_await raw_login(server, "ghost-" + std::to_string(i)));
    REQUIRE(co_await eventually([&] {
      for (int i = 0; i < 3; ++i)
        if (server.users.online("ghost-" + std::to_string(i))) return false;
      return true;
    }, 15000ms));
    for (int i = 0; i < 3; ++i) {
      const std::string uid = "ghost-" + std::to_string(i);
      CAPTURE(uid);
      REQUIRE(server.ended[uid].size() == 1);
      CHECK(server.ended[uid][0].code == 1006);
      CHECK(server.ended[uid][0].reason == "idle timeout: no answer to ping");
      const auto events = events_in(co_await ghosts[static_cast<std::size_t>(i)].read_all(64 << 20));
      CHECK(contains(events, herald::ws::event_kind::ping));
      CHECK(!contains(events, herald::ws::event_kind::close));
    }

    co_await healthy.finish();
  });
}
