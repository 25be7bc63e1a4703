// An HTTP push API, so that other systems (PHP, cron jobs, curl) can push without WebSocket:
//
//   POST /send/<uid>     body = the message  -> 200 {"delivered": n}
//                        (with history on: {"delivered": n, "epoch": "<e>", "offset": k}, where
//                        the message is in the uid's history; see history.hpp)
//   POST /group/<name>   body = the message  -> 200 {"delivered": n}   (send_to_group)
//   POST /broadcast      body = the message  -> 200 {"delivered": n}
//   GET  /online/<uid>                       -> 200 {"online": true}
//   GET  /presence                           -> 200 {"uids": n, "sessions": m}
//
// Every request needs `Authorization: Bearer <api_key>` (else 401). <uid> and <name> are
// percent-decoded.
// The body is sent as a text message (it must be UTF-8, else 400), or as a binary one with
// `Content-Type: application/octet-stream`. "delivered" counts the sessions of this server the
// message was queued to. Bodies need a Content-Length (chunked: 411); over max_body_size: 413
// (then the connection closes). Unknown paths 404, wrong methods 405 (with Allow). HTTP/1.1
// keep-alive and pipelining; `Expect: 100-continue` is answered. Responses are JSON.
//
// An application adds endpoints of its own with http_api_options::extra_routes (e.g.
// uid_push_server's GET /metrics): asked, after the key is checked, for every request the
// endpoints above do not take; its answer's status, type and body are sent as they are.
//
// It works with any registry policy:
//   - single_thread / multi_thread: as above;
//   - redis_cluster: the answers add the cluster: {"delivered": n, "published": true,
//     "nodes": k} (k other nodes took it from Redis; "published": false when Redis is down),
//     and with history /send adds "epoch" and "offset" (assigned in Redis)
//     and {"online": b, "scope": "cluster"} (PUBSUB NUMSUB; "local" when Redis did not answer);
//     /presence answers {"uids": n, "sessions": m, "nodes": k, "scope": "cluster"} (the
//     cluster-wide counts of policy/redis_cluster.hpp, with their cost; "local" and this
//     node's counts when Redis did not answer).
//
//   herald::http_api_options api;  api.api_key = "secret";
//   asio::co_spawn(io, herald::serve_http_api(acceptor, users, api), asio::detached);
//
// The API's connections run on the acceptor's executor: for single_thread and redis_cluster,
// the registry's thread. Parsing is http::parse_request, the same parser as the handshake.
#ifndef HERALD_HTTP_API_HPP
#define HERALD_HTTP_API_HPP
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "detail/asio.hpp"
#include "detail/utf8.hpp"
#include "history.hpp"
#include "http/request.hpp"
#include "listen.hpp"
#include "message.hpp"
#include "options.hpp"

