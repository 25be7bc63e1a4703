// uid_push_server: the Workerman "send to a specific uid" example, in C++ with herald.
//
// Protocol (WebSocket, text):
//   first message        your uid: 1 to 128 bytes, no ':', not "all" (else close 1008 with the reason)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> goes to every session of <uid> (all its devices)
//   all:<message>        <message> goes to every logged-in session, the sender included
//   anything else        -> "error: expected <uid>:<message>"
// The split is at the first ':', so a message may contain colons. A closed session's uid
// is unbound; a second login of the same uid is governed by --duplicates.
//
// Usage: uid_push_server [--address A] [--port P] [--duplicates multi|replace|reject]
//                        [--max-message BYTES] [--idle-timeout SECONDS] [--threads N]
// --threads N (default 1): N > 1 uses the multi_thread registry, one io_context per thread.
// SIGINT/SIGTERM close every session with 1001 and exit 0.
#include <herald.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>
#include <iostream>
#include <string>
#include <unordered_set>

using namespace std::chrono_literals;
using session = herald::ws_session<>;

namespace {

// The seed takes any first message as the uid; we keep that, minus what would break the protocol.
herald::login_verdict check_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 128) return herald::login_verdict::refuse("uid must be 1 to 128 bytes");
  if (uid.find(':') != std::string_view::npos) return herald::login_verdict::refuse("uid must not contain ':'");
  if (uid == "all") return herald::login_verdict::refuse("uid 'all' is reserved");
  return herald::login_verdict::accept(std::string(uid));
}

// Every open connection, logged in or not, so that shutdown can close them all.
struct connections {
  std::mutex mutex;
  std::unordered_set<session*> open;
  bool stopping = false;
  std::function<void()> on_last_closed;

  // Registers a session for as long as it lives; false when the server is stopping.
  struct entry {
    connections& set;
    session* s;
    bool added;
    entry(connections& c, session& ws) : set(c), s(&ws) {
      std::lock_guard lock(set.mutex);
      added = !set.stopping;
      if (added) set.open.insert(s);
    }
    ~entry() {
      std::function<void()> last;
      {
        std::lock_guard lock(set.mutex);
        if (added) set.open.erase(s);
        if (set.stopping && set.open.empty()) last = set.on_last_closed;
      }
      if (last) last();
    }
  };

  // Sends 1001 to every open connection; `done` runs once the last one has ended.
  void stop(std::function<void()> done) {
    std::lock_guard lock(mutex);
    stopping = true;
    on_last_closed = std::move(done);
    for (session* s : open) s->close(herald::ws::close_code::going_away, "server shutting down");
    if (open.empty()) asio::post(open_executor_hint, on_last_closed);
  }
  asio::any_io_executor open_executor_hint;
};

// One connection, from handshake to close. The same code serves both registry policies.
template <class Registry>
asio::awaitable<void> serve(asio::ip::tcp::socket socket, Registry& users, connections& conns,
                            std::shared_ptr<const herald::session_options> options) {
  auto ws = co_await herald::accept_websocket(std::move(socket), options);
  if (!ws) co_return;
  connections::entry tracked(conns, *ws);
  if (!tracked.added) {  // upgraded just as the server began to stop
    ws->close(herald::ws::close_code::going_away, "server shutting down");
    while (co_await ws->read()) {
    }
    co_return;
  }
  auto bound = co_await users.login(*ws, check_uid, 10s);
  if (!bound) co_return;
  ws->send("login successful, your uid is " + bound.uid());
  while (auto msg = co_await ws->read()) {
    auto [to, body] = herald::split_target(*msg);
    if (to.empty() && msg->text().find(':') == std::string_view::npos) {
      ws->send("error: expected <uid>:<message>");
      continue;
    }
    auto m = msg->binary ? herald::message::binary(body) : herald::message::text(body);
    if (to == "all") users.broadcast(m);
    else users.unicast(to, m);
  }
}

