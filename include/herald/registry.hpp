// registry<Session, Policy>: which sessions belong to which user id.
//
//   auto bound = co_await users.login(*ws, authenticate, 5s);  // first message -> uid
//   users.unicast("alice", "hi");  users.broadcast("to everyone");
//
// login() reads the first message, asks the application's authenticator for the uid and
// returns a binding: the uid stays bound exactly as long as that object lives, whichever
// way the session's coroutine ends. The single_thread policy keeps everything on one
// io_context thread with no locks, like the seed's `count = 1` worker.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/asio.hpp"
#include "detail/utf8.hpp"
#include "message.hpp"
#include "ws_session.hpp"

namespace herald {

// What happens when a uid that is already online logs in again.
enum class duplicate_login {
  multi,    // every session of the uid receives (all of a user's devices); the default
  replace,  // the older sessions are closed with 4000 "replaced by a newer login"
  reject,   // the new session is closed with 1008 "uid already logged in"
};

struct registry_options {
  duplicate_login duplicates = duplicate_login::multi;
  // A uid is 1 to max_uid_size bytes of UTF-8 without control characters; the
  // application's authenticator may narrow that further.
  std::size_t max_uid_size = 128;
};

// An authenticator's answer: a uid, or a refusal with the reason sent in the 1008 close.
struct login_verdict {
  std::optional<std::string> uid;
  std::string reason;

  login_verdict() = default;
  login_verdict(std::string id) : uid(std::move(id)) {}
  login_verdict(std::optional<std::string> id) : uid(std::move(id)) {}
  static login_verdict accept(std::string id) { return login_verdict(std::move(id)); }
  static login_verdict refuse(std::string why) {
    login_verdict v;
    v.reason = std::move(why);
    return v;
  }
};

// Policy: one io_context thread owns the registry and all its sessions; no locks. Call the
// registry only from that thread.
struct single_thread {};

namespace detail {
template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<asio::awaitable<T, E>> : std::true_type {};

struct transparent_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
}  // namespace detail

template <class Session, class Policy = single_thread>
class registry;

// The result of login(): while it lives, its uid is bound to its session. Move-only.
template <class Session, class Policy = single_thread>
class binding {
 public:
  binding() = default;
  explicit binding(close_status why) : why_(std::move(why)) {}
  binding(binding&& o) noexcept
      : registry_(std::exchange(o.registry_, nullptr)), node_(std::exchange(o.node_, nullptr)), why_(std::move(o.why_)) {}
  binding& operator=(binding&& o) noexcept {
    if (this != &o) {
      reset();
      registry_ = std::exchange(o.registry_, nullptr);
      node_ = std::exchange(o.node_, nullptr);
      why_ = std::move(o.why_);
    }
    return *this;
  }
  ~binding() { reset(); }

  explicit operator bool() const noexcept { return node_ != nullptr; }
  const std::string& uid() const noexcept { return node_->uid; }
  Session& session() const noexcept { return *node_->session; }
  // Why login failed (when this binding is empty).
  const close_status& status() const noexcept { return why_; }

  // Unbinds now rather than at destruction.
  void reset() noexcept {
    if (node_) registry_->unbind(node_);
    node_ = nullptr;
    registry_ = nullptr;
  }

 private:
  friend class registry<Session, Policy>;
  using node_type = typename registry<Session, Policy>::node;
  binding(registry<Session, Policy>* r, node_type* n) noexcept : registry_(r), node_(n) {}

  registry<Session, Policy>* registry_ = nullptr;
  node_type* node_ = nullptr;
  close_status why_;
};

template <class Session>
class registry<Session, single_thread> {
 public:
  using session_type = Session;
  using binding_type = binding<Session, single_thread>;
  using clock = std::chrono::steady_clock;

  explicit registry(registry_options options = {}) : options_(options) {}
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;
  ~registry() {
    // Bindings must not outlive the registry; detach what is left so they are harmless.
    for (auto& e : all_) e.owner->detached = true;
  }