namespace herald {


// The answer of an application's own endpoint (http_api_options::extra_routes).
struct http_api_answer {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string headers;  // extra header lines, each ending in "\r\n" (e.g. "Allow: GET\r\n")
};

struct http_api_options {
  // Requests must carry "Authorization: Bearer <api_key>". An empty key refuses everything.
  std::string api_key;
  std::size_t max_body_size = 64 * 1024;  // beyond: 413
  std::size_t max_head_size = 8 * 1024;   // beyond: 431
  // Each step of one request once its first byte has arrived: receiving the head, receiving
  // the body, each write of the answer (so one request may take up to about three of these).
  std::chrono::steady_clock::duration request_timeout = std::chrono::seconds(10);
  // A keep-alive connection idle for this long is closed.
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(30);
  // Optional cap on concurrent API connections; past it: 503 and close.
  std::shared_ptr<session_limit> limit;
  // Optional: the application's own endpoints. Called on the connection's thread, after the
  // key is checked, for a request no endpoint above takes (with its body, at most
  // max_body_size bytes); std::nullopt answers 404. It must not throw.
  std::function<std::optional<http_api_answer>(const http::request& request, std::string_view body)> extra_routes;
};

namespace http_api_detail {

// "%41b" -> "Ab"; nullopt for a malformed escape.
inline std::optional<std::string> percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// Compares without stopping at the first difference (the key is a secret).
inline bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  const std::size_t n = a.size() > b.size() ? a.size() : b.size();
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

inline bool authorized(const http::request& req, const std::string& key) {
  if (key.empty()) return false;
  std::string_view v = http::trim(req.header("Authorization"));
  if (v.size() < 7 || !http::iequals(v.substr(0, 7), "Bearer ")) return false;
  return same_secret(http::trim(v.substr(7)), key);
}

inline const char* reason_phrase(int status) {
  return status == 411 ? "Length Required" : http::status_text(status);
}

inline std::string response_of(int status, std::string_view content_type, std::string_view body, bool keep_alive,
                               std::string_view extra_headers = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  r += extra_headers;
  r += "\r\n";
  r += body;
  return r;
}

inline std::string response(int status, std::string_view json, bool keep_alive, std::string_view extra_headers = {}) {
  std::string body(json);
  body += '\n';
  return response_of(status, "application/json", body, keep_alive, extra_headers);
}

inline std::string error_json(std::string_view why) {
  std::string j = "{\"error\": \"";
  for (char c : why) {  // our own reasons: plain ASCII, but escape anyway
    if (c == '"' || c == '\\') j += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) j += c;
  }
  j += "\"}";
  return j;
}

inline constexpr std::string_view no_such_endpoint =
    "no such endpoint (POST /send/<uid>, POST /group/<name>, POST /broadcast, GET /online/<uid>, GET /presence)";

enum class route_kind { none, send, group, broadcast, online, presence, extra };
struct route {
  route_kind kind = route_kind::none;
  const char* method = "";    // the one it takes
  std::string_view raw_name;  // the uid or group, percent-encoded
};

inline route route_of(std::string_view target) {
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  if (path.substr(0, 6) == "/send/" && path.size() > 6) return {route_kind::send, "POST", path.substr(6)};
  if (path.substr(0, 7) == "/group/" && path.size() > 7) return {route_kind::group, "POST", path.substr(7)};
  if (path == "/broadcast") return {route_kind::broadcast, "POST", {}};
  if (path.substr(0, 8) == "/online/" && path.size() > 8) return {route_kind::online, "GET", path.substr(8)};
  if (path == "/presence") return {route_kind::presence, "GET", {}};
  return {};
}

// A registry that can say what happened beyond this node (redis_cluster).
template <class R>
concept clustered = requires(R& r, const std::string& uid, const message& m) {
  r.online_in_cluster(uid);
  r.unicast_confirmed(uid, m);
  r.send_to_group_confirmed(uid, m);
  r.broadcast_confirmed(m);
  r.uid_count_in_cluster();
  r.session_count_in_cluster();
  r.node_count_in_cluster();
};

// A registry that keeps history in memory (single_thread, multi_thread): /send answers with the
// offset it assigned when history is on.
template <class R>
concept recording = requires(R& r, const std::string& uid, const message& m) {
  r.unicast_recorded(uid, m);
  r.options().history.enabled();
};

inline std::string delivered_json(std::size_t local) { return "{\"delivered\": " + std::to_string(local) + "}"; }

// ", \"epoch\": \"<epoch>\", \"offset\": <n>" (the epoch is [0-9a-f] or empty: no escaping).
inline std::string position_json(const stream_position& p) {
  return ", \"epoch\": \"" + p.epoch + "\", \"offset\": " + std::to_string(p.offset);
}

template <class Delivery>
std::string cluster_delivered_json(const Delivery& d) {
  std::string j = "{\"delivered\": " + std::to_string(d.local) + ", \"published\": ";
  j += d.nodes ? "true, \"nodes\": " + std::to_string(*d.nodes) : std::string("false");
  if constexpr (requires { d.position; }) {
    if (d.position) j += position_json(*d.position);
  }
  j += "}";
  return j;
}

// One API connection: requests in order until the peer closes, a deadline passes or an
// error answer ends it.
template <class Registry>
class connection : public std::enable_shared_from_this<connection<Registry>> {
 public:
  connection(asio::ip::tcp::socket s, Registry& users, std::shared_ptr<const http_api_options> o)
      : socket_(std::move(s)), timer_(socket_.get_executor()), users_(users), opts_(std::move(o)) {}
  ~connection() {
    if (holds_slot_) opts_->limit->release();
  }

