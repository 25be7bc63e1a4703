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
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/asio.hpp"
#include "detail/utf8.hpp"
#include "history.hpp"
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
  // How long an awaitable authenticator may take once the first message has arrived (the
  // login deadline, login()'s third argument, covers only the first message's arrival). Past
  // it the session is closed with 1011 "authentication timed out". A plain (synchronous)
  // authenticator runs inline and is not bounded.
  std::chrono::steady_clock::duration auth_timeout = std::chrono::seconds(10);
  // Told of an exception thrown by the authenticator (the session is closed with 1011
  // "internal error"; the binding's status() says what was thrown). Optional.
  std::function<void(std::exception_ptr)> on_authenticator_error{};
  // Optional counters and gauges: logins, uids (see metrics.hpp). Unset, the registry counts
  // into the session_options::metrics of the sessions that log in.
  std::shared_ptr<herald::metrics> metrics{};
  // Per-uid history with offsets and resume (history.hpp). Off unless max_messages > 0.
  history_options history{};
};

// An authenticator's answer: a uid, or a refusal with the reason sent in the 1008 close. With
// history on, an accepted uid may come with the position the client resumes from
// (accept(uid).resume_from(position), e.g. read from the URL: ws->target()).
struct login_verdict {
  std::optional<std::string> uid;
  std::string reason;
  std::optional<stream_position> resume;

  login_verdict() = default;
  login_verdict(std::string id) : uid(std::move(id)) {}
  login_verdict(std::optional<std::string> id) : uid(std::move(id)) {}
  static login_verdict accept(std::string id) { return login_verdict(std::move(id)); }
  static login_verdict refuse(std::string why) {
    login_verdict v;
    v.reason = std::move(why);
    return v;
  }
  // The position of the last message the client processed (nullopt: none, start at the end).
  login_verdict resume_from(std::optional<stream_position> p) && {
    resume = std::move(p);
    return std::move(*this);
  }
  login_verdict& resume_from(std::optional<stream_position> p) & {
    resume = std::move(p);
    return *this;
  }
};

// Policies (defined in policy/*.hpp).
struct single_thread;
struct multi_thread;

namespace detail {
template <class Session, class Policy, class State>
class one_thread_registry;
}  // namespace detail

