// uid_push_server: the Workerman "send to a specific uid" example, in C++ with herald.
//
// Protocol (WebSocket, text):
//   first message        your uid: 1 to 128 bytes, no ':', not "all" (else close 1008 with the reason)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> goes to every session of <uid> (all its devices)
//   all:<message>        <message> goes to every logged-in session, the sender included
//   join:<name>          this session joins group <name> -> "joined <name>"
//   leave:<name>         this session leaves group <name> -> "left <name>"
//   group:<name>:<msg>   <msg> goes to every session in group <name> (the sender only if a member)
//   anything else        -> "error: expected <uid>:<message>"
// "all", "join", "leave" and "group" are reserved and refused as uids. Groups are left when
// the session ends.
// The split is at the first ':', so a message may contain colons. A closed session's uid
// is unbound; a second login of the same uid is governed by --duplicates.
//
// Usage (`uid_push_server --help` prints it all):
//        uid_push_server [--address A] [--port P] [--duplicates multi|replace|reject]
//                        [--max-message BYTES] [--idle-timeout SECONDS] [--threads N]
//                        [--handshake-timeout SECONDS] [--tls-cert FILE --tls-key FILE] [--web DIR]
//                        [--metrics-port P] [--http-port P [--http-address A] --api-key K] [--deflate]
// --threads N (default 1): N > 1 uses the multi_thread registry, one io_context per thread.
// --history N (default 0: off): keep the last N messages sent to each uid (for 5 minutes,
//   --history-age SECONDS), with offsets, so that a client that comes back resumes where it
//   was (uid_protocol.hpp has the headers this adds to every message, and the resume URL);
//   the HTTP API's /send answers with the offset it assigned. Off, nothing changes.
// --handshake-timeout S (default 10, fractions allowed): from accept to the end of the
//   opening handshake (the TLS handshake included); then the connection is dropped.
// --tls-cert F --tls-key F: wss:// only (PEM certificate chain and unencrypted key); needs a
//   build with OpenSSL (herald/tls.hpp). A failed TLS handshake costs only that connection.
// --web DIR: plain HTTP GET requests on the same port are answered with files from DIR
//   ("/" is index.html; 404 for a missing file, 405 for other methods), e.g. examples/web.
// --metrics-port P: Prometheus text at http://127.0.0.1:P/metrics (herald_sessions, ...).
// --send-queue-limit BYTES (default 4 x --max-message): bytes that may wait behind the frame
//   being written to a session; a reader that falls further behind is closed with 1008. Any
//   single message is always accepted, so keep it at several times --max-message.
// --origin ORIGIN (repeatable): only browsers on these origins may connect (else HTTP 403);
//   without it any origin is accepted.
// --rate-limit N: at most N messages per second per session (a burst of N); a session that
//   sends faster is closed with 1008 "rate limit exceeded". Default: off.
// --deflate: accept permessage-deflate (RFC 7692; needs a build with zlib). Off by default:
//   see README.md "permessage-deflate" for why and what it costs.
// --http-port P --api-key K: the HTTP push API of herald/http_api.hpp on 127.0.0.1:P (or
//   --http-address), for other programs (PHP, cron jobs, curl) to push without WebSocket;
//   every request needs "Authorization: Bearer K" (the key may come from HERALD_API_KEY
//   instead, to keep it out of `ps`):
//     POST /send/<uid>, POST /group/<name>, POST /broadcast   body = the message -> {"delivered": n}
//     GET /online/<uid> -> {"online": b}    GET /presence -> {"uids": n, "sessions": m}
//     GET /metrics -> the Prometheus text of --metrics-port
//   e.g. curl -H 'Authorization: Bearer K' -d 'hello' http://127.0.0.1:P/send/alice
// SIGINT/SIGTERM close every session with 1001 and exit 0.
// To start your own server from this one, copy it with uid_protocol.hpp (the login rule and
// the message handling, shared with cluster_node.cpp).
#include <herald.hpp>
#include <herald/http_api.hpp>
#if HERALD_EXAMPLE_TLS
#include <herald/tls.hpp>
#endif

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>
#include <iostream>
#include <string>

#include "deflate_option.hpp"
#include "uid_protocol.hpp"

using namespace std::chrono_literals;
using session = herald::ws_session<>;  // plain TCP; with --tls-cert: herald::tls_session

