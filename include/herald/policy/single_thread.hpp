// registry<Session, single_thread>: one io_context thread owns the registry and every
// session in it, with no locks, like the seed's `count = 1` worker. Call it only from that
// thread (the sessions' coroutines do).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../registry.hpp"

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
    if (judged.ended) co_return binding_type(s.status());
    std::string refusal;
    if (!judged.verdict.uid) refusal = std::move(judged.verdict.reason);
    else if (st->options.duplicates == duplicate_login::reject && online(*judged.verdict.uid)) refusal = "uid already logged in";
    if (!refusal.empty()) {
      // Refused: say why and finish the closing handshake. (Inline, not a helper coroutine:
      // g++ 12 miscompiles awaiting one here.)
      s.close(ws::close_code::policy_violation, std::move(refusal));
      while (co_await s.read()) {
      }
      co_return binding_type(s.status());
    }
    if (!s.is_open()) co_return binding_type(s.status());
    if (st->options.duplicates == duplicate_login::replace) {
      if (auto it = st->uids.find(std::string_view(*judged.verdict.uid)); it != st->uids.end()) {
        const auto older = it->second;  // copy: detach() edits the list
        for (auto* n : older) {
          st->detach(n);
          n->session->close(ws::close_code::replaced, "replaced by a newer login");
        }
      }
    }
    auto* n = st->attach(std::move(session), std::move(*judged.verdict.uid));
    s.expect_idle();
    co_return binding_type(st, n);
  }

  // Sends to every session of `uid`; returns how many it was queued to.
  std::size_t unicast(std::string_view uid, const message& m) {
    auto it = state_->uids.find(uid);
    if (it == state_->uids.end()) return 0;
    std::size_t queued = 0;
    for (auto* n : it->second) queued += detail::counts_as_queued(n->session->send_here(m));
    return queued;
  }
  std::size_t unicast(std::string_view uid, std::string_view text) {
    if (!online(uid)) return 0;  // encode only for someone
    return unicast(uid, message::text(text));
  }

  // Sends to every logged-in session; the frame is built once and shared.
  std::size_t broadcast(const message& m) {
    std::size_t queued = 0;
    auto& all = state_->all;
    for (std::size_t i = 0; i < all.size(); ++i) queued += detail::counts_as_queued(all[i].session->send_here(m));
    return queued;
  }
  std::size_t broadcast(std::string_view text) { return session_count() == 0 ? 0 : broadcast(message::text(text)); }

  // Starts the closing handshake of every logged-in session (e.g. 1001 on shutdown).
  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    for (auto& e : state_->all) e.session->close(code, std::string(reason));
    return session_count();
  }

  bool online(std::string_view uid) const { return state_->uids.find(uid) != state_->uids.end(); }
  std::size_t sessions_of(std::string_view uid) const {
    auto it = state_->uids.find(uid);
    return it == state_->uids.end() ? 0 : it->second.size();
  }
  std::size_t uid_count() const noexcept { return state_->uids.size(); }
  std::size_t session_count() const noexcept { return state_->all.size(); }
  const registry_options& options() const noexcept { return state_->options; }

 private:
  friend class binding<Session, single_thread>;

  // Everything bindings need to unbind; shared with them.
  struct state {
    struct node {
      std::shared_ptr<Session> session;
      std::string uid;
      std::size_t all_index = 0;
      std::size_t uid_index = 0;
      bool detached = false;
    };
    // Sessions in one array so a broadcast walks memory in order.
    struct entry {
      Session* session;
      node* owner;
    };

    explicit state(registry_options o) : options(o) {}

    node* attach(std::shared_ptr<Session> session, std::string uid) {
      auto n = std::make_unique<node>();
      n->session = std::move(session);
      n->uid = std::move(uid);
      auto it = uids.find(std::string_view(n->uid));
      if (it == uids.end()) it = uids.emplace(n->uid, std::vector<node*>{}).first;
      n->uid_index = it->second.size();
      it->second.push_back(n.get());
      n->all_index = all.size();
      all.push_back({n->session.get(), n.get()});
      return n.release();
    }

    void detach(node* n) noexcept {
      if (n->detached) return;
      n->detached = true;
      const std::size_t i = n->all_index;
      all[i] = all.back();
      all[i].owner->all_index = i;
      all.pop_back();
      auto it = uids.find(std::string_view(n->uid));
      auto& list = it->second;
      list[n->uid_index] = list.back();
      list[n->uid_index]->uid_index = n->uid_index;
      list.pop_back();
      if (list.empty()) uids.erase(it);
    }

    void unbind(node* n) noexcept {
      detach(n);
      delete n;
    }

    registry_options options;
    std::vector<entry> all;
    std::unordered_map<std::string, std::vector<node*>, detail::transparent_hash, std::equal_to<>> uids;
  };

  std::shared_ptr<state> state_;
};

}  // namespace herald
