// One timer per io_context for the deadlines of all its sessions (a hashed timing wheel).
//
// A steady_timer per session costs its own object, a pending wait operation and a heap entry
// in Asio's timer queue, and every re-arm is a heap update; with a million idle sessions that
// is about 300 bytes each. Here a session embeds a 32-byte hook in a bucket list, and the
// context's wheel wakes once per resolution step while it has entries. Deadlines fire no
// earlier than asked and at most one resolution step late.
//
// Owner (the session type) derives from deadline_hook (privately, befriending the wheel) and
// provides weak_from_this(), get_executor() and on_deadline(std::uint32_t generation), which
// the wheel calls on the owner's executor.
#ifndef HERALD_DETAIL_DEADLINE_WHEEL_HPP
#define HERALD_DETAIL_DEADLINE_WHEEL_HPP
#include "asio.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace herald::detail {

struct deadline_hook {
  deadline_hook* prev = nullptr;
  deadline_hook* next = nullptr;
  std::uint64_t due = 0;         // wheel tick
  std::uint32_t generation = 0;  // the owner's, to tell a stale firing from the current one
  bool linked = false;
};

template <class Owner>
class deadline_wheel : public asio::execution_context::service {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr clock::duration resolution = std::chrono::milliseconds(50);
  static constexpr std::size_t buckets = 1024;  // 51.2 s per turn; longer deadlines wait for their turn

  inline static asio::execution_context::id id;

  explicit deadline_wheel(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  // The wheel of the context that runs `ex`.
  template <class Executor>
  static deadline_wheel& of(const Executor& ex) {
    return asio::use_service<deadline_wheel>(asio::query(ex, asio::execution::context));
  }

  // (Re)schedules `owner` to fire after `d`, tagged with `generation`.
  template <class Executor>
  void schedule(Owner& owner, clock::duration d, std::uint32_t generation, const Executor& ex) {
    deadline_hook& h = owner;
    std::lock_guard lock(mutex_);
    if (shut_down_) return;
    if (!timer_) timer_.emplace(inner_executor(ex));
    unlink(h);
    const auto ahead = (clock::now() + d - epoch_ + resolution - clock::duration(1)) / resolution;
    h.due = std::max<std::uint64_t>(static_cast<std::uint64_t>(ahead), done_ + 1);
    h.generation = generation;
    link(h);
    if (!armed_ || h.due < armed_tick_) arm(h.due);
  }

  void cancel(Owner& owner) noexcept {
    std::lock_guard lock(mutex_);
    unlink(owner);
    if (size_ == 0 && armed_ && timer_) {
      // Nothing left to wait for: let io_context::run() return when its work is done.
      armed_ = false;
      timer_->cancel();
    }
  }

 private:
  void shutdown() override {
    std::lock_guard lock(mutex_);
    shut_down_ = true;
    for (auto& head : heads_) {
      while (head) unlink(*head);
    }
    timer_.reset();  // before the timer service it uses is destroyed
  }

  template <class Executor>
  static asio::any_io_executor inner_executor(const Executor& ex) {
    if constexpr (requires { ex.get_inner_executor(); }) return ex.get_inner_executor();
    else return ex;
  }

  void link(deadline_hook& h) noexcept {
    deadline_hook*& head = heads_[h.due % buckets];
    h.prev = nullptr;
    h.next = head;
    if (head) head->prev = &h;
    head = &h;
    h.linked = true;
    ++size_;
  }

  void unlink(deadline_hook& h) noexcept {
    if (!h.linked) return;
    if (h.prev) h.prev->next = h.next;
    else heads_[h.due % buckets] = h.next;
    if (h.next) h.next->prev = h.prev;
    h.prev = h.next = nullptr;
    h.linked = false;
    --size_;
  }

  void arm(std::uint64_t tick) {
    armed_ = true;
    armed_tick_ = tick;
    timer_->expires_at(epoch_ + tick * resolution);
    timer_->async_wait([this](const error_code& ec) {
      if (ec != asio::error::operation_aborted) on_tick();
    });
  }

  void on_tick() {
    std::vector<std::pair<std::shared_ptr<Owner>, std::uint32_t>> due;
    {
      std::lock_guard lock(mutex_);
      if (shut_down_) return;
      armed_ = false;
      const auto now = static_cast<std::uint64_t>((clock::now() - epoch_) / resolution);
      if (now > done_) {
        // Each bucket once at most, even after a long stall.
        const std::uint64_t from = now - done_ > buckets ? now - buckets + 1 : done_ + 1;
        for (std::uint64_t t = from; t <= now; ++t) {
          for (deadline_hook* h = heads_[t % buckets]; h;) {
            deadline_hook* next = h->next;
            if (h->due <= now) {
              unlink(*h);
              // Null while the owner is being destroyed; its destructor then finds it unlinked.
              if (auto owner = static_cast<Owner&>(*h).weak_from_this().lock()) due.emplace_back(std::move(owner), h->generation);
            }
            h = next;
          }
        }
        done_ = now;
      }
      if (size_ > 0) {
        std::uint64_t t = done_ + 1;
        while (!heads_[t % buckets]) ++t;  // size_ > 0: some bucket is not empty
        arm(t);
      }
    }
    for (auto& [owner, generation] : due) {
      auto ex = owner->get_executor();
      asio::dispatch(ex, [owner = std::move(owner), generation = generation] { owner->on_deadline(generation); });
    }
  }

  std::mutex mutex_;
  const clock::time_point epoch_ = clock::now();
  std::array<deadline_hook*, buckets> heads_{};
  std::size_t size_ = 0;
  std::uint64_t done_ = 0;  // every tick up to this one has been processed
  std::uint64_t armed_tick_ = 0;
  bool armed_ = false;
  bool shut_down_ = false;
  std::optional<asio::steady_timer> timer_;
};

}  // namespace herald::detail

#endif  // HERALD_DETAIL_DEADLINE_WHEEL_HPP