  asio::awaitable<void> run() {
    auto self = this->shared_from_this();
    error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    if (opts_->limit) {
      if (!opts_->limit->try_acquire()) {
        const std::string busy = response(503, error_json("too many API connections"), false, "Retry-After: 5\r\n");
        co_await write_all(busy);
        co_return;
      }
      holds_slot_ = true;
    }
    for (;;) {
      const bool more = co_await one_request();
      if (!more) break;
    }
    close_socket();
  }

 private:
  // Reads, answers and returns whether the connection stays open for another request.
  asio::awaitable<bool> one_request() {
    // The head: wait up to idle_timeout for its first byte, then request_timeout for the rest.
    http::request req;
    http::parse_status parsed;
    arm(buf_.empty() ? opts_->idle_timeout : opts_->request_timeout);
    for (;;) {
      parsed = http::parse_request(buf_, opts_->max_head_size, req);
      if (parsed.kind != http::parse_status::need_more) break;
      const bool got = co_await read_more();
      if (!got) co_return false;
      if (buf_.size() > 0 && !request_started_) {
        request_started_ = true;
        arm(opts_->request_timeout);
      }
    }
    request_started_ = false;
    if (parsed.kind == http::parse_status::error) {
      const std::string answer = response(parsed.status, error_json(parsed.reason), false);
      co_await finish_with(answer);
      co_return false;
    }
    buf_.erase(0, parsed.head_size);

    bool keep_alive = req.version_minor >= 1 ? !http::has_token(req.header("Connection"), "close")
                                             : http::has_token(req.header("Connection"), "keep-alive");
    // The body's length.
    std::size_t length = 0;
    bool bad_length = false;
    if (req.has_header("Transfer-Encoding")) {
      const std::string answer = response(411, error_json("a body needs a Content-Length (no chunked encoding)"), false);
      co_await finish_with(answer);
      co_return false;
    }
    if (req.has_header("Content-Length")) {
      const std::string_view v = req.header("Content-Length");
      if (v.empty() || v.size() > 18) bad_length = true;
      for (char c : v) {
        if (c < '0' || c > '9') bad_length = true;
        else length = length * 10 + static_cast<std::size_t>(c - '0');
      }
    }
    if (bad_length) {
      const std::string answer = response(400, error_json("malformed Content-Length"), false);
      co_await finish_with(answer);
      co_return false;
    }

    // Who, where, how much: decided before reading the body.
    int status = 0;
    std::string json;
    std::string extra;
    route r = route_of(req.target);
    if (r.kind == route_kind::none && opts_->extra_routes) r.kind = route_kind::extra;  // any method
    std::optional<std::string> name;  // the uid or group
    if (!authorized(req, opts_->api_key)) {
      status = 401;
      json = error_json("missing or wrong API key (Authorization: Bearer <key>)");
      extra = "WWW-Authenticate: Bearer realm=\"herald\"\r\n";
    } else if (r.kind == route_kind::none) {
      status = 404;
      json = error_json(no_such_endpoint);
    } else if (r.kind != route_kind::extra && req.method != r.method) {
      status = 405;
      json = error_json("method not allowed");
      extra = std::string("Allow: ") + r.method + "\r\n";
    } else if (length > opts_->max_body_size) {
      status = 413;
      json = error_json("body over the size limit (" + std::to_string(opts_->max_body_size) + " bytes)");
      keep_alive = false;
    } else if (!r.raw_name.empty()) {
      name = percent_decode(r.raw_name);
      const char* what = r.kind == route_kind::group ? "group" : "uid";
      if (!name) {
        status = 400;
        json = error_json(std::string("malformed percent-encoding in the ") + what);
      } else if (name->empty() || name->size() > 1024) {
        status = 404;
        json = error_json(std::string("no such ") + what);
      }
    }
    if (status != 0) {
      // An error answer. A small body that is already on its way is read and dropped so the
      // connection can carry on; otherwise (large, or the client waits for 100-continue) close.
      const bool expects_continue = http::iequals(http::trim(req.header("Expect")), "100-continue");
      if (length > opts_->max_body_size || expects_continue) keep_alive = false;
      if (keep_alive && length > 0) {
        const bool got = co_await read_body(length);
        if (!got) co_return false;
        buf_.erase(0, length);
      }
      const std::string answer = response(status, json, keep_alive, extra);
      if (!keep_alive) {
        co_await finish_with(answer);
        co_return false;
      }
      const bool sent = co_await write_all(answer);
      co_return sent;
    }

    // Accepted: fetch the body and act.
    if (length > 0 && http::iequals(http::trim(req.header("Expect")), "100-continue") && buf_.size() < length) {
      const std::string go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      const bool sent = co_await write_all(go_on);
      if (!sent) co_return false;
    }
    const bool got = co_await read_body(length);
    if (!got) co_return false;
    std::string body = buf_.substr(0, length);
    buf_.erase(0, length);

    if (r.kind == route_kind::extra) {
      std::optional<http_api_answer> a = opts_->extra_routes(req, body);
      const std::string answer =
          a ? response_of(a->status, a->content_type, a->body, keep_alive, a->headers)
            : response(404, error_json(no_such_endpoint), keep_alive);
      if (!keep_alive) {
        co_await finish_with(answer);
        co_return false;
      }
      const bool sent = co_await write_all(answer);
      co_return sent;
    }

    std::string answer_json;
    if (r.kind == route_kind::online) {
      answer_json = co_await online_json(*name);
    } else if (r.kind == route_kind::presence) {
      answer_json = co_await presence_json();
    } else {
      const bool binary = http::iequals(http::trim(req.header("Content-Type")), "application/octet-stream");
      if (!binary && !detail::is_valid_utf8(body.data(), body.size())) {
        status = 400;
        answer_json = error_json("the body is not UTF-8 (send Content-Type: application/octet-stream for binary)");
      } else {
        message m = binary ? message::binary(std::string_view(body)) : message::text(body);
        if (r.kind == route_kind::send) answer_json = co_await send_json(*name, m);
        else if (r.kind == route_kind::group) answer_json = co_await group_json(*name, m);
        else answer_json = co_await broadcast_json(m);
      }
    }
    const std::string answer = response(status == 0 ? 200 : status, answer_json, keep_alive);
    if (!keep_alive) {
      co_await finish_with(answer);
      co_return false;
    }
    const bool sent = co_await write_all(answer);
    co_return sent;
  }

