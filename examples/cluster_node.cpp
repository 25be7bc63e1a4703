// cluster_node: uid_push_server's protocol on the redis_cluster registry, plus the HTTP push
// API. Start several (on one machine or many) against one Redis: a message reaches its uid
// on whichever node the uid is logged in.
//
// Protocol (WebSocket, text), uid_push_server's (the same code: uid_protocol.hpp):
//   first message        your uid: 1 to 128 bytes, no ':', not reserved (else close 1008 with the reason)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> goes to every session of <uid>, on every node
//   all:<message>        <message> goes to every logged-in session of every node, the sender included
//   join:<name>          this session joins group <name> -> "joined <name>"
//   leave:<name>         this session leaves group <name> -> "left <name>"
//   group:<name>:<msg>   <msg> goes to every session in group <name> on every node (the sender
//                        only if a member)
//   anything else        -> "error: expected <uid>:<message>"
// "all", "join", "leave" and "group" are reserved and refused as uids. Groups are left when
// the session ends; a node subscribes to a group's channel only while it holds a member.
//
// Push from other systems:
//   HTTP (with --http-port):  curl -H "Authorization: Bearer $KEY" -d 'hello' http://127.0.0.1:8080/send/alice
//                             (also /group/<name>, /broadcast, /online/<uid>, /presence)
//   Redis:                    redis-cli PUBLISH herald:uid:alice 'hello'     (herald:all for everyone,
//                             herald:group:<name> for a group)
//
// Usage: cluster_node [--address A (0.0.0.0)] [--port P (1234)] [--redis HOST:PORT (127.0.0.1:6379)]
//                     [--redis-password PW] [--prefix NAME (herald)] [--node-id ID]
//                     [--http-port P [--http-address A (127.0.0.1)] --api-key K]
//                     [--duplicates multi|replace|reject] [--max-message BYTES] [--idle-timeout SECONDS]
//                     [--presence-interval SECONDS (2)] [--history N [--history-age SECONDS]]
// --presence-interval: how often the node reports its session count to Redis for the
// cluster-wide count (GET /presence); fractions allowed.
// --history N (default 0: off): the last N messages to each uid are kept in Redis (for
// --history-age SECONDS, default 300), with offsets, so that a client resumes where it was on
// any node: the headers of uid_protocol.hpp on every message, the position in the URL, and
// /send answering with the offset. Needs Redis 7 (functions). Off, nothing changes.
// Port 0 lets the kernel pick (the "listening on" lines say which). The API key may come from
// the environment instead (HERALD_API_KEY), to keep it out of `ps`.
// SIGINT/SIGTERM close every session with 1001, print the Redis counters (with the metric
// redis_reconnects) and exit 0.
#include <herald.hpp>
#include <herald/http_api.hpp>
#include <herald/policy/redis_cluster.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "uid_protocol.hpp"

using namespace std::chrono_literals;
using session = herald::ws_session<>;
using cluster_registry = herald::registry<session, herald::redis_cluster>;

namespace {

using uid_protocol::connections;
using uid_protocol::serve;


struct config {
  std::string address = "0.0.0.0";
  unsigned short port = 1234;
  std::string redis_host = "127.0.0.1";
  unsigned short redis_port = 6379;
  std::string redis_password;
  std::string prefix = "herald";
  std::string node_id;
  int http_port = -1;  // -1: no HTTP API
  std::string http_address = "127.0.0.1";
  std::string api_key;
  herald::duplicate_login duplicates = herald::duplicate_login::multi;
  std::size_t max_message = 1024 * 1024;
  int idle_timeout = 30;
  double presence_interval = 2;
  std::size_t history = 0;   // --history N: messages kept per uid in Redis (0: off)
  double history_age = 300;  // --history-age SECONDS
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "cluster_node: %s\nusage: cluster_node [--address A] [--port P] [--redis HOST:PORT] [--redis-password PW]\n"
               "                    [--prefix NAME] [--node-id ID] [--http-port P [--http-address A] --api-key K]\n"
               "                    [--duplicates multi|replace|reject] [--max-message BYTES] [--idle-timeout SECONDS]\n"
               "                    [--presence-interval SECONDS] [--history N [--history-age SECONDS]]\n",
               why);
  std::exit(2);
}

