// The uid_push_server protocol, shared by uid_push_server and cluster_node (any registry
// policy: single_thread, multi_thread, redis_cluster): the login rule, the message handling
// and the connection loop. See uid_push_server.cpp for the table.
//
// With --history N (enable_history below) every message the server sends carries a header,
// so that a client always knows where it is in its uid's stream:
//   <offset>:<message>                     sent to this uid (unicast, HTTP /send): its offset
//                                          in the uid's history, 1, 2, 3, ...
//   :<message>                             anything else: group, broadcast, replies ("joined g")
//   @<epoch>:<offset>:<state>:<text>       the stream's position: the login reply (state fresh,
//                                          recovered or "not recovered"; text "login successful,
//                                          your uid is <uid>"), and on redis_cluster "history
//                                          lost" (state "not recovered") when Redis lost the
//                                          stream under a live session
// A client that resumes connects to /?epoch=<epoch>&offset=<offset of the last message it
// processed> and sends its uid as ever; "recovered": the messages it missed follow, in order,
// then live ones; "not recovered": it reloads its state and goes on from <offset>.
#pragma once
#include <herald.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace uid_protocol {

// The seed takes any first message as the uid; we keep that, minus what would break the protocol.
inline herald::login_verdict check_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 128) return herald::login_verdict::refuse("uid must be 1 to 128 bytes");
  if (uid.find(':') != std::string_view::npos) return herald::login_verdict::refuse("uid must not contain ':'");
  for (std::string_view reserved : {"all", "join", "leave", "group"})
    if (uid == reserved) return herald::login_verdict::refuse("uid '" + std::string(uid) + "' is reserved");
  return herald::login_verdict::accept(std::string(uid));
}

// --history N: N messages kept per uid, and the headers above.
inline void enable_history(herald::registry_options& ro, std::size_t messages) {
  ro.history.max_messages = messages;
  if (messages == 0) return;
  ro.history.format = [](std::uint64_t offset, std::string_view payload, bool binary) {
    thread_local std::string framed;  // reused: no allocation per message but the frame's own
    char digits[20];
    const auto end = offset ? std::to_chars(digits, digits + sizeof digits, offset).ptr : digits;
    framed.assign(digits, end);
    framed += ':';
    framed += payload;
    herald::message m = binary ? herald::message::binary(framed) : herald::message::text(framed);
    if (framed.capacity() > 64 * 1024) std::string().swap(framed);  // keep no large buffer
    return m;
  };
  auto notice = [](const herald::resume_result& r, std::string_view text) {
    return herald::message::text("@" + r.position.epoch + ":" + std::to_string(r.position.offset) + ":" +
                                 herald::to_string(r.state) + ":" + std::string(text));
  };
  ro.history.welcome = [notice](std::string_view uid, const herald::resume_result& r) {
    return notice(r, "login successful, your uid is " + std::string(uid));
  };
  ro.history.lost = [notice](std::string_view, const herald::resume_result& r) { return notice(r, "history lost"); };
}

// The position a resuming client gives in its URL: /?epoch=<epoch>&offset=<n> (nullopt when
// it gives none; a malformed one is kept as it is and will not be recovered).
inline std::optional<herald::stream_position> position_in_url(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::optional<herald::stream_position> p;
  bool malformed = false;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq), value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (key == "epoch") {
      if (!p) p.emplace();
      p->epoch = std::string(value);
    } else if (key == "offset") {
      if (!p) p.emplace();
      const auto r = std::from_chars(value.data(), value.data() + value.size(), p->offset);
      malformed = malformed || r.ec != std::errc{} || r.ptr != value.data() + value.size();
    }
  }
  if (p && malformed) p->epoch.clear();  // never recovered, whatever the order of the parameters
  return p;
}

// One message of a logged-in session. A plain function, not part of serve(): a coroutine
// frame keeps every local of its body for the whole connection, and idle sessions are many.
template <class Session, class Registry>
void on_message(Session& ws, Registry& users, typename Registry::binding_type& bound, const herald::incoming& msg) {
  // A reply is not in history: with --history it gets the empty header ":".
  auto reply = [&ws, headers = users.options().history.enabled()](std::string text) {
    ws.send(headers ? ":" + text : text);
  };
  auto [to, body] = herald::split_target(msg);
  if (to.empty() && msg.text().find(':') == std::string_view::npos) {
    reply("error: expected <uid>:<message>");
    return;
  }
  if (to == "join") {
    if (users.is_member(bound, body)) reply("already in " + std::string(body));
    else if (users.join(bound, body)) reply("joined " + std::string(body));
    else reply("error: cannot join '" + std::string(body) + "' (a group name is 1 to 128 bytes, no control characters)");
    return;
  }
  if (to == "leave") {
    reply(users.leave(bound, body) ? "left " + std::string(body) : "error: not in group '" + std::string(body) + "'");
    return;
  }
  const bool to_group = to == "group";
  if (to_group) {
    auto [group, text] = herald::split_target(body);
    if (group.empty()) {
      reply("error: expected group:<name>:<message>");
      return;
    }
    to = group;
    body = text;
  }
  auto m = msg.binary ? herald::message::binary(body) : herald::message::text(body);
  if (to_group) users.send_to_group(to, m);
  else if (to == "all") users.broadcast(m);
  else users.unicast(to, m);
}

// Every open connection, logged in or not, so that shutdown can close them all.
template <class Session>
struct connections {
  std::mutex mutex;
  std::unordered_set<Session*> open;
  bool stopping = false;
  std::function<void()> on_last_closed;

  // Registers a session for as long as it lives; false when the server is stopping.
  struct entry {
    connections& set;
    Session* s;
    bool added;
    entry(connections& c, Session& ws) : set(c), s(&ws) {
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
    for (Session* s : open) s->close(herald::ws::close_code::going_away, "server shutting down");
    if (open.empty()) asio::post(open_executor_hint, on_last_closed);
  }
  asio::any_io_executor open_executor_hint;
};

// One connection, from handshake to close. The same code serves both registry policies and
// both streams (tcp::socket, or herald::tls_stream for wss://).
template <class Session, class Registry>
asio::awaitable<void> serve(typename Session::stream_type stream, Registry& users, connections<Session>& conns,
                            std::shared_ptr<const herald::session_options> options) {
  auto ws = co_await herald::accept_websocket(std::move(stream), options);
  if (!ws) co_return;
  typename connections<Session>::entry tracked(conns, *ws);
  if (!tracked.added) {  // upgraded just as the server began to stop
    ws->close(herald::ws::close_code::going_away, "server shutting down");
    while (co_await ws->read()) {
    }
    co_return;
  }
  // With --history: the position comes in the URL, and the registry sends the login reply
  // (the welcome) before the replay.
  const std::optional<herald::stream_position> from = position_in_url(ws->target());
  auto bound = co_await users.login(*ws, [&from](std::string_view first) {
    return check_uid(first).resume_from(from);
  }, std::chrono::seconds(10));
  if (!bound) co_return;
  if (bound.history().state == herald::resume_state::off) ws->send("login successful, your uid is " + bound.uid());
  while (auto msg = co_await ws->read()) on_message(*ws, users, bound, *msg);
}

}  // namespace uid_protocol
