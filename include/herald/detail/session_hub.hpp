// The cork list of one io_context, for the sessions that live on its one thread (not on
// strands): sessions that queued frames during the current round of handlers; one job at the
// end of the round writes each of them once (one gathered syscall per session, however many
// frames the round queued for it). It belongs to the context, not to a thread, so a round is
// always flushed from the list it was put on, whichever thread calls in; it holds each corked
// session until the round ends, and a context destroyed with a round pending takes it along.
// A round ends after the read completions posted during it (see hold_round()).
//
// It also keeps the round's shared block: the frames that open many sessions' queues in a
// round (a broadcast's, or several in a row) copied once, back to back, into one buffer. A
// session whose queue starts with them sends that buffer: the kernel copies from one place
// instead of one iovec per frame, which measured 13% of a broadcast delivery's CPU at 10
// frames per write (benchmarks/README.md). Copied once per round, however many receivers.
//
// Owner (the session type) befriends the hub, derives from std::enable_shared_from_this,
// has a bool corked_, and provides flush_round(), called on the context's thread.
#ifndef HERALD_DETAIL_SESSION_HUB_HPP
#define HERALD_DETAIL_SESSION_HUB_HPP
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "../message.hpp"
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
  // one each. Each posted completion holds the round once; it releases before its handler runs.
  void hold_round() noexcept { ++held_; }
  void release_round() noexcept { --held_; }

  // How many of `queue`'s first frames the round's shared block holds, and the block (its
  // bytes are those frames back to back); 0 when the queue does not start with them. The
  // first queue of a round that starts with at least two small frames shared with other
  // queues makes the block.
  std::size_t shared_block(std::span<const message> queue, std::span<const std::uint8_t>& bytes) {
    if (queue.size() < 2) return 0;
    if (block_frames_.empty()) {
      if (block_tried_) return 0;
      block_tried_ = true;  // one try per round: queues that differ do not rebuild it
      std::size_t total = 0, n = 0;
      for (; n < queue.size() && n < max_block_frames; ++n) {
        const message& m = queue[n];
        // Shared (another holder than this queue) and small: what a broadcast makes.
        if (m.use_count() < 2 || m.frame_size() > max_block_frame || total + m.frame_size() > max_block_bytes) break;
        total += m.frame_size();
      }
      if (n < 2) return 0;
      block_bytes_.resize(total);
      std::size_t at = 0;
      for (std::size_t i = 0; i < n; ++i) {
        block_frames_.push_back(queue[i]);
        std::memcpy(block_bytes_.data() + at, queue[i].frame().data(), queue[i].frame_size());
        at += queue[i].frame_size();
      }
    }
    if (queue.size() < block_frames_.size()) return 0;
    for (std::size_t i = 0; i < block_frames_.size(); ++i)
      if (!queue[i].same_as(block_frames_[i])) return 0;
    bytes = std::span<const std::uint8_t>(block_bytes_.data(), block_bytes_.size());
    return block_frames_.size();
  }

 private:
  static constexpr std::size_t max_block_frames = 64;
  static constexpr std::size_t max_block_frame = 4096;       // larger frames: the copy costs more than an iovec
  static constexpr std::size_t max_block_bytes = 64 * 1024;
  static constexpr std::size_t max_deferrals = 256;

  void shutdown() override {
    shut_down_ = true;
    for (auto& s : corked_) s->corked_ = false;
    corked_.clear();
    block_frames_.clear();
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
    block_frames_.clear();  // the block lives one round: it pins its frames no longer
    block_tried_ = false;
  }

  std::vector<std::shared_ptr<Owner>> corked_, flushing_;
  std::vector<message> block_frames_;  // the round's shared block: its frames (held) ...
  std::vector<std::uint8_t> block_bytes_;  // ... and their bytes back to back
  bool block_tried_ = false;
  bool shut_down_ = false;
  std::size_t held_ = 0;      // posted read completions not yet run
  std::size_t deferred_ = 0;  // times this round's end has let them go first
};

}  // namespace herald::detail

#endif  // HERALD_DETAIL_SESSION_HUB_HPP