  asio::awaitable<std::string> send_json(const std::string& uid, const message& m) {
    std::string j;
    if constexpr (clustered<Registry>) {
      const auto d = co_await users_.unicast_confirmed(uid, m);
      j = cluster_delivered_json(d);
    } else if constexpr (recording<Registry>) {
      if (users_.options().history.enabled()) {
        const recorded_delivery d = users_.unicast_recorded(uid, m);
        j = delivered_json(d.queued);
        if (d.recorded) j.insert(j.size() - 1, position_json(d.position));
      } else {
        j = delivered_json(users_.unicast(uid, m));
      }
    } else {
      j = delivered_json(users_.unicast(uid, m));
    }
    co_return j;
  }

  asio::awaitable<std::string> group_json(const std::string& group, const message& m) {
    std::string j;
    if constexpr (clustered<Registry>) {
      const auto d = co_await users_.send_to_group_confirmed(group, m);
      j = cluster_delivered_json(d);
    } else {
      j = delivered_json(users_.send_to_group(group, m));
    }
    co_return j;
  }

  asio::awaitable<std::string> presence_json() {
    std::string j;
    if constexpr (clustered<Registry>) {
      const auto u = co_await users_.uid_count_in_cluster();
      const auto s = co_await users_.session_count_in_cluster();
      const auto n = co_await users_.node_count_in_cluster();
      if (u.cluster_wide && s.cluster_wide && n.cluster_wide) {
        j = "{\"uids\": " + std::to_string(u.count) + ", \"sessions\": " + std::to_string(s.count) +
            ", \"nodes\": " + std::to_string(n.count) + ", \"scope\": \"cluster\"}";
      } else {
        j = "{\"uids\": " + std::to_string(users_.uid_count()) + ", \"sessions\": " +
            std::to_string(users_.session_count()) + ", \"nodes\": 1, \"scope\": \"local\"}";
      }
    } else {
      j = "{\"uids\": " + std::to_string(users_.uid_count()) + ", \"sessions\": " + std::to_string(users_.session_count()) + "}";
    }
    co_return j;
  }

