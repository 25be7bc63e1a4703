// registry<Session, single_thread>: one io_context thread owns the registry and every
// session in it, with no locks, like the seed's `count = 1` worker. Every method may be called
// from any thread: on the owner's thread it runs at once; from another thread a send
// (unicast, broadcast, send_to_group, close_all, close_uid) is handed to the owner's thread and
// returns 0, and a query waits for the owner's thread to answer it (see one_thread.hpp).
#ifndef HERALD_POLICY_SINGLE_THREAD_HPP
#define HERALD_POLICY_SINGLE_THREAD_HPP
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "../history.hpp"
#include "../registry.hpp"
#include "one_thread.hpp"

namespace herald {

struct single_thread {};

namespace detail {
template <class Session>
struct single_thread_state : one_thread_state<Session, single_thread_state<Session>> {
  using base = one_thread_state<Session, single_thread_state<Session>>;
  using node = typename base::node;
  using base::base;

  node* attach(std::shared_ptr<Session> session, std::string uid) {
    auto [n, first_of_uid] = local_index<Session>::attach(std::move(session), std::move(uid));
    if (first_of_uid) this->count(*n->session, metrics::uids);
    return n;
  }
  void detach(node* n) noexcept {
    if (!local_index<Session>::detach(n)) return;
    this->count(*n->session, metrics::uids, -1);
    if (auto* s = history.find(n->uid)) s->touch(history_clock::now());  // the position lives position_ttl from now
  }

  // ---- history (history.hpp): in memory, on the registry's thread ----

  std::size_t unicast(std::string_view uid, const message& m) {
    if (!this->options.history.enabled()) return this->deliver_to_uid(uid, m);
    return record(uid, m, nullptr);
  }
  recorded_delivery unicast_recorded(std::string_view uid, const message& m) {
    recorded_delivery out;
    if (!this->options.history.enabled()) out.queued = this->deliver_to_uid(uid, m);
    else out.queued = record(uid, m, &out);
    return out;
  }
  // Records `m` in the uid's stream and delivers it; `out` (optional) gets the position
  // (formatting the epoch costs an allocation: only when asked).
  std::size_t record(std::string_view uid, const message& m, recorded_delivery* out) {
    if (!m || !valid_uid(uid, this->options)) return 0;
    const auto now = history_clock::now();
    bool made = false;
    auto& stream = history.at(uid, now, &made);
    if (made) keep_sweeping();
    const message frame = stream.append(now, this->options.history, [&](std::uint64_t offset) {
      return history_frame(this->options.history, offset, m);
    });
    if (!frame) return 0;
    if (out) {
      out->recorded = true;
      out->position = stream.position();
    }
    return this->deliver_to_uid(uid, frame);
  }
  std::size_t broadcast(const message& m) { return this->deliver_to_all(history_frame(this->options.history, 0, m)); }
  std::size_t send_to_group(std::string_view group, const message& m) {
    if (this->groups.find(group) == this->groups.end()) return 0;  // format only for someone
    return this->deliver_to_group(group, history_frame(this->options.history, 0, m));
  }

  // At login, right after attach (the same step on this thread): the welcome, then the replay.
  resume_result resume(node* n, const std::optional<stream_position>& from) {
    const auto now = history_clock::now();
    bool made = false;
    auto& stream = history.at(n->uid, now, &made);
    if (made) keep_sweeping();
    return resume_from_memory(stream, n->uid, from, now, this->options.history,
                              [n](const message& m) { session_access::send_here(*n->session, m); });
  }

  history_stats stats_of_history() const {
    history_stats s;
    history.add_stats(s);
    return s;
  }

  // Old messages and idle streams are swept by a timer on this thread, which runs while there
  // are streams (and so keeps the io_context busy only while history holds something).
  void keep_sweeping() {
    if (sweeping) return;
    sweeping = true;
    sweep_while(this->owner.executor(), this->weak_from_this(), sweep_interval(this->options.history));
  }
  bool sweep() {
    const std::size_t left = history.sweep(history_clock::now(), this->options.history, [this](std::string_view uid) {
      return this->uids.find(uid) != this->uids.end();
    });
    sweeping = left != 0;
    return sweeping;
  }

  memory_history history;
  bool sweeping = false;
};
}  // namespace detail

template <class Session>
class registry<Session, single_thread>
    : public detail::one_thread_registry<Session, single_thread, detail::single_thread_state<Session>> {
  using base = detail::one_thread_registry<Session, single_thread, detail::single_thread_state<Session>>;

 public:
  // Without an executor, the registry's thread is that of the first session that logs in.
  explicit registry(registry_options options = {}) : base(std::make_shared<state>(std::move(options))) {}
  registry(asio::any_io_executor ex, registry_options options = {}) : registry(std::move(options)) {
    this->state_->owner.adopt(std::move(ex));
  }

  // ---- history (registry_options::history; history.hpp) ----

  // unicast(), and where the message is in the uid's history. From another thread it waits
  // for the registry's thread (like a query) rather than being handed over.
  recorded_delivery unicast_recorded(std::string_view uid, const message& m) {
    return this->template ask<recorded_delivery>([uid, &m](state& st) { return st.unicast_recorded(uid, m); });
  }
  // The position of the last message sent to `uid` (nullopt: no stream, or history is off).
  std::optional<stream_position> history_position(std::string_view uid) const {
    return this->template ask<std::optional<stream_position>>([uid](state& st) -> std::optional<stream_position> {
      if (auto* s = st.history.find(uid)) return s->position();
      return std::nullopt;
    });
  }
  // What history holds now: streams, messages, bytes (an estimate).
  herald::history_stats history_stats() const {
    return this->template ask<herald::history_stats>([](state& st) { return st.stats_of_history(); });
  }

 private:
  friend class binding<Session, single_thread>;
  using state = detail::single_thread_state<Session>;
};

}  // namespace herald

#endif  // HERALD_POLICY_SINGLE_THREAD_HPP
