// registry<Session, single_thread>: one io_context thread owns the registry and every
// session in it, with no locks, like the seed's `count = 1` worker. Call it only from that
// thread (the sessions' coroutines do).
#ifndef HERALD_POLICY_SINGLE_THREAD_HPP
#define HERALD_POLICY_SINGLE_THREAD_HPP
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../registry.hpp"
#include "local_index.hpp"

namespace herald {

struct single_thread {};

template <class Session>
class registry<Session, single_thread> {
 public:
  using session_type = Session;
  using binding_type = binding<Session, single_thread>;
  using clock = std::chrono::steady_clock;

  explicit registry(registry_options options = {}) : state_(std::make_shared<state>(options)) {}
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // Reads the session's first message within `deadline` and passes it to `authenticate`,
  // a callable taking std::string_view and returning something a login_verdict is made of
  // (a uid string, an optional uid, a login_verdict) or an asio::awaitable of one. A
  // refusal, an invalid uid, a timeout or a duplicate under `reject` closes the session
  // with 1008 and a reason, completes the closing handshake and returns an empty binding.
  template <class Authenticate>
  asio::awaitable<binding_type> login(Session& s, Authenticate authenticate, clock::duration deadline = std::chrono::seconds(10)) {
    auto session = s.shared_from_this();
    auto st = state_;
    auto judged = co_await detail::judge_first_message(s, authenticate, deadline, st->options);
    if (judged.ended) {
      detail::count(st->options, metrics::logins_refused);
      co_return binding_type(s.status());
    }
    std::string refusal;
    if (!judged.ended && !judged.verdict.uid) refusal = std::move(judged.verdict.reason);
    else if (st->options.duplicates == duplicate_login::reject && online(*judged.verdict.uid)) refusal = "uid already logged in";
    if (!refusal.empty()) {
      // Refused: say why and finish the closing handshake. (Inline, not a helper coroutine:
      // g++ 12 miscompiles awaiting one here.)
      detail::count(st->options, metrics::logins_refused);
      s.close(ws::close_code::policy_violation, std::move(refusal));
      while (co_await s.read()) {
      }
      co_return binding_type(s.status());
    }
    if (!s.is_open()) co_return binding_type(s.status());
    detail::count(st->options, metrics::logins_ok);
    if (st->options.duplicates == duplicate_login::replace) detail::replace_older(*st, *judged.verdict.uid);
    auto* n = st->attach(std::move(session), std::move(*judged.verdict.uid));
    s.expect_idle();
    co_return binding_type(st, n);
  }

  // Sends to every session of `uid`; returns how many it was queued to.
  std::size_t unicast(std::string_view uid, const message& m) { return state_->deliver_to_uid(uid, m); }
  std::size_t unicast(std::string_view uid, std::string_view text) {
    if (!online(uid)) return 0;  // encode only for someone
    return unicast(uid, message::text(text));
  }

  // Sends to every logged-in session; the frame is built once and shared.
  std::size_t broadcast(const message& m) { return state_->deliver_to_all(m); }
  std::size_t broadcast(std::string_view text) { return session_count() == 0 ? 0 : broadcast(message::text(text)); }

  // Starts the closing handshake of every logged-in session (e.g. 1001 on shutdown).
  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    return state_->close_all(code, reason);
  }

  // ---- groups: a session leaves its groups when its binding dies ----

  // Adds the bound session to `group` (1 to max_group_size bytes, like a uid); false if it
  // was already a member, the binding is empty or the name invalid.
  bool join(binding_type& b, std::string_view group) {
    if (!b || b.node_->detached || !detail::valid_name(group, state_->options.max_group_size)) return false;
    return state_->join_group(b.node_, group);
  }

  // Removes the bound session from `group`; false if it was not a member.
  bool leave(binding_type& b, std::string_view group) { return b && state_->leave(b.node_, group); }

  // Sends to every session in `group`; returns how many it was queued to.
  std::size_t send_to_group(std::string_view group, const message& m) { return state_->deliver_to_group(group, m); }
  std::size_t send_to_group(std::string_view group, std::string_view text) {
    if (group_size(group) == 0) return 0;
    return send_to_group(group, message::text(text));
  }

  std::size_t group_size(std::string_view group) const { return state_->group_size(group); }
  bool is_member(const binding_type& b, std::string_view group) const { return b && state_->is_member(b.node_, group); }
  std::size_t group_count() const noexcept { return state_->groups.size(); }

  // ---- presence ----

  // Calls f(uid, sessions) for every uid online. Cost: one step per uid; do not log in or
  // out from inside f.
  template <class F>
  void for_each_uid(F&& f) const {
    state_->for_each_uid(std::forward<F>(f));
  }
  std::vector<std::string> uids() const { return state_->uid_list(); }

  bool online(std::string_view uid) const { return state_->uids.find(uid) != state_->uids.end(); }
  std::size_t sessions_of(std::string_view uid) const { return state_->sessions_of(uid); }
  std::size_t uid_count() const noexcept { return state_->uids.size(); }
  std::size_t session_count() const noexcept { return state_->all.size(); }
  const registry_options& options() const noexcept { return state_->options; }

 private:
  friend class binding<Session, single_thread>;

  // Everything bindings need to unbind; shared with them.
  struct state : detail::local_index<Session> {
    using base = detail::local_index<Session>;
    using node = typename base::node;

    explicit state(registry_options o) : options(o) {}

    node* attach(std::shared_ptr<Session> session, std::string uid) {
      auto [n, first_of_uid] = base::attach(std::move(session), std::move(uid));
      if (first_of_uid) detail::count(options, metrics::uids);
      return n;
    }
    void detach(node* n) noexcept {
      if (base::detach(n)) detail::count(options, metrics::uids, -1);
    }
    void unbind(node* n) noexcept {
      detach(n);
      delete n;
    }

    registry_options options;
  };

  std::shared_ptr<state> state_;
};

}  // namespace herald

#endif  // HERALD_POLICY_SINGLE_THREAD_HPP
