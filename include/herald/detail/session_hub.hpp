// The cork list of one io_context, for the sessions that live on its one thread (not on
// strands): sessions that queued frames during the current round of handlers; one job at the
// end of the round writes each of them once (one gathered syscall per session, however many
// frames the round queued for it). It belongs to the context, not to a thread, so a round is
// always flushed from the list it was put on, whichever thread calls in; it holds each corked
// session until the round ends, and a context destroyed with a round pending takes it along.
// A round ends after the read completions posted during it (see round_hold).
//
// Owner (the session type) befriends the hub, derives from std::enable_shared_from_this,
// has a bool corked_, and provides flush_round(), called on the context's thread.
#ifndef HERALD_DETAIL_SESSION_HUB_HPP
#define HERALD_DETAIL_SESSION_HUB_HPP
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "asio.hpp"

namespace herald::detail {

template <class Owner>
class session_hub : public asio::execution_context::service {
 public:
  inline static asio::execution_context::id id;

  explicit session_hub(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  // The hub of the context that runs `ex`.
  template <class Executor>
  static session_hub& of(const Executor& ex) {
    return asio::use_service<session_hub>(asio::query(ex, asio::execution::context));
  }

  // Puts `s` on the list of the current round (once); the round's end calls s.flush_round().
  template <class Executor>
  void cork(Owner& s, const Executor& ex) {
    if (s.corked_ || shut_down_) return;
    s.corked_ = true;
    corked_.push_back(s.shared_from_this());
    if (corked_.size() == 1) asio::post(ex, [this, ex] { end_round(ex); });
  }

  // A read completion posted because its message was already buffered (read() never completes
  // inline): it belongs to the round that queued it. The round ends after it, so the messages
  // of one segment (a publisher's ten broadcasts) are written in one syscall per receiver, not
  // one each. Each posted completion holds the round once, and lets go before its handler runs
  // (or when it is destroyed unrun: Asio destroys pending handlers before the services).
  class round_hold {
   public:
    explicit round_hold(session_hub* hub) noexcept : hub_(hub) {
      if (hub_) ++hub_->held_;
    }
    round_hold(round_hold&& o) noexcept : hub_(std::exchange(o.hub_, nullptr)) {}
    round_hold& operator=(round_hold&&) = delete;
    ~round_hold() { release(); }
    void release() noexcept {
      if (hub_) --std::exchange(hub_, nullptr)->held_;
    }

   private:
    session_hub* hub_;
  };

 private:
  static constexpr std::size_t max_deferrals = 256;

  void shutdown() override {
    shut_down_ = true;
    for (auto& s : corked_) s->corked_ = false;
    corked_.clear();
  }

  template <class Executor>
  void end_round(const Executor& ex) {
    // Behind the held completions; bounded, so a stream of buffered input cannot delay a
    // round's writes without end.
    if (held_ > 0 && deferred_ < max_deferrals) {
      ++deferred_;
      asio::post(ex, [this, ex] { end_round(ex); });
      return;
    }
    deferred_ = 0;
    flushing_.swap(corked_);  // sessions corked while these are written join the next round
    for (auto& s : flushing_) {
      s->corked_ = false;
      s->flush_round();
    }
    flushing_.clear();
  }

  std::vector<std::shared_ptr<Owner>> corked_, flushing_;
  bool shut_down_ = false;
  std::size_t held_ = 0;      // posted read completions not yet run
  std::size_t deferred_ = 0;  // times this round's end has let them go first
};

}  // namespace herald::detail

#endif  // HERALD_DETAIL_SESSION_HUB_HPP