  asio::awaitable<std::string> broadcast_json(const message& m) {
    std::string j;
    if constexpr (clustered<Registry>) {
      const auto d = co_await users_.broadcast_confirmed(m);
      j = cluster_delivered_json(d);
    } else {
      j = delivered_json(users_.broadcast(m));
    }
    co_return j;
  }

  asio::awaitable<std::string> online_json(const std::string& uid) {
    std::string j;
    if constexpr (clustered<Registry>) {
      const auto p = co_await users_.online_in_cluster(uid);
      j = std::string("{\"online\": ") + (p.online ? "true" : "false") + ", \"scope\": \"" +
          (p.cluster_wide ? "cluster" : "local") + "\"}";
    } else {
      j = std::string("{\"online\": ") + (users_.online(uid) ? "true" : "false") + "}";
    }
    co_return j;
  }

  // Until buf_ holds `length` bytes of body (under request_timeout).
  asio::awaitable<bool> read_body(std::size_t length) {
    arm(opts_->request_timeout);
    while (buf_.size() < length) {
      const bool got = co_await read_more();
      if (!got) co_return false;
    }
    co_return true;
  }

  asio::awaitable<bool> read_more() {
    char chunk[4096];
    error_code ec;
    const std::size_t n = co_await socket_.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (ec || closed_) co_return false;
    buf_.append(chunk, n);
    co_return true;
  }

  asio::awaitable<bool> write_all(const std::string& bytes) {
    arm(opts_->request_timeout);
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec && !closed_;
  }

  // The last answer on this connection: write it, half-close, and read (and drop) what the
  // peer still sends for a moment, so the answer is not lost to a reset.
  asio::awaitable<void> finish_with(const std::string& bytes) {
    const bool sent = co_await write_all(bytes);
    if (!sent) co_return;
    error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_send, ec);
    arm(std::chrono::seconds(2));
    char sink[4096];
    std::size_t drained = 0;
    while (!ec && !closed_ && drained < (1u << 20)) {
      drained += co_await socket_.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // Closes the socket when `d` passes without a new arm().
  void arm(std::chrono::steady_clock::duration d) {
    const auto generation = ++generation_;
    timer_.expires_after(d);
    timer_.async_wait([weak = this->weak_from_this(), generation](error_code ec) {
      if (ec) return;
      auto self = weak.lock();
      if (self && self->generation_ == generation) self->close_socket();
    });
  }

  void close_socket() {
    if (closed_) return;
    closed_ = true;
    ++generation_;
    timer_.cancel();
    error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
  }

  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;
  Registry& users_;
  std::shared_ptr<const http_api_options> opts_;
  std::string buf_;  // received, not yet consumed
  std::uint64_t generation_ = 0;
  bool request_started_ = false;
  bool closed_ = false;
  bool holds_slot_ = false;
};

template <class Registry>
asio::awaitable<void> run_connection(std::shared_ptr<connection<Registry>> c) {
  co_await c->run();
}

}  // namespace http_api_detail

// Serves one API connection until it ends (for an application's own accept loop).
template <class Registry>
asio::awaitable<void> serve_http_api_connection(asio::ip::tcp::socket socket, Registry& users,
                                                std::shared_ptr<const http_api_options> options) {
  return http_api_detail::run_connection(
      std::make_shared<http_api_detail::connection<Registry>>(std::move(socket), users, std::move(options)));
}

// Accepts API connections until the acceptor is closed; each runs on its socket's executor
// (the acceptor's).
template <class Registry>
asio::awaitable<void> serve_http_api(asio::ip::tcp::acceptor& acceptor, Registry& users, http_api_options options) {
  auto shared = std::make_shared<const http_api_options>(std::move(options));
  return accept_loop(acceptor, [&users, shared](asio::ip::tcp::socket s) {
    auto ex = s.get_executor();
    asio::co_spawn(ex, serve_http_api_connection(std::move(s), users, shared), asio::detached);
  });
}

}  // namespace herald

#endif  // HERALD_HTTP_API_HPP