struct config {
  std::string address = "0.0.0.0";
  unsigned short port = 1234;
  herald::duplicate_login duplicates = herald::duplicate_login::multi;
  std::size_t max_message = 1024 * 1024;
  int idle_timeout = 30;
  int threads = 1;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "uid_push_server: %s\nusage: uid_push_server [--address A] [--port P] "
               "[--duplicates multi|replace|reject] [--max-message BYTES] [--idle-timeout SECONDS] "
               "[--threads N]\n",
               why);
  std::exit(2);
}

config parse_args(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (a == "--address") c.address = value();
    else if (a == "--port") c.port = static_cast<unsigned short>(std::stoi(value()));
    else if (a == "--max-message") c.max_message = std::stoul(value());
    else if (a == "--idle-timeout") c.idle_timeout = std::stoi(value());
    else if (a == "--threads") c.threads = std::max(1, std::stoi(value()));
    else if (a == "--duplicates") {
      const auto d = value();
      if (d == "multi") c.duplicates = herald::duplicate_login::multi;
      else if (d == "replace") c.duplicates = herald::duplicate_login::replace;
      else if (d == "reject") c.duplicates = herald::duplicate_login::reject;
      else usage("--duplicates takes multi, replace or reject");
    } else if (a == "--help" || a == "-h") usage("help");
    else usage("unknown option");
  }
  return c;
}

// Runs the server on `threads` io_contexts, one per thread; sockets are dealt out in turn.
template <class Registry>
int run(const config& cfg, std::vector<std::unique_ptr<asio::io_context>>& contexts, Registry& users) {
  asio::io_context& io = *contexts.front();
  herald::session_options so;
  so.max_message_size = cfg.max_message;
  so.idle_timeout = std::chrono::seconds(cfg.idle_timeout);
  auto options = std::make_shared<const herald::session_options>(so);

  asio::ip::tcp::acceptor acceptor(io);
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(cfg.address), cfg.port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  std::cout << "uid_push_server listening on " << acceptor.local_endpoint() << " (" << contexts.size()
            << (contexts.size() == 1 ? " thread)" : " threads)") << std::endl;

  connections conns;
  conns.open_executor_hint = io.get_executor();
  herald::accept_loop_options lo;
  for (auto& c : contexts) lo.executors.push_back(c->get_executor());
  asio::co_spawn(io, herald::accept_loop(acceptor, [&](asio::ip::tcp::socket s) {
                   auto ex = s.get_executor();  // the session's thread
                   asio::co_spawn(ex, serve(std::move(s), users, conns, options), asio::detached);
                 }, lo), asio::detached);

  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  for (auto& c : contexts) keep_running.push_back(asio::make_work_guard(*c));
  auto stop_all = [&] {
    for (auto& c : contexts) c->stop();
  };

  // Shutdown: stop accepting, send 1001 to every connection, and stop once their closing
  // handshakes are done (or at a deadline, for peers that never answer).
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer deadline(io);
  signals.async_wait([&](std::error_code, int) {
    acceptor.close();
    deadline.expires_after(so.close_timeout + 1s);
    deadline.async_wait([&](std::error_code) { stop_all(); });
    conns.stop(stop_all);
  });
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts.size(); ++i) threads.emplace_back([&, i] { contexts[i]->run(); });
  io.run();
  stop_all();
  for (auto& t : threads) t.join();
  std::cout << "uid_push_server stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 0; i < cfg.threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
  const herald::registry_options ro{.duplicates = cfg.duplicates};
  if (cfg.threads == 1) {
    herald::registry<session, herald::single_thread> users(ro);
    return run(cfg, contexts, users);
  }
  std::vector<asio::any_io_executor> lanes;
  for (auto& c : contexts) lanes.push_back(c->get_executor());
  herald::registry<session, herald::multi_thread> users(lanes, ro);
  return run(cfg, contexts, users);
}