config parse_args(int argc, char** argv) {
  config c;
  if (const char* key = std::getenv("HERALD_API_KEY")) c.api_key = key;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (a == "--address") c.address = value();
    else if (a == "--port") c.port = static_cast<unsigned short>(std::stoi(value()));
    else if (a == "--redis") {
      const std::string v = value();
      const auto colon = v.rfind(':');
      if (colon == std::string::npos || colon == 0) usage("--redis takes HOST:PORT");
      c.redis_host = v.substr(0, colon);
      c.redis_port = static_cast<unsigned short>(std::stoi(v.substr(colon + 1)));
    } else if (a == "--redis-password") c.redis_password = value();
    else if (a == "--prefix") c.prefix = value();
    else if (a == "--node-id") {
      c.node_id = value();
      if (!herald::redis::valid_node_id(c.node_id)) usage("--node-id takes 1 to 64 of [A-Za-z0-9_.-]");
    } else if (a == "--http-port") c.http_port = std::stoi(value());
    else if (a == "--http-address") c.http_address = value();
    else if (a == "--api-key") c.api_key = value();
    else if (a == "--max-message") c.max_message = std::stoul(value());
    else if (a == "--idle-timeout") c.idle_timeout = std::stoi(value());
    else if (a == "--history") c.history = std::stoul(value());
    else if (a == "--history-age") {
      c.history_age = std::stod(value());
      if (!(c.history_age > 0)) usage("--history-age takes SECONDS above 0");
    } else if (a == "--presence-interval") {
      c.presence_interval = std::stod(value());
      if (!(c.presence_interval > 0 && c.presence_interval <= 3600)) usage("--presence-interval takes 0 < SECONDS <= 3600");
    } else if (a == "--duplicates") {
      const auto d = value();
      if (d == "multi") c.duplicates = herald::duplicate_login::multi;
      else if (d == "replace") c.duplicates = herald::duplicate_login::replace;
      else if (d == "reject") c.duplicates = herald::duplicate_login::reject;
      else usage("--duplicates takes multi, replace or reject");
    } else if (a == "--help" || a == "-h") usage("help");
    else usage("unknown option");
  }
  if (c.http_port >= 0 && c.api_key.empty()) usage("--http-port needs --api-key (or HERALD_API_KEY)");
  if (c.prefix.empty()) usage("--prefix must not be empty");
  return c;
}

void listen_on(asio::ip::tcp::acceptor& acceptor, const std::string& address, unsigned short port) {
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(address), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
}

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  connections<session> conns;  // before io: session frames that io destroys at the end deregister from it
  asio::io_context io(1);
  conns.open_executor_hint = io.get_executor();

  herald::redis_cluster_options rc;
  rc.redis.host = cfg.redis_host;
  rc.redis.port = cfg.redis_port;
  rc.redis.password = cfg.redis_password;
  rc.redis.log = [](std::string_view line) { std::cout << line << std::endl; };
  rc.prefix = cfg.prefix;
  rc.node_id = cfg.node_id;
  rc.max_message_size = cfg.max_message;
  rc.presence_interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(cfg.presence_interval));
  auto stats = std::make_shared<herald::metrics>();
  herald::registry_options ro{.duplicates = cfg.duplicates, .metrics = stats};
  uid_protocol::enable_history(ro, cfg.history);  // --history N
  ro.history.max_age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(cfg.history_age));
  cluster_registry users(io.get_executor(), rc, ro);

  herald::session_options so;
  so.metrics = stats;
  so.max_message_size = cfg.max_message;
  so.send_queue_limit = 4 * cfg.max_message;  // room for several of the largest messages (see uid_push_server)
  so.idle_timeout = std::chrono::seconds(cfg.idle_timeout);
  auto options = std::make_shared<const herald::session_options>(so);

  asio::ip::tcp::acceptor acceptor(io);
  listen_on(acceptor, cfg.address, cfg.port);
  std::cout << "cluster_node " << users.node_id() << " listening on " << acceptor.local_endpoint() << " (redis "
            << cfg.redis_host << ":" << cfg.redis_port << ", prefix " << cfg.prefix << ")" << std::endl;
  asio::co_spawn(io, herald::accept_loop(acceptor, [&](asio::ip::tcp::socket s) {
                   asio::co_spawn(io, serve<session>(std::move(s), users, conns, options), asio::detached);
                 }), asio::detached);

  asio::ip::tcp::acceptor api_acceptor(io);
  if (cfg.http_port >= 0) {
    listen_on(api_acceptor, cfg.http_address, static_cast<unsigned short>(cfg.http_port));
    herald::http_api_options api;
    api.api_key = cfg.api_key;
    api.max_body_size = cfg.max_message;
    api.limit = std::make_shared<herald::session_limit>(1024);
    std::cout << "cluster_node http api on " << api_acceptor.local_endpoint() << std::endl;
    asio::co_spawn(io, herald::serve_http_api(api_acceptor, users, api), asio::detached);
  }

  // Shutdown: stop accepting, 1001 to every session, then stop once their closing handshakes
  // are done (or at a deadline, for peers that never answer).
  auto work = asio::make_work_guard(io);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer deadline(io);
  signals.async_wait([&](herald::error_code, int) {
    acceptor.close();
    herald::error_code ec;
    api_acceptor.close(ec);
    deadline.expires_after(so.close_timeout + 1s);
    deadline.async_wait([&](herald::error_code) { io.stop(); });
    conns.stop([&] { asio::post(io, [&] { io.stop(); }); });
  });
  io.run();
  const auto& r = users.redis_stats();
  const auto& c = users.cluster_stats();
  std::cout << "cluster_node stopped: redis published=" << r.published << " publish_dropped=" << r.publish_dropped
            << " publish_unconfirmed=" << r.publish_unconfirmed << " publish_errors=" << r.publish_errors
            << " received=" << r.received << " connects=" << r.connects << " connect_failures=" << r.connect_failures
            << " disconnects=" << r.disconnects << " redis_reconnects=" << stats->snapshot().redis_reconnects
            << " from_redis=" << c.from_redis << " own_echoes=" << c.own_echoes;
  if (cfg.history)
    std::cout << " history_reads=" << c.history_reads << " history_recovered=" << c.history_recovered
              << " history_not_recovered=" << c.history_not_recovered << " history_replayed=" << c.history_replayed
              << " history_gaps=" << c.history_gaps << " history_lost=" << c.history_lost;
  std::cout << std::endl;
  users.stop();
  return 0;
}
