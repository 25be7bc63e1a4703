// The uid_push_server protocol, shared by uid_push_server and cluster_node (any registry
// policy: single_thread, multi_thread, redis_cluster). See uid_push_server.cpp for the table.
#pragma once
#include <herald.hpp>

#include <string>
#include <string_view>

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
    ws.send(users.join(bound, body) ? "joined " + std::string(body) : "error: cannot join '" + std::string(body) + "'");
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

}  // namespace uid_protocol
