// registry<Session, Policy>: which sessions belong to which user id.
//
//   auto bound = co_await users.login(*ws, authenticate, 5s);  // first message -> uid
//   users.unicast("alice", "hi");  users.broadcast("to everyone");
//
// login() reads the first message, asks the application's authenticator for the uid and
// returns a binding: the uid stays bound exactly as long as that object lives, whichever
// way the session's coroutine ends. Where the sessions live is the Policy's business
// (policy/single_thread.hpp, policy/multi_thread.hpp); the API is the same for all.
#ifndef HERALD_REGISTRY_HPP
#define HERALD_REGISTRY_HPP
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
#include "metrics.hpp"
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
  // Group names follow the same rule as uids, with this limit.
  std::size_t max_group_size = 128;
  // Optional counters and gauges: logins, uids (see metrics.hpp).
  std::shared_ptr<herald::metrics> metrics{};
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

// Policies (defined in policy/*.hpp).
struct single_thread;
struct multi_thread;

namespace detail {
template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<asio::awaitable<T, E>> : std::true_type {};

struct transparent_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// 1 to `max` bytes of UTF-8 without control characters.
inline bool valid_name(std::string_view name, std::size_t max) noexcept {
  if (name.empty() || name.size() > max) return false;
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7F) return false;
  return is_valid_utf8(name.data(), name.size());
}

inline bool valid_uid(std::string_view uid, const registry_options& o) noexcept { return valid_name(uid, o.max_uid_size); }

inline void count(const registry_options& o, metrics::id which, std::int64_t v = 1) noexcept {
  if (o.metrics) o.metrics->add(which, v);
}

// The first half of every policy's login: read the first message within `deadline` and
// ask the authenticator. `ended` means the session ended first (status() says why).
struct first_message_verdict {
  login_verdict verdict;
  bool ended = false;
};

template <class Session, class Authenticate>
asio::awaitable<first_message_verdict> judge_first_message(Session& s, Authenticate& authenticate,
                                                           std::chrono::steady_clock::duration deadline,
                                                           const registry_options& options) {
  s.expect_message_within(deadline);
  auto first = co_await s.read();
  first_message_verdict out;
  if (!first) {
    out.ended = true;
    co_return out;
  }
  using answer = std::invoke_result_t<Authenticate&, std::string_view>;
  if constexpr (is_awaitable<answer>::value) {
    out.verdict = login_verdict(co_await authenticate(first->text()));
  } else {
    out.verdict = login_verdict(authenticate(first->text()));
  }
  if (!out.verdict.uid) {
    if (out.verdict.reason.empty()) out.verdict.reason = "login refused";
  } else if (!valid_uid(*out.verdict.uid, options)) {
    out.verdict = login_verdict::refuse("invalid uid");
  }
  co_return out;
}

inline std::size_t counts_as_queued(send_result r) noexcept {
  return r == send_result::queued || r == send_result::posted;
}
}  // namespace detail

template <class Session, class Policy = single_thread>
class registry;

// The result of login(): while it lives, its uid is bound to its session. Move-only. It
// shares the registry's state, so it may even outlive the registry object (as coroutine
// frames destroyed with their io_context do).
template <class Session, class Policy = single_thread>
class binding {
  using state_type = typename registry<Session, Policy>::state;
  using node_type = typename state_type::node;

 public:
  binding() = default;
  explicit binding(close_status why) : why_(std::move(why)) {}
  binding(binding&& o) noexcept
      : state_(std::move(o.state_)), node_(std::exchange(o.node_, nullptr)), why_(std::move(o.why_)) {}
  binding& operator=(binding&& o) noexcept {
    if (this != &o) {
      reset();
      state_ = std::move(o.state_);
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
    if (node_) state_->unbind(node_);
    node_ = nullptr;
    state_.reset();
  }

 private:
  friend class registry<Session, Policy>;
  binding(std::shared_ptr<state_type> st, node_type* n) noexcept : state_(std::move(st)), node_(n) {}

  std::shared_ptr<state_type> state_;
  node_type* node_ = nullptr;
  close_status why_;
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

#endif  // HERALD_REGISTRY_HPP
