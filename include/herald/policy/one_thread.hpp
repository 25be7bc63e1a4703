// What the registries whose sessions all live on one thread have in common (single_thread,
// redis_cluster): login, sends, groups and local presence over a detail::local_index, with
// calls from other threads handed to the owner's thread. A policy supplies its State: a
// local_index with an `owner` (detail::owner_thread), `options`, and unicast / broadcast /
// send_to_group / join / leave / attach / count (where the policy adds its own work, e.g.
// publishing to Redis).
#ifndef HERALD_POLICY_ONE_THREAD_HPP
#define HERALD_POLICY_ONE_THREAD_HPP
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../registry.hpp"
#include "local_index.hpp"

namespace herald::detail {

template <class Session, class Policy, class State>
class one_thread_registry {
 public:
  using session_type = Session;
  using binding_type = binding<Session, Policy>;
  using clock = std::chrono::steady_clock;

  one_thread_registry(const one_thread_registry&) = delete;
  one_thread_registry& operator=(const one_thread_registry&) = delete;

  // Reads the session's first message within `deadline` and passes it to `authenticate`,
  // a callable taking std::string_view and returning something a login_verdict is made of
  // (a uid string, an optional uid, a login_verdict) or an asio::awaitable of one (bounded
  // by registry_options::auth_timeout). A refusal, an invalid uid, a timeout or a duplicate
  // under `reject` closes the session with 1008 and a reason (an authenticator that throws or
  // times out: 1011), completes the closing handshake and returns an empty binding. The
  // session must live on the registry's io_context. With history on (registry_options::
  // history), the verdict's resume position (login_verdict::resume_from) is honoured: the
  // welcome, the replay and then live messages, in that order (binding::history() says what
  // happened).
  template <class Authenticate>
  [[nodiscard]] asio::awaitable<binding_type> login(Session& s, Authenticate authenticate,
                                                    clock::duration deadline = std::chrono::seconds(10)) {
    auto session = s.shared_from_this();
    auto st = state_;
    st->owner.adopt(s.get_executor());  // the first login names the thread, if the constructor did not
    if (!st->owner.is_owner(s.get_executor()))
      throw std::invalid_argument("herald::registry: every session must live on the registry's io_context");
    auto judged = co_await judge_first_message(s, authenticate, deadline, st->options);
    if (judged.ended) {
      st->count(s, metrics::logins_refused);
      co_return binding_type(s.status());
    }
    std::string refusal;
    if (!judged.verdict.uid) refusal = std::move(judged.verdict.reason);
    else if (st->options.duplicates == duplicate_login::reject && st->uids.count(*judged.verdict.uid)) refusal = "uid already logged in";
    if (!refusal.empty()) {
      // Refused: say why and finish the closing handshake. (Inline, not a helper coroutine:
      // g++ 12 miscompiles awaiting one here.)
      st->count(s, metrics::logins_refused);
      s.close(judged.code, std::move(refusal));
      while (co_await s.read()) {
      }
      close_status why = s.status();
      if (!judged.detail.empty()) why.reason = std::move(judged.detail);
      co_return binding_type(std::move(why));
    }
    if (!s.is_open()) co_return binding_type(s.status());
    st->count(s, metrics::logins_ok);
    if (st->options.duplicates == duplicate_login::replace) replace_older(*st, *judged.verdict.uid);
    auto* n = st->attach(std::move(session), std::move(*judged.verdict.uid));
    binding_type bound(st, n);  // from here on, however this coroutine ends, n is unbound
    if (st->options.history.enabled()) {
      if constexpr (requires(State& x, typename State::node* y, std::optional<stream_position> p) { x.begin_resume(y, std::move(p)); }) {
        // redis_cluster: the stream is in Redis; the welcome and the replay follow its answer.
        auto wait = st->begin_resume(n, std::move(judged.verdict.resume));
        if (!wait->done) {
          error_code ec;
          co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        bound.resume_ = std::make_unique<resume_result>(st->end_resume(*wait));
      } else {
        // In memory: the welcome and the replay are queued now, in the step that attached n.
        bound.resume_ = std::make_unique<resume_result>(st->resume(n, judged.verdict.resume));
      }
    }
    co_return std::move(bound);
  }

  // Every method below may be called from any thread: on the registry's thread it runs at
  // once; from elsewhere a send is handed to that thread (and returns 0: nothing is queued
  // yet) and a query waits for that thread's answer.

  // Sends to every session of `uid`; returns how many it was queued to.
  std::size_t unicast(std::string_view uid, const message& m) {
    if (!m || !state_->owner.known()) return 0;
    if (!state_->owner.here()) return hand_over([uid = std::string(uid), m](State& st) { return st.unicast(uid, m); });
    return state_->unicast(uid, m);
  }
  std::size_t unicast(std::string_view uid, std::string_view text) { return unicast(uid, message::text(text)); }

  // Sends to every logged-in session; the frame is built once and shared.
  std::size_t broadcast(const message& m) {
    if (!m || !state_->owner.known()) return 0;
    if (!state_->owner.here()) return hand_over([m](State& st) { return st.broadcast(m); });
    return state_->broadcast(m);
  }
  std::size_t broadcast(std::string_view text) { return broadcast(message::text(text)); }

  // Sends to every session in `group`; returns how many it was queued to.
  std::size_t send_to_group(std::string_view group, const message& m) {
    if (!m || !state_->owner.known()) return 0;
    if (!state_->owner.here()) return hand_over([group = std::string(group), m](State& st) { return st.send_to_group(group, m); });
    return state_->send_to_group(group, m);
  }
  std::size_t send_to_group(std::string_view group, std::string_view text) { return send_to_group(group, message::text(text)); }

  // Starts the closing handshake of every logged-in session (e.g. 1001 on shutdown).
  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    if (!state_->owner.known()) return 0;
    if (!state_->owner.here())
      return hand_over([code, reason = std::string(reason)](State& st) { return st.close_all(code, reason); });
    return state_->close_all(code, reason);
  }

