// Client-side helpers of the history tests (unit-history.cpp, unit-redis-cluster.cpp): the
// wire format the tests' servers use, and a client that keeps its position as an application
// would, checking every recorded message's offset.
#pragma once
#include "test_support.hpp"

#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald_test {

// The wire format of these tests (the examples use the same one):
//   "<offset>:<payload>"                 a recorded message
//   ":<payload>"                         one outside history (group, broadcast)
//   "@<epoch>:<offset>:<state>"          the welcome (state: fresh, recovered, not recovered)
//   "!<epoch>:<offset>"                  a live session's position lost (redis_cluster)
inline herald::registry_options history_options(std::size_t max_messages) {
  herald::registry_options ro;
  ro.history.max_messages = max_messages;
  ro.history.format = [](std::uint64_t offset, std::string_view payload, bool) {
    std::string s = offset ? std::to_string(offset) : std::string();
    s += ':';
    s += payload;
    return herald::message::text(s);
  };
  ro.history.welcome = [](std::string_view, const herald::resume_result& r) {
    return herald::message::text("@" + r.position.epoch + ":" + std::to_string(r.position.offset) + ":" +
                                 herald::to_string(r.state));
  };
  ro.history.lost = [](std::string_view, const herald::resume_result& r) {
    return herald::message::text("!" + r.position.epoch + ":" + std::to_string(r.position.offset));
  };
  return ro;
}

// "/?epoch=E&offset=O" -> {E, O}; anything else: no position.
inline std::optional<herald::stream_position> position_in(std::string_view target) {
  const auto q = target.find("?epoch=");
  if (q == std::string_view::npos) return std::nullopt;
  const auto amp = target.find("&offset=", q);
  if (amp == std::string_view::npos) return std::nullopt;
  herald::stream_position p;
  p.epoch = std::string(target.substr(q + 7, amp - q - 7));
  const auto digits = target.substr(amp + 8);
  std::from_chars(digits.data(), digits.data() + digits.size(), p.offset);
  return p;
}

// A client that keeps its position as the examples' clients do: it adopts the welcome's
// position unless recovered, and takes recorded messages strictly in offset order.
struct resumer {
  std::string uid;
  herald::stream_position pos;
  std::vector<std::string> got;                // payloads of recorded messages, in order
  std::vector<std::string> unrecorded;         // ":..." messages
  std::vector<herald::resume_result> welcomes;
  std::vector<herald::stream_position> lost;  // "!" notices
  std::string error;                           // the first broken rule
};

inline void take(resumer& r, std::string_view t) {
  if (!r.error.empty()) return;
  if (!t.empty() && t[0] == '!') {  // the position was lost under a live session: go on from the one given
    const auto c1 = t.find(':');
    herald::stream_position p;
    p.epoch = std::string(t.substr(1, c1 - 1));
    std::from_chars(t.data() + c1 + 1, t.data() + t.size(), p.offset);
    r.lost.push_back(p);
    r.pos = p;
    return;
  }
  if (!t.empty() && t[0] == '@') {
    const auto c1 = t.find(':'), c2 = t.find(':', c1 + 1);
    herald::resume_result w;
    w.position.epoch = std::string(t.substr(1, c1 - 1));
    std::from_chars(t.data() + c1 + 1, t.data() + c2, w.position.offset);
    const auto state = t.substr(c2 + 1);
    w.state = state == "recovered" ? herald::resume_state::recovered
            : state == "fresh"     ? herald::resume_state::fresh
                                   : herald::resume_state::not_recovered;
    if (w.state == herald::resume_state::recovered && w.position.epoch != r.pos.epoch) r.error = "recovered into another epoch";
    if (w.state != herald::resume_state::recovered) r.pos = w.position;
    r.welcomes.push_back(w);
    return;
  }
  const auto colon = t.find(':');
  if (colon == std::string_view::npos) {
    r.error = "a message without a header: " + std::string(t);
    return;
  }
  if (colon == 0) {
    r.unrecorded.emplace_back(t.substr(1));
    return;
  }
  std::uint64_t off = 0;
  std::from_chars(t.data(), t.data() + colon, off);
  if (off != r.pos.offset + 1) {
    r.error = "offset " + std::to_string(off) + " after " + std::to_string(r.pos.offset);
    return;
  }
  r.pos.offset = off;
  r.got.emplace_back(t.substr(colon + 1));
}

inline std::string target_of(const resumer& r) {
  if (r.pos.epoch.empty()) return "/";
  return "/?epoch=" + r.pos.epoch + "&offset=" + std::to_string(r.pos.offset);
}

inline asio::awaitable<session_ptr> open_as(unsigned short port, std::shared_ptr<resumer> r) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket s(ex);
  co_await s.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable);
  herald::session_options o;
  o.max_message_size = 1 << 20;
  auto c = co_await session::connect(std::move(s), "127.0.0.1", target_of(*r), std::make_shared<const herald::session_options>(o));
  REQUIRE(c);
  c->send(r->uid);
  co_return c;
}

// Reads until `more` recorded messages have been taken (and, when `welcome`, a welcome before
// them), or the session ends.
inline asio::awaitable<void> read_some(std::shared_ptr<resumer> r, session_ptr c, std::size_t more, bool welcome = false) {
  const std::size_t welcomes = r->welcomes.size() + (welcome ? 1 : 0), want = r->got.size() + more;
  while (r->error.empty() && (r->welcomes.size() < welcomes || r->got.size() < want)) {
    auto m = co_await c->read();
    if (!m) co_return;
    take(*r, m->data);
  }
}

inline std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i <= to; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}

}  // namespace herald_test