namespace detail {
template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<asio::awaitable<T, E>> : std::true_type {};

// Deliberately not noexcept: libstdc++ then keeps each node's hash beside it, so a lookup
// compares hashes instead of hashing every key it passes in the bucket (which cost a unicast
// more than the delivery itself in a profile).
struct transparent_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
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
// Into the registry's metrics, or else the session's: one metrics object in session_options
// serves both.
template <class Session>
void count(const registry_options& o, const Session& s, metrics::id which, std::int64_t v = 1) noexcept {
  if (o.metrics) o.metrics->add(which, v);
  else if (s.options().metrics) s.options().metrics->add(which, v);
}

// The first half of every policy's login: read the first message within `deadline`, then ask
// the authenticator (an awaitable one within options.auth_timeout). `ended` means the session
// ended first (status() says why); otherwise a verdict without a uid is refused with `code`
// and the verdict's reason, and `detail` (when set) is what the application's binding status
// says instead of that reason.
struct first_message_verdict {
  login_verdict verdict;
  bool ended = false;
  std::uint16_t code = ws::close_code::policy_violation;
  std::string detail;
};

// An awaitable authenticator runs in a coroutine of its own, which owns everything it uses, so
// that login can stop waiting for it at auth_timeout.
template <class Authenticate>
struct auth_call {
  auth_call(Authenticate a, std::string t, const asio::any_io_executor& ex) : authenticate(std::move(a)), text(std::move(t)), done(ex) {}
  Authenticate authenticate;
  std::string text;
  asio::steady_timer done;  // cancelled when the answer is in
  std::optional<login_verdict> verdict;
  std::exception_ptr error;
  bool finished = false;
};

template <class Authenticate>
asio::awaitable<void> run_authenticator(std::shared_ptr<auth_call<Authenticate>> call) {
  try {
    call->verdict.emplace(co_await call->authenticate(std::string_view(call->text)));
  } catch (...) {
    call->error = std::current_exception();
  }
  call->finished = true;
  call->done.cancel();
}

inline std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

template <class Session, class Authenticate>
asio::awaitable<first_message_verdict> judge_first_message(Session& s, Authenticate& authenticate,
                                                           std::chrono::steady_clock::duration deadline,
                                                           const registry_options& options) {
  session_access::expect_first_message(s, deadline);
  auto first = co_await s.read();
  first_message_verdict out;
  if (!first) {
    out.ended = true;
    co_return out;
  }
  // The first message came in time: the deadline is met, whatever the authenticator takes.
  session_access::expect_idle(s);
  std::exception_ptr error;
  using answer = std::invoke_result_t<Authenticate&, std::string_view>;
  if constexpr (is_awaitable<answer>::value) {
    auto call = std::make_shared<auth_call<Authenticate>>(authenticate, std::move(first->data), s.get_executor());
    call->done.expires_after(options.auth_timeout);
    asio::co_spawn(s.get_executor(), run_authenticator(call), asio::detached);
    error_code ec;
    co_await call->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!call->finished) {
      out.code = ws::close_code::internal_error;
      out.verdict = login_verdict::refuse("authentication timed out");
      co_return out;
    }
    error = call->error;
    if (!error) out.verdict = std::move(*call->verdict);
  } else {
    try {
      out.verdict = login_verdict(authenticate(first->text()));
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (error) {
    if (options.on_authenticator_error) options.on_authenticator_error(error);
    out.code = ws::close_code::internal_error;
    out.verdict = login_verdict::refuse("internal error");
    out.detail = "the authenticator threw: " + what_of(error);
    co_return out;
  }
  if (!out.verdict.uid) {
    if (out.verdict.reason.empty()) out.verdict.reason = "login refused";
  } else if (!valid_uid(*out.verdict.uid, options)) {
    out.verdict = login_verdict::refuse("invalid uid");
  }
  co_return out;
}

// The thread that owns a registry whose sessions all live on one thread (single_thread,
// redis_cluster). Calls from elsewhere are handed to it: sends are posted, queries wait for
// its answer. On its own thread a call costs one check of the current thread. Until that
// thread has run anything for the registry (its io_context is not running yet, e.g. during
// set-up in main()), another thread does the work itself, holding a gate that the owner's
// first handler passes.
class owner_thread {
 public:
  owner_thread() = default;
  explicit owner_thread(asio::any_io_executor ex) { adopt(std::move(ex)); }

  // Called at construction or, when the registry was made without an executor, at the first
  // login (on the owner's thread); the executor never changes afterwards.
  void adopt(asio::any_io_executor ex) {
    if (known()) return;
    ex_ = std::move(ex);
    if (auto* io = target_of<asio::io_context::executor_type>(ex_)) context_ = &io->context();
    if (here()) {
      gate_->started.store(true, std::memory_order_release);
    } else {
      asio::post(ex_, [gate = gate_] {
        std::lock_guard lock(gate->mutex);  // waits for a caller that is working in its place
        gate->started.store(true, std::memory_order_release);
      });
    }
    known_.store(true, std::memory_order_release);
  }

  // Runs `f()` here and returns true if the owner's thread has not started on the registry yet
  // (it waits meanwhile); false, without running it, once it has.
  template <class F>
  bool run_before_start(F&& f) const {
    if (gate_->started.load(std::memory_order_acquire)) return false;
    std::lock_guard lock(gate_->mutex);
    if (gate_->started.load(std::memory_order_relaxed)) return false;
    f();
    return true;
  }
  // Whether the executor of a session logging in is the owner's.
  bool is_owner(const asio::any_io_executor& ex) const {
    return &asio::query(ex, asio::execution::context) == &asio::query(ex_, asio::execution::context);
  }
  // No login yet: there is nothing in the registry, and nothing to touch.
  bool known() const noexcept { return known_.load(std::memory_order_acquire); }
  bool here() const noexcept {
    return context_ ? context_->get_executor().running_in_this_thread() : running_in(ex_);
  }
  // The owner's io_context has stopped (or its executor is not an io_context's: false).
  bool stopped() const noexcept { return context_ && context_->stopped(); }
  const asio::any_io_executor& executor() const noexcept { return ex_; }

  // Runs `f()` on the owner's thread later (from another thread).
  template <class F>
  void post(F&& f) const {
    asio::post(ex_, std::forward<F>(f));
  }

  // Runs `f()` on the owner's thread and waits for its result (from another thread; before
  // that thread has started, runs it here). If the owner's io_context is stopped, or destroys
  // the call unrun, gives `fallback` instead of waiting for ever (and `f` is then never called).
  template <class R, class F>
  R ask(F f, R fallback = R{}) const {
    std::optional<R> early;
    if (run_before_start([&] { early.emplace(f()); })) return std::move(*early);
    struct pending {
      std::mutex mutex;
      std::condition_variable ready;
      std::optional<R> value;
      std::exception_ptr error;
      bool done = false;
      bool abandoned = false;
    };
    // Tells the asker when it is destroyed without having run (its io_context went away).
    struct call {
      std::shared_ptr<pending> p;
      F* f;
      call(std::shared_ptr<pending> q, F* g) : p(std::move(q)), f(g) {}
      call(call&& o) noexcept : p(std::move(o.p)), f(o.f) {}
      call& operator=(call&&) = delete;
      void operator()() {
        auto q = std::move(p);
        std::lock_guard lock(q->mutex);
        if (q->abandoned) return;
        try {
          q->value.emplace((*f)());
        } catch (...) {
          q->error = std::current_exception();
        }
        q->done = true;
        q->ready.notify_all();
      }
      ~call() {
        if (!p) return;
        std::lock_guard lock(p->mutex);
        p->done = true;
        p->ready.notify_all();
      }
    };
    auto p = std::make_shared<pending>();
    asio::post(ex_, call(p, &f));
    std::unique_lock lock(p->mutex);
    while (!p->ready.wait_for(lock, std::chrono::milliseconds(20), [&p] { return p->done; })) {
      if (context_ && context_->stopped()) {
        p->abandoned = true;
        return fallback;
      }
    }
    if (p->error) std::rethrow_exception(p->error);
    return p->value ? std::move(*p->value) : fallback;
  }

 private:
  struct start_gate {
    std::mutex mutex;
    std::atomic<bool> started{false};
  };

  asio::any_io_executor ex_;
  asio::io_context* context_ = nullptr;  // the fast path of here() for io_context executors
  std::atomic<bool> known_{false};
  std::shared_ptr<start_gate> gate_ = std::make_shared<start_gate>();
};

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
class [[nodiscard]] binding {
  using state_type = typename registry<Session, Policy>::state;
  using node_type = typename state_type::node;

 public:
  binding() = default;
  explicit binding(close_status why) : why_(std::move(why)) {}
  binding(binding&& o) noexcept
      : state_(std::move(o.state_)), node_(std::exchange(o.node_, nullptr)), why_(std::move(o.why_)), resume_(std::move(o.resume_)) {}
  binding& operator=(binding&& o) noexcept {
    if (this != &o) {
      reset();
      state_ = std::move(o.state_);
      node_ = std::exchange(o.node_, nullptr);
      why_ = std::move(o.why_);
      resume_ = std::move(o.resume_);
    }
    return *this;
  }
  ~binding() { reset(); }

  explicit operator bool() const noexcept { return node_ != nullptr; }
  // The bound uid; empty for an empty binding.
  const std::string& uid() const noexcept {
    static const std::string none;
    return node_ ? node_->uid : none;
  }
  // The bound session. Precondition: the binding is not empty.
  Session& session() const noexcept { return *node_->session; }
  // Why login failed (when this binding is empty).
  const close_status& status() const noexcept { return why_; }
  // What login did about history: state off when the registry keeps none; otherwise fresh,
  // recovered or not_recovered, and the position the session goes on from.
  const resume_result& history() const noexcept {
    static const resume_result off;
    return resume_ ? *resume_ : off;
  }

  // Unbinds now rather than at destruction.
  void reset() noexcept {
    if (node_) state_->unbind(node_);
    node_ = nullptr;
    state_.reset();
  }

 private:
  friend class registry<Session, Policy>;
  template <class, class, class>
  friend class detail::one_thread_registry;
  binding(std::shared_ptr<state_type> st, node_type* n, std::unique_ptr<resume_result> r = nullptr) noexcept
      : state_(std::move(st)), node_(n), resume_(std::move(r)) {}

  std::shared_ptr<state_type> state_;
  node_type* node_ = nullptr;
  close_status why_;
  std::unique_ptr<resume_result> resume_;  // with history only: one pointer per session otherwise
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