  // Starts the closing handshake of every session of `uid` ("log out everywhere"); returns how many.
  std::size_t close_uid(std::string_view uid, std::uint16_t code = ws::close_code::normal, std::string_view reason = "logged out") {
    if (!state_->owner.known()) return 0;
    if (!state_->owner.here())
      return hand_over([uid = std::string(uid), code, reason = std::string(reason)](State& st) { return st.close_uid(uid, code, reason); });
    return state_->close_uid(uid, code, reason);
  }

  // ---- groups: a session leaves its groups when its binding dies ----

  // Adds the bound session to `group` (1 to max_group_size bytes, like a uid); false if it
  // was already a member, the binding is empty or the name invalid.
  bool join(binding_type& b, std::string_view group) {
    if (!b) return false;
    return ask<bool>([&b, group](State& st) {
      return !b.node_->detached && valid_name(group, st.options.max_group_size) && st.join(b.node_, group);
    });
  }

  // Removes the bound session from `group`; false if it was not a member.
  bool leave(binding_type& b, std::string_view group) {
    if (!b) return false;
    return ask<bool>([&b, group](State& st) { return st.leave(b.node_, group); });
  }

  std::size_t group_size(std::string_view group) const {
    return ask<std::size_t>([group](State& st) { return st.group_size(group); });
  }
  bool is_member(const binding_type& b, std::string_view group) const {
    if (!b) return false;
    return ask<bool>([&b, group](State& st) { return st.is_member(b.node_, group); });
  }
  std::size_t group_count() const {
    return ask<std::size_t>([](State& st) { return st.groups.size(); });
  }

  // ---- presence (on redis_cluster: this node's) ----

  // Calls f(uid, sessions) for every uid online (on the registry's thread). Cost: one step per
  // uid; do not log in or out from inside f.
  template <class F>
  void for_each_uid(F&& f) const {
    ask<bool>([&f](State& st) {
      st.for_each_uid(f);
      return true;
    });
  }
  std::vector<std::string> uids() const {
    return ask<std::vector<std::string>>([](State& st) { return st.uid_list(); });
  }
  // The sessions of `uid` (all of a user's devices), e.g. to read each one's data() on its thread.
  std::vector<std::shared_ptr<Session>> sessions(std::string_view uid) const {
    return ask<std::vector<std::shared_ptr<Session>>>([uid](State& st) { return st.sessions_list(uid); });
  }
  bool online(std::string_view uid) const {
    return ask<bool>([uid](State& st) { return st.uids.find(uid) != st.uids.end(); });
  }
  std::size_t sessions_of(std::string_view uid) const {
    return ask<std::size_t>([uid](State& st) { return st.sessions_of(uid); });
  }
  std::size_t uid_count() const {
    return ask<std::size_t>([](State& st) { return st.uids.size(); });
  }
  std::size_t session_count() const {
    return ask<std::size_t>([](State& st) { return st.all.size(); });
  }
  const registry_options& options() const noexcept { return state_->options; }

 protected:
  explicit one_thread_registry(std::shared_ptr<State> st) : state_(std::move(st)) {}

  // Runs `f(state)` on the registry's thread later; a send handed over counts 0 here. (Before
  // that thread has started, it runs here at once and counts.)
  template <class F>
  std::size_t hand_over(F&& f) {
    std::size_t now = 0;
    if (state_->owner.run_before_start([&] { now = f(*state_); })) return now;
    state_->owner.post([st = state_, f = std::forward<F>(f)]() mutable { f(*st); });
    return 0;
  }

  // Runs `f(state)` on the registry's thread and returns its answer (at once when called there;
  // nothing, before the first login names that thread).
  template <class R, class F>
  R ask(F&& f) const {
    auto& owner = state_->owner;
    if (!owner.known()) return R{};
    if (owner.here()) return f(*state_);
    return owner.template ask<R>([st = state_, &f] { return f(*st); });
  }

  std::shared_ptr<State> state_;
};

// The State part every one-thread policy shares: the index, the owner thread, the options,
// metrics, and unbinding from any thread. `Derived` is the policy's state (CRTP), which may
// redefine attach/detach/unicast/... to add its own work.
template <class Session, class Derived>
struct one_thread_state : local_index<Session>, std::enable_shared_from_this<Derived> {
  using base = local_index<Session>;
  using node = typename base::node;

  explicit one_thread_state(registry_options o) : options(std::move(o)) {}

  std::size_t unicast(std::string_view uid, const message& m) { return this->deliver_to_uid(uid, m); }
  std::size_t broadcast(const message& m) { return this->deliver_to_all(m); }
  std::size_t send_to_group(std::string_view group, const message& m) { return this->deliver_to_group(group, m); }
  bool join(node* n, std::string_view group) { return this->join_group(n, group); }

  void count(Session& s, metrics::id which, std::int64_t v = 1) noexcept { detail::count(options, s, which, v); }

  // The binding's end, on the registry's thread (handed there when it ends on another).
  void unbind(node* n) noexcept {
    auto end = [this, n] {
      static_cast<Derived*>(this)->detach(n);
      delete n;
    };
    if (!owner.known() || owner.here() || owner.stopped()) return end();
    if (owner.run_before_start(end)) return;
    try {
      owner.post([keep = this->shared_from_this(), n] { keep->unbind(n); });
    } catch (...) {  // out of memory: unbind here rather than leak the entry
      end();
    }
  }

  registry_options options;
  owner_thread owner;
};

}  // namespace herald::detail

#endif  // HERALD_POLICY_ONE_THREAD_HPP