  // Reads the session's first message within `deadline` and passes it to `authenticate`,
  // a callable taking std::string_view and returning something a login_verdict is made of
  // (a uid string, an optional uid, a login_verdict) or an asio::awaitable of one. A
  // refusal, an invalid uid, a timeout or a duplicate under `reject` closes the session
  // with 1008 and a reason, completes the closing handshake and returns an empty binding.
  template <class Authenticate>
  asio::awaitable<binding_type> login(Session& s, Authenticate authenticate, clock::duration deadline = std::chrono::seconds(10)) {
    auto session = s.shared_from_this();
    s.expect_message_within(deadline);
    auto first = co_await s.read();
    if (!first) co_return binding_type(first.status());

    login_verdict verdict;
    using answer = std::invoke_result_t<Authenticate&, std::string_view>;
    if constexpr (detail::is_awaitable<answer>::value) {
      verdict = login_verdict(co_await authenticate(first->text()));
    } else {
      verdict = login_verdict(authenticate(first->text()));
    }
    std::string refusal;
    if (!verdict.uid) refusal = verdict.reason.empty() ? "login refused" : verdict.reason;
    else if (!valid_uid(*verdict.uid)) refusal = "invalid uid";
    else if (options_.duplicates == duplicate_login::reject && online(*verdict.uid)) refusal = "uid already logged in";
    if (!refusal.empty()) {
      // Refused: say why, finish the closing handshake, hand back the reason. (Kept inline:
      // g++ 12 miscompiles `co_return co_await` of a helper coroutine here.)
      s.close(ws::close_code::policy_violation, std::move(refusal));
      while (co_await s.read()) {
      }
      co_return binding_type(s.status());
    }
    if (!s.is_open()) co_return binding_type(s.status());

    if (options_.duplicates == duplicate_login::replace) {
      if (auto it = uids_.find(std::string_view(*verdict.uid)); it != uids_.end()) {
        const auto older = it->second;  // copy: detach() edits the list
        for (node* n : older) {
          detach(n);
          n->session->close(ws::close_code::replaced, "replaced by a newer login");
        }
      }
    }
    node* n = attach(std::move(session), std::move(*verdict.uid));
    s.expect_idle();
    co_return binding_type(this, n);
  }

  // Sends to every session of `uid`; returns how many it was queued to.
  std::size_t unicast(std::string_view uid, const message& m) {
    auto it = uids_.find(uid);
    if (it == uids_.end()) return 0;
    std::size_t queued = 0;
    for (node* n : it->second) queued += accepted(n->session->send_here(m));
    return queued;
  }
  std::size_t unicast(std::string_view uid, std::string_view text) {
    if (uids_.find(uid) == uids_.end()) return 0;  // encode only for someone
    return unicast(uid, message::text(text));
  }

  // Sends to every logged-in session; the frame is built once and shared.
  std::size_t broadcast(const message& m) {
    std::size_t queued = 0;
    for (std::size_t i = 0; i < all_.size(); ++i) queued += accepted(all_[i].session->send_here(m));
    return queued;
  }
  std::size_t broadcast(std::string_view text) { return all_.empty() ? 0 : broadcast(message::text(text)); }

  // Starts the closing handshake of every logged-in session (e.g. 1001 on shutdown).
  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    for (auto& e : all_) e.session->close(code, std::string(reason));
    return all_.size();
  }

  bool online(std::string_view uid) const { return uids_.find(uid) != uids_.end(); }
  std::size_t sessions_of(std::string_view uid) const {
    auto it = uids_.find(uid);
    return it == uids_.end() ? 0 : it->second.size();
  }
  std::size_t uid_count() const noexcept { return uids_.size(); }
  std::size_t session_count() const noexcept { return all_.size(); }
  const registry_options& options() const noexcept { return options_; }

  bool valid_uid(std::string_view uid) const noexcept {
    if (uid.empty() || uid.size() > options_.max_uid_size) return false;
    for (unsigned char c : uid)
      if (c < 0x20 || c == 0x7F) return false;
    return detail::is_valid_utf8(uid.data(), uid.size());
  }

 private:
  friend class binding<Session, single_thread>;

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

  static std::size_t accepted(send_result r) noexcept { return r == send_result::queued || r == send_result::posted; }

  node* attach(std::shared_ptr<Session> session, std::string uid) {
    auto n = std::make_unique<node>();
    n->session = std::move(session);
    n->uid = std::move(uid);
    auto it = uids_.find(std::string_view(n->uid));
    if (it == uids_.end()) it = uids_.emplace(n->uid, std::vector<node*>{}).first;
    n->uid_index = it->second.size();
    it->second.push_back(n.get());
    n->all_index = all_.size();
    all_.push_back({n->session.get(), n.get()});
    return n.release();
  }

  void detach(node* n) noexcept {
    if (n->detached) return;
    n->detached = true;
    const std::size_t i = n->all_index;
    all_[i] = all_.back();
    all_[i].owner->all_index = i;
    all_.pop_back();
    auto it = uids_.find(std::string_view(n->uid));
    auto& list = it->second;
    list[n->uid_index] = list.back();
    list[n->uid_index]->uid_index = n->uid_index;
    list.pop_back();
    if (list.empty()) uids_.erase(it);
  }

  void unbind(node* n) noexcept {
    detach(n);
    delete n;
  }

  registry_options options_;
  std::vector<entry> all_;
  std::unordered_map<std::string, std::vector<node*>, detail::transparent_hash, std::equal_to<>> uids_;
};

// "uid:text" -> {"uid", "text"}, split at the first ':' so the text may hold colons.
// Without a ':' the target is empty and the body is the whole message.
struct target_and_body {
  std::string_view target;
  std::string_view body;
};
inline target_and_body split_target(std::string_view m) noexcept {
  const auto colon = m.find(':');
  if (colon == std::string_view::npos) return {{}, m};
  return {m.substr(0, colon), m.substr(colon + 1)};
}

}  // namespace herald
