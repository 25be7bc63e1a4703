// The uid_push_server protocol, shared by uid_push_server and cluster_node (any registry
// policy: single_thread, multi_thread, redis_cluster): the login rule, the message handling
// and the connection loop. See uid_push_server.cpp for the table.
#pragma once
#include <herald.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
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

// One message of a logged-in session. A plain function, not part of serve(): a coroutine
// frame keeps every local of its body for the whole connection, and idle sessions are many.
template <class Session, class Registry>
void on_message(Session& ws, Registry& users, typename Registry::binding_type& bound, const herald::incoming& msg) {
  auto [to, body] = herald::split_target(msg);
  if (to.empty() && msg.text().find(':') == std::string_view::npos) {
    ws.send("error: expected <uid>:<message>");
    return;
  }
  if (to == "join") {
    if (users.is_member(bound, body)) ws.send("already in " + std::string(body));
    else if (users.join(bound, body)) ws.send("joined " + std::string(body));
    else ws.send("error: cannot join '" + std::string(body) + "' (a group name is 1 to 128 bytes, no control characters)");
    return;
  }
  if (to == "leave") {
    ws.send(users.leave(bound, body) ? "left " + std::string(body) : "error: not in group '" + std::string(body) + "'");
    return;
  }
  const bool to_group = to == "group";
  if (to_group) {
    auto [group, text] = herald::split_target(body);
    if (group.empty()) {
      ws.send("error: expected group:<name>:<message>");
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
  auto bound = co_await users.login(*ws, check_uid, std::chrono::seconds(10));
  if (!bound) co_return;
  ws->send("login successful, your uid is " + bound.uid());
  while (auto msg = co_await ws->read()) on_message(*ws, users, bound, *msg);
}

}  // namespace uid_protocol