namespace {

// The connection loop (serve), the login rule and the message handling are the protocol's,
// shared with cluster_node.
using uid_protocol::connections;
using uid_protocol::serve;

// ---- --metrics-port P: GET /metrics in Prometheus text, one request per connection ----

asio::awaitable<void> serve_metrics(asio::ip::tcp::socket s, std::shared_ptr<herald::metrics> stats) {
  std::string head;
  herald::http::request req;
  herald::http::parse_status parsed;
  asio::steady_timer deadline(s.get_executor(), 5s);  // a slow client costs at most this
  deadline.async_wait([&s](herald::error_code ec) {
    if (!ec) s.close();
  });
  do {
    char buf[1024];
    herald::error_code ec;
    const std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    head.append(buf, n);
    parsed = herald::http::parse_request(head, 8192, req);
  } while (parsed.kind == herald::http::parse_status::need_more);
  std::string response;
  if (parsed.kind == herald::http::parse_status::error) response = herald::http::error_response(parsed.status, parsed.reason);
  else if (req.method != "GET") response = herald::http::error_response(405, "only GET", "Allow: GET\r\n");
  else if (req.target != "/metrics") response = herald::http::error_response(404, "try /metrics");
  else {
    const std::string body = stats->prometheus();
    response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }
  herald::error_code ec;
  co_await asio::async_write(s, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
  s.shutdown(asio::socket_base::shutdown_send, ec);
  deadline.cancel();
}

// ---- --web DIR: static files over plain HTTP GET on the WebSocket port ----

std::string http_response(int status, std::string_view reason, std::string_view content_type, std::string_view body,
                          std::string_view extra_headers = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n";
  r += extra_headers;
  r += "Connection: close\r\n\r\n";
  r += body;
  return r;
}

std::string http_error(int status, std::string_view reason, std::string_view extra_headers = {}) {
  return http_response(status, reason, "text/plain; charset=utf-8", std::string(reason) + "\n", extra_headers);
}

std::string_view content_type_of(const std::filesystem::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".png") return "image/png";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".json") return "application/json";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

// "/a%20b.html?x=1" -> "/a b.html"; nullopt for a malformed escape or a NUL byte.
std::optional<std::string> decode_path(std::string_view target) {
  target = target.substr(0, target.find_first_of("?#"));
  std::string out;
  for (std::size_t i = 0; i < target.size(); ++i) {
    char c = target[i];
    if (c == '%') {
      auto hex = [](char h) {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      if (i + 2 >= target.size()) return std::nullopt;
      const int hi = hex(target[i + 1]), lo = hex(target[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

// The answer to a plain HTTP request: a file of `root` for GET, an error otherwise.
std::string serve_file(const std::filesystem::path& root, const herald::http::request& req) {
  if (req.method != "GET") return http_error(405, "Method Not Allowed", "Allow: GET\r\n");
  const auto path = decode_path(req.target);
  if (!path || path->empty() || path->front() != '/') return http_error(400, "Bad Request");
  // No way out of root: no ".." anywhere, no backslashes; symlinks are checked below.
  if (path->find("..") != std::string::npos || path->find('\\') != std::string::npos)
    return http_error(403, "Forbidden");
  std::string relative = path->substr(1);
  if (relative.empty() || relative.back() == '/') relative += "index.html";
  std::error_code ec;  // std::filesystem's, in either Asio mode
  const auto file = std::filesystem::weakly_canonical(root / relative, ec);
  if (ec || !std::filesystem::is_regular_file(file, ec)) return http_error(404, "Not Found");
  std::string inside = root.string();
  if (inside.back() != '/') inside += '/';
  if (file.string().compare(0, inside.size(), inside) != 0) return http_error(404, "Not Found");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in) return http_error(500, "Internal Server Error");
  return http_response(200, "OK", content_type_of(file), body.str());
}

struct config {
  std::string address = "0.0.0.0";
  unsigned short port = 1234;
  herald::duplicate_login duplicates = herald::duplicate_login::multi;
  std::size_t max_message = 1024 * 1024;
  int idle_timeout = 30;
  double handshake_timeout = 10;
  int threads = 1;
  std::size_t history = 0;     // --history N: messages kept per uid (0: off)
  double history_age = 300;    // --history-age SECONDS
  std::string tls_cert, tls_key;
  std::string web_dir;  // canonical, when set
  unsigned short metrics_port = 0;
  std::size_t send_queue_limit = 0;  // 0: 4 x max_message
  std::vector<std::string> origins;
  double rate_limit = 0;
  int http_port = -1;  // -1: no HTTP push API
  std::string http_address = "127.0.0.1";
  std::string api_key;
  bool deflate = false;  // --deflate: permessage-deflate (needs zlib)
};

constexpr const char* usage_text =
    "usage: uid_push_server [options]\n"
    "A WebSocket push server. A connection's first message is its uid; then it sends <uid>:<message>,\n"
    "all:<message>, join:<name>, leave:<name> or group:<name>:<message> (README.md has the protocol).\n"
    "\n"
    "  --address A              address to listen on (default 0.0.0.0)\n"
    "  --port P                 WebSocket port (default 1234; 0: any free port, printed at start)\n"
    "  --duplicates MODE        a second login of a uid: multi (default: every device receives),\n"
    "                           replace (the older session gets close 4000) or reject (the new one gets 1008)\n"
    "  --max-message BYTES      largest message, in or pushed (default 1048576); beyond: close 1009, HTTP 413\n"
    "  --idle-timeout SECONDS   a silent connection is pinged after this, dropped as long again later (default 30)\n"
    "  --handshake-timeout S    from accept to the end of the opening handshake, TLS included (default 10)\n"
    "  --threads N              N > 1: the multi_thread registry, one io_context per thread (default 1)\n"
    "  --history N              keep the last N messages to each uid with offsets, for clients that resume\n"
    "                           (default 0: off; every message then carries a header, see uid_protocol.hpp)\n"
    "  --history-age SECONDS    how long history keeps a message (default 300)\n"
    "  --tls-cert FILE --tls-key FILE\n"
    "                           serve wss:// (PEM certificate chain, unencrypted key); needs a build with OpenSSL\n"
    "  --web DIR                answer plain HTTP GET on the WebSocket port with DIR's files (e.g. examples/web)\n"
    "  --metrics-port P         Prometheus text at http://127.0.0.1:P/metrics\n"
    "  --http-port P            the HTTP push API on P (needs --api-key): POST /send/<uid>, /broadcast,\n"
    "                           /group/<name> (body = the message); GET /online/<uid>, /presence, /metrics\n"
    "  --http-address A         address of the HTTP push API (default 127.0.0.1)\n"
    "  --api-key K              the API's key: requests need \"Authorization: Bearer K\" (or set HERALD_API_KEY)\n"
    "  --send-queue-limit BYTES what may wait behind the frame being written to a session (default 4 x\n"
    "                           --max-message); a reader further behind is closed with 1008\n"
    "  --origin ORIGIN          only pages from this origin may connect (repeatable; others: HTTP 403;\n"
    "                           default: any origin)\n"
    "  --rate-limit N           at most N messages per second per session, else close 1008 (default: off)\n"
    "  --deflate                accept permessage-deflate: messages of 256 bytes and more are compressed\n"
    "                           once for all deflate clients (default: off); needs a build with zlib\n"
    "  -h, --help               print this and exit\n"
    "\n"
    "SIGINT/SIGTERM close every session with 1001 and exit 0.\n"
    "Push from another program: curl -H 'Authorization: Bearer K' -d 'hello' http://127.0.0.1:P/send/alice\n";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "uid_push_server: %s\n(uid_push_server --help lists the options)\n", why.c_str());
  std::exit(2);
}

config parse_args(int argc, char** argv) {
  config c;
  if (const char* key = std::getenv("HERALD_API_KEY")) c.api_key = key;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value after " + std::string(a));
      return argv[++i];
    };
    auto port = [&]() -> int {
      const std::string v = value();
      std::size_t end = 0;
      int p = -1;
      try {
        p = std::stoi(v, &end);
      } catch (const std::exception&) {
      }
      if (end != v.size() || p < 0 || p > 65535) usage(std::string(a) + " takes a port number (0 to 65535), not '" + v + "'");
      return p;
    };
    if (a == "--address") c.address = value();
    else if (a == "--port") c.port = static_cast<unsigned short>(port());
    else if (a == "--max-message") c.max_message = std::stoul(value());
    else if (a == "--idle-timeout") c.idle_timeout = std::stoi(value());
    else if (a == "--handshake-timeout") {
      c.handshake_timeout = std::stod(value());
      if (!(c.handshake_timeout > 0 && c.handshake_timeout <= 3600)) usage("--handshake-timeout takes 0 < SECONDS <= 3600");
    } else if (a == "--threads") c.threads = std::max(1, std::stoi(value()));
    else if (a == "--history") c.history = std::stoul(value());
    else if (a == "--history-age") {
      c.history_age = std::stod(value());
      if (!(c.history_age > 0)) usage("--history-age takes SECONDS above 0");
    }
    else if (a == "--tls-cert") c.tls_cert = value();
    else if (a == "--tls-key") c.tls_key = value();
    else if (a == "--metrics-port") c.metrics_port = static_cast<unsigned short>(port());
    else if (a == "--http-port") c.http_port = port();
    else if (a == "--http-address") c.http_address = value();
    else if (a == "--api-key") c.api_key = value();
    else if (a == "--send-queue-limit") c.send_queue_limit = std::stoul(value());
    else if (a == "--origin") c.origins.push_back(value());
    else if (a == "--deflate") c.deflate = deflate_option("uid_push_server");
    else if (a == "--rate-limit") {
      c.rate_limit = std::stod(value());
      if (!(c.rate_limit > 0)) usage("--rate-limit takes a number of messages per second above 0");
    }
    else if (a == "--web") {
      std::error_code ec;
      const auto dir = std::filesystem::canonical(value(), ec);
      if (ec || !std::filesystem::is_directory(dir, ec)) usage("--web takes an existing directory");
      c.web_dir = dir.string();
    } else if (a == "--duplicates") {
      const auto d = value();
      if (d == "multi") c.duplicates = herald::duplicate_login::multi;
      else if (d == "replace") c.duplicates = herald::duplicate_login::replace;
      else if (d == "reject") c.duplicates = herald::duplicate_login::reject;
      else usage("--duplicates takes multi, replace or reject");
    } else if (a == "--help" || a == "-h") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else usage("unknown option " + std::string(a));
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) usage("--tls-cert and --tls-key go together");
  if (c.http_port >= 0 && c.api_key.empty())
    usage("--http-port needs --api-key K (or HERALD_API_KEY): an API without a key would refuse every request");
  return c;
}

// Runs the server on `threads` io_contexts, one per thread; sockets are dealt out in turn and
// made into the session's stream by `make_stream` (identity, or a TLS stream).
template <class Session, class Registry, class MakeStream>
int run(const config& cfg, std::vector<std::unique_ptr<asio::io_context>>& contexts, Registry& users,
        MakeStream make_stream, const char* scheme, std::shared_ptr<herald::metrics> stats) {
  asio::io_context& io = *contexts.front();
  herald::session_options so;
  so.metrics = stats;
  so.max_message_size = cfg.max_message;
  // What waits behind the frame being written: room for several of the largest messages.
  so.send_queue_limit = cfg.send_queue_limit ? cfg.send_queue_limit : 4 * cfg.max_message;
  so.allowed_origins = cfg.origins;
  so.rate_limit.messages_per_second = cfg.rate_limit;
  so.idle_timeout = std::chrono::seconds(cfg.idle_timeout);
  so.handshake_timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(cfg.handshake_timeout));
  if (!cfg.web_dir.empty()) {
    so.http_fallback = [root = std::filesystem::path(cfg.web_dir)](const herald::http::request& req) {
      return std::optional<std::string>(serve_file(root, req));
    };
  }
  if (cfg.deflate) enable_example_deflate(so);
  auto options = std::make_shared<const herald::session_options>(so);

  asio::ip::tcp::acceptor acceptor(io);
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(cfg.address), cfg.port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  std::cout << "uid_push_server listening on " << acceptor.local_endpoint() << " (" << contexts.size()
            << (contexts.size() == 1 ? " thread" : " threads") << (std::string_view(scheme) == "wss" ? ", wss" : "")
            << (cfg.web_dir.empty() ? "" : ", web page from " + cfg.web_dir) << (cfg.deflate ? ", permessage-deflate" : "")
            << ")" << std::endl;

  connections<Session> conns;
  conns.open_executor_hint = io.get_executor();
  herald::accept_loop_options lo;
  for (auto& c : contexts) lo.executors.push_back(c->get_executor());
  asio::co_spawn(io, herald::accept_loop(acceptor, [&](asio::ip::tcp::socket s) {
                   auto ex = s.get_executor();  // the session's thread
                   asio::co_spawn(ex, serve<Session>(make_stream(std::move(s)), users, conns, options), asio::detached);
                 }, lo), asio::detached);

  // --http-port: the HTTP push API, on the first io_context (the single_thread registry's
  // thread; the multi_thread registry may be called from any thread), plus GET /metrics.
  asio::ip::tcp::acceptor api_acceptor(io);
  if (cfg.http_port >= 0) {
    const asio::ip::tcp::endpoint api_endpoint(asio::ip::make_address(cfg.http_address),
                                               static_cast<unsigned short>(cfg.http_port));
    api_acceptor.open(api_endpoint.protocol());
    api_acceptor.set_option(asio::socket_base::reuse_address(true));
    api_acceptor.bind(api_endpoint);
    api_acceptor.listen(asio::socket_base::max_listen_connections);
    herald::http_api_options api;
    api.api_key = cfg.api_key;
    api.max_body_size = cfg.max_message;
    api.limit = std::make_shared<herald::session_limit>(1024);
    api.extra_routes = [stats](const herald::http::request& req, std::string_view) -> std::optional<herald::http_api_answer> {
      if (req.target.substr(0, req.target.find('?')) != "/metrics") return std::nullopt;
      if (req.method != "GET") return herald::http_api_answer{405, "text/plain; charset=utf-8", "only GET\n", "Allow: GET\r\n"};
      return herald::http_api_answer{200, "text/plain; version=0.0.4", stats->prometheus(), ""};
    };
    std::cout << "uid_push_server http api on " << api_acceptor.local_endpoint() << std::endl;
    asio::co_spawn(io, herald::serve_http_api(api_acceptor, users, std::move(api)), asio::detached);
  }

  asio::ip::tcp::acceptor metrics_acceptor(io);
  if (cfg.metrics_port) {
    metrics_acceptor = asio::ip::tcp::acceptor(io, {asio::ip::make_address("127.0.0.1"), cfg.metrics_port});
    asio::co_spawn(io, herald::accept_loop(metrics_acceptor, [stats](asio::ip::tcp::socket s) {
                     auto ex = s.get_executor();
                     asio::co_spawn(ex, serve_metrics(std::move(s), stats), asio::detached);
                   }), asio::detached);
  }

  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  for (auto& c : contexts) keep_running.push_back(asio::make_work_guard(*c));
  auto stop_all = [&] {
    for (auto& c : contexts) c->stop();
  };

  // Shutdown: stop accepting, send 1001 to every connection, and stop once their closing
  // handshakes are done (or at a deadline, for peers that never answer).
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer deadline(io);
  signals.async_wait([&](herald::error_code, int) {
    acceptor.close();
    if (metrics_acceptor.is_open()) metrics_acceptor.close();
    if (api_acceptor.is_open()) api_acceptor.close();
    deadline.expires_after(so.close_timeout + 1s);
    deadline.async_wait([&](herald::error_code) { stop_all(); });
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

// The registry for the thread count: single_thread for one, multi_thread (one lane per
// io_context) for more. Its Session type is the one the connections use.
template <class Session, class MakeStream>
int start(const config& cfg, std::vector<std::unique_ptr<asio::io_context>>& contexts, MakeStream make_stream,
          const char* scheme) {
  auto stats = std::make_shared<herald::metrics>();
  herald::registry_options ro{.duplicates = cfg.duplicates, .metrics = stats};
  uid_protocol::enable_history(ro, cfg.history);  // --history N
  ro.history.max_age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(cfg.history_age));
  if (cfg.threads == 1) {
    // The registry's thread is named now, so that what the HTTP API pushes before the first
    // login is recorded too.
    herald::registry<Session, herald::single_thread> users(contexts.front()->get_executor(), ro);
    return run<Session>(cfg, contexts, users, make_stream, scheme, stats);
  }
  std::vector<asio::any_io_executor> lanes;
  for (auto& c : contexts) lanes.push_back(c->get_executor());
  herald::registry<Session, herald::multi_thread> users(lanes, ro);
  return run<Session>(cfg, contexts, users, make_stream, scheme, stats);
}

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int i = 0; i < cfg.threads; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
  if (!cfg.tls_cert.empty()) {
#if HERALD_EXAMPLE_TLS
    auto tls = herald::make_tls_server_context(cfg.tls_cert, cfg.tls_key);
    if (!tls) {
      std::fprintf(stderr, "uid_push_server: %s\n", tls.error.c_str());
      return 1;
    }
    std::shared_ptr<asio::ssl::context> ctx = tls.context;  // outlives every session
    return start<herald::tls_session>(cfg, contexts, [ctx](asio::ip::tcp::socket s) {
      return herald::tls_stream(std::move(s), *ctx);
    }, "wss");
#else
    std::fprintf(stderr,
                 "uid_push_server: built without OpenSSL, so --tls-cert/--tls-key are not available "
                 "(Debian: apt-get install libssl-dev, then rebuild)\n");
    return 2;
#endif
  }
  return start<session>(cfg, contexts, [](asio::ip::tcp::socket s) { return s; }, "ws");
}
