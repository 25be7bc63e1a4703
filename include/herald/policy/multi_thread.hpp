// registry<Session, multi_thread>: one registry across several threads, each running its
// own io_context (a "lane"). Sessions stay on the lane that accepted them; every method may
// be called from any thread.
//
// - The uid index is split into shards by uid hash, each with its own mutex, so logins and
//   unicasts on different threads rarely meet. Duplicate-login policies are decided under
//   the shard's lock: of two logins of one uid, the one that takes the lock first is older.
// - A broadcast encodes once and hands one job per lane to that lane's thread, which walks its
//   own sessions; no lock is shared between lanes while sessions are written to.
// - A send to a session on another lane is posted to it (ws_session::send does that).
// - With history (registry_options::history), each uid's stream lives in its shard, under the
//   shard's lock: a unicast takes its offset, is recorded and is handed to the uid's sessions
//   in one step; a login attaches, gets its welcome and its replay in one step too. Recorded
//   messages reach each session in offset order whatever thread sent them: one that cannot go
//   out at once waits in the session's outbox (in order, under the shard's lock), which one
//   posted job per batch empties on the session's thread.
#ifndef HERALD_POLICY_MULTI_THREAD_HPP
#define HERALD_POLICY_MULTI_THREAD_HPP
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../history.hpp"
#include "../registry.hpp"

namespace herald {

struct multi_thread {};

template <class Session>
class registry<Session, multi_thread> {
 public:
  using session_type = Session;
  using binding_type = binding<Session, multi_thread>;
  using clock = std::chrono::steady_clock;

  // `lanes`: the executors sessions will live on (typically one io_context per thread).
  explicit registry(const std::vector<asio::any_io_executor>& lanes, registry_options options = {}, std::size_t shards = 64)
      : state_(std::make_shared<state>(lanes, options, shards)) {}
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // As registry<Session, single_thread>::login. The session must live on one of the lanes.
  // With history, the welcome and the replay are queued under the uid's shard lock in the
  // step that indexes the session: no recorded message can come between.
  template <class Authenticate>
  [[nodiscard]] asio::awaitable<binding_type> login(Session& s, Authenticate authenticate,
                                                    clock::duration deadline = std::chrono::seconds(10)) {
    auto session = s.shared_from_this();
    auto st = state_;
    auto* home = &st->lane_of(s.get_executor());  // a pointer, not a reference, across co_await (g++ 12)
    auto judged = co_await detail::judge_first_message(s, authenticate, deadline, st->options);
    if (judged.ended) {
      detail::count(st->options, s, metrics::logins_refused);
      co_return binding_type(s.status());
    }
    std::string refusal;
    std::unique_ptr<typename state::node> n;
    std::vector<std::shared_ptr<Session>> replaced;
    std::unique_ptr<resume_result> resumed;
    if (!judged.verdict.uid) {
      refusal = std::move(judged.verdict.reason);
    } else if (s.is_open()) {
      n = std::make_unique<typename state::node>();
      n->session = session;
      n->uid = std::move(*judged.verdict.uid);
      n->home = home;
      if (st->options.history.enabled()) {
        n->box = std::make_shared<typename state::outbox>();
        resumed = std::make_unique<resume_result>();
      }
      if (!st->index(st, n.get(), replaced, judged.verdict.resume, resumed.get())) refusal = "uid already logged in";
    }
    if (!refusal.empty()) {
      // Refused: say why and finish the closing handshake. (Inline, not a helper coroutine:
      // g++ 12 miscompiles awaiting one here.)
      detail::count(st->options, s, metrics::logins_refused);
      s.close(judged.code, std::move(refusal));
      while (co_await s.read()) {
      }
      close_status why = s.status();
      if (!judged.detail.empty()) why.reason = std::move(judged.detail);
      co_return binding_type(std::move(why));
    }
    if (!n) co_return binding_type(s.status());  // the session ended during authentication
    detail::count(st->options, s, metrics::logins_ok);
    for (auto& old : replaced) old->close(ws::close_code::replaced, "replaced by a newer login");
    {
      std::lock_guard lock(home->mutex);
      n->lane_index = home->sessions.size();
      home->sessions.push_back({session.get(), n.get()});
    }
    st->session_count.fetch_add(1, std::memory_order_relaxed);
    co_return binding_type(st, n.release(), std::move(resumed));
  }

  // Sends to every session of `uid`, from any thread; returns how many it was queued or
  // posted to.
  std::size_t unicast(std::string_view uid, const message& m) {
    if (!m) return 0;
    if (state_->options.history.enabled()) return record(uid, m, nullptr);
    auto& sh = state_->shard_of(uid);
    std::lock_guard lock(sh.mutex);
    auto it = sh.uids.find(uid);
    if (it == sh.uids.end()) return 0;
    std::size_t queued = 0;
    for (auto* n : it->second) queued += detail::counts_as_queued(n->session->send(m));
    return queued;
  }
  std::size_t unicast(std::string_view uid, std::string_view text) {
    if (!state_->options.history.enabled() && !online(uid)) return 0;  // encode only for someone
    return unicast(uid, message::text(text));
  }

  // ---- history (registry_options::history; history.hpp) ----

  // unicast(), and where the message is in the uid's history; from any thread. Recorded even
  // when the uid has no session (that is what history is for), if the uid is valid.
  recorded_delivery unicast_recorded(std::string_view uid, const message& m) {
    recorded_delivery out;
    if (!state_->options.history.enabled()) out.queued = unicast(uid, m);
    else out.queued = record(uid, m, &out);
    return out;
  }
  // The position of the last message sent to `uid` (nullopt: no stream, or history is off).
  std::optional<stream_position> history_position(std::string_view uid) const {
    auto& sh = state_->shard_of(uid);
    std::lock_guard lock(sh.mutex);
    if (auto* s = sh.history.find(uid)) return s->position();
    return std::nullopt;
  }
  // What history holds now (every shard, one at a time): streams, messages, bytes (an estimate).
  herald::history_stats history_stats() const {
    herald::history_stats out;
    for (auto& sh : state_->shards) {
      std::lock_guard lock(sh.mutex);
      sh.history.add_stats(out);
    }
    return out;
  }

  // Starts the closing handshake of every session of `uid` ("log out everywhere"), from any
  // thread; returns how many.
  std::size_t close_uid(std::string_view uid, std::uint16_t code = ws::close_code::normal, std::string_view reason = "logged out") {
    auto& sh = state_->shard_of(uid);
    std::lock_guard lock(sh.mutex);
    auto it = sh.uids.find(uid);
    if (it == sh.uids.end()) return 0;
    for (auto* n : it->second) n->session->close(code, std::string(reason));
    return it->second.size();
  }

  // The sessions of `uid` (all of a user's devices), from any thread. Each lives on its own
  // lane: touch its data() there (asio::post(s->get_executor(), ...)).
  std::vector<std::shared_ptr<Session>> sessions(std::string_view uid) const {
    std::vector<std::shared_ptr<Session>> out;
    auto& sh = state_->shard_of(uid);
    std::lock_guard lock(sh.mutex);
    auto it = sh.uids.find(uid);
    if (it == sh.uids.end()) return out;
    for (auto* n : it->second) out.push_back(n->session);
    return out;
  }

  // Sends to every logged-in session: one frame, one job per lane. Returns how many
  // sessions were logged in when it was called (the lanes deliver asynchronously).
  std::size_t broadcast(const message& given) {
    if (!given) return 0;
    const message m = detail::history_frame(state_->options.history, 0, given);
    for (auto& l : state_->lanes) {
      if (detail::running_in(l->executor)) {
        state::fan_out(*l, m);
      } else {
        asio::post(l->executor, [keep = state_, target = l.get(), m] { state::fan_out(*target, m); });
      }
    }
    return session_count();
  }
  std::size_t broadcast(std::string_view text) { return session_count() == 0 ? 0 : broadcast(message::text(text)); }

  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    for (auto& l : state_->lanes) {
      std::lock_guard lock(l->mutex);
      for (auto& e : l->sessions) e.session->close(code, std::string(reason));
    }
    return session_count();
  }

  // ---- groups (as in single_thread; a group's members may live on any lane) ----

  bool join(binding_type& b, std::string_view group) {
    if (!b || !detail::valid_name(group, state_->options.max_group_size)) return false;
    auto* n = b.node_;
    for (auto& g : n->groups)
      if (g == group) return false;
    auto& sh = state_->shard_of(group);
    {
      std::lock_guard lock(sh.mutex);
      auto it = sh.groups.find(group);
      if (it == sh.groups.end()) it = sh.groups.emplace(std::string(group), typename state::members{}).first;
      it->second.insert(n);
    }
    n->groups.emplace_back(group);
    return true;
  }

  bool leave(binding_type& b, std::string_view group) {
    if (!b) return false;
    auto* n = b.node_;
    for (std::size_t i = 0; i < n->groups.size(); ++i) {
      if (n->groups[i] != group) continue;
      state_->leave_group(n, n->groups[i]);
      n->groups[i] = std::move(n->groups.back());
      n->groups.pop_back();
      return true;
    }
    return false;
  }

  // Sends to every session in `group`, from any thread; returns how many it was queued or
  // posted to.
  std::size_t send_to_group(std::string_view group, const message& m) {
    if (!m) return 0;
    auto& sh = state_->shard_of(group);
    std::lock_guard lock(sh.mutex);
    auto it = sh.groups.find(group);
    if (it == sh.groups.end()) return 0;
    const message frame = detail::history_frame(state_->options.history, 0, m);
    std::size_t queued = 0;
    for (auto* n : it->second) queued += detail::counts_as_queued(n->session->send(frame));
    return queued;
  }
  std::size_t send_to_group(std::string_view group, std::string_view text) {
    if (group_size(group) == 0) return 0;
    return send_to_group(group, message::text(text));
  }

  std::size_t group_size(std::string_view group) const {
    auto& sh = state_->shard_of(group);
    std::lock_guard lock(sh.mutex);
    auto it = sh.groups.find(group);
    return it == sh.groups.end() ? 0 : it->second.size();
  }
  bool is_member(const binding_type& b, std::string_view group) const {
    if (!b) return false;
    for (auto& g : b.node_->groups)
      if (g == group) return true;
    return false;
  }
  std::size_t group_count() const {
    std::size_t n = 0;
    for (auto& sh : state_->shards) {
      std::lock_guard lock(sh.mutex);
      n += sh.groups.size();
    }
    return n;
  }

  // ---- presence ----

  // Calls f(uid, sessions) for every uid online, one shard at a time under its lock (a
  // consistent view per shard, not across shards); do not call the registry from f.
  template <class F>
  void for_each_uid(F&& f) const {
    for (auto& sh : state_->shards) {
      std::lock_guard lock(sh.mutex);
      for (const auto& [uid, list] : sh.uids) f(std::string_view(uid), list.size());
    }
  }
  std::vector<std::string> uids() const {
    std::vector<std::string> out;
    for_each_uid([&out](std::string_view uid, std::size_t) { out.emplace_back(uid); });
    return out;
  }

  bool online(std::string_view uid) const { return sessions_of(uid) != 0; }
  std::size_t sessions_of(std::string_view uid) const {
    auto& sh = state_->shard_of(uid);
    std::lock_guard lock(sh.mutex);
    auto it = sh.uids.find(uid);
    return it == sh.uids.end() ? 0 : it->second.size();
  }
  std::size_t uid_count() const noexcept { return state_->uid_count.load(std::memory_order_relaxed); }
  std::size_t session_count() const noexcept { return state_->session_count.load(std::memory_order_relaxed); }
  const registry_options& options() const noexcept { return state_->options; }

 private:
  friend class binding<Session, multi_thread>;

  // Records `m` in the uid's stream and hands it to the uid's sessions; returns how many.
  // `out` (optional) gets the position (formatting the epoch costs an allocation: only when asked).
  std::size_t record(std::string_view uid, const message& m, recorded_delivery* out) {
    if (!m || !detail::valid_uid(uid, state_->options)) return 0;
    auto& sh = state_->shard_of(uid);
    const auto now = detail::history_clock::now();
    std::lock_guard lock(sh.mutex);
    auto& stream = state_->stream_of(state_, sh, uid, now);
    const message frame = stream.append(now, state_->options.history, [&](std::uint64_t offset) {
      return detail::history_frame(state_->options.history, offset, m);
    });
    if (!frame) return 0;
    if (out) {
      out->recorded = true;
      out->position = stream.position();
    }
    std::size_t queued = 0;
    auto it = sh.uids.find(uid);
    if (it != sh.uids.end())
      for (auto* n : it->second) queued += state::deliver_in_order(n, frame);
    return queued;
  }

  // Everything bindings and lane jobs need; shared with them.
  struct state {
    struct lane;
    // Recorded messages for one session that could not be sent at once, in offset order (they
    // are pushed under the uid's shard lock, as offsets are given). Its own small mutex lets the
    // session's thread empty it without the shard lock.
    struct outbox {
      std::mutex mutex;
      std::vector<message> pending;
      bool scheduled = false;  // a job that empties it is posted to the session's executor
    };
    struct node {
      std::shared_ptr<Session> session;
      std::string uid;
      lane* home = nullptr;
      std::size_t lane_index = 0;  // guarded by home->mutex
      std::size_t uid_index = 0;   // guarded by the shard's mutex
      bool indexed = false;        // likewise: still in the uid index (false once replaced)
      std::vector<std::string> groups;  // touched only through the binding (one owner)
      std::shared_ptr<outbox> box;      // with history only
    };
    using members = std::unordered_set<node*>;
    struct entry {
      Session* session;
      node* owner;
    };
    struct lane {
      explicit lane(asio::any_io_executor ex) : executor(std::move(ex)) {}
      asio::any_io_executor executor;
      std::mutex mutex;  // taken by its own thread, except when a binding dies elsewhere
      std::vector<entry> sessions;
    };
    struct shard {
      std::mutex mutex;
      std::unordered_map<std::string, std::vector<node*>, detail::transparent_hash, std::equal_to<>> uids;
      std::unordered_map<std::string, members, detail::transparent_hash, std::equal_to<>> groups;
      detail::memory_history history;  // the streams of this shard's uids
    };

    state(const std::vector<asio::any_io_executor>& executors, registry_options o, std::size_t shard_count)
        : options(o), shards(shard_count ? shard_count : 1) {
      lanes.reserve(executors.size());
      for (const auto& ex : executors) lanes.push_back(std::make_unique<lane>(ex));
    }

    lane& lane_of(const asio::any_io_executor& ex) {
      auto& context = asio::query(ex, asio::execution::context);
      for (auto& l : lanes)
        if (&asio::query(l->executor, asio::execution::context) == &context) return *l;
      throw std::invalid_argument("herald::registry<multi_thread>: the session's executor is not one of the registry's lanes");
    }

    shard& shard_of(std::string_view name) { return shards[detail::transparent_hash{}(name) % shards.size()]; }

    // Adds `n` to the uid index under the duplicate policy; false when rejected. With history
    // (`resumed` set), in the same step: the welcome and the replay from `from`.
    bool index(const std::shared_ptr<state>& self, node* n, std::vector<std::shared_ptr<Session>>& replaced,
               const std::optional<stream_position>& from, resume_result* resumed) {
      auto& sh = shard_of(n->uid);
      std::lock_guard lock(sh.mutex);
      auto it = sh.uids.find(std::string_view(n->uid));
      if (it != sh.uids.end()) {
        if (options.duplicates == duplicate_login::reject) return false;
        if (options.duplicates == duplicate_login::replace) {
          for (node* old : it->second) {
            old->indexed = false;
            replaced.push_back(old->session);
          }
          it->second.clear();
        }
      } else {
        it = sh.uids.emplace(n->uid, std::vector<node*>{}).first;
        uid_count.fetch_add(1, std::memory_order_relaxed);
        detail::count(options, *n->session, metrics::uids);
      }
      n->uid_index = it->second.size();
      n->indexed = true;
      it->second.push_back(n);
      if (resumed) {
        const auto now = detail::history_clock::now();
        auto& stream = stream_of(self, sh, n->uid, now);
        *resumed = detail::resume_from_memory(stream, n->uid, from, now, options.history,
                                              [n](const message& m) { deliver_in_order(n, m); });
      }
      return true;
    }

    // The uid's stream (made if there is none); under the shard's lock.
    detail::memory_stream& stream_of(const std::shared_ptr<state>& self, shard& sh, std::string_view uid,
                                     detail::history_clock::time_point now) {
      bool made = false;
      auto& s = sh.history.at(uid, now, &made);
      if (made) {
        streams.fetch_add(1);
        if (!sweeping.exchange(true))
          detail::sweep_while(lanes.front()->executor, std::weak_ptr<state>(self), detail::sweep_interval(options.history));
      }
      return s;
    }

    // Hands a recorded frame to `n`'s session after everything recorded before it; under the
    // shard's lock (so in offset order). At once when nothing waits and this is the session's
    // thread; otherwise through the outbox, emptied by one job per batch on the session's
    // executor.
    static bool deliver_in_order(node* n, const message& m) {
      auto& box = *n->box;
      {
        std::unique_lock lock(box.mutex);
        if (!box.pending.empty() || box.scheduled || !detail::running_in(n->session->get_executor())) {
          box.pending.push_back(m);
          if (std::exchange(box.scheduled, true)) return true;
          lock.unlock();
          asio::post(n->session->get_executor(), [s = n->session, b = n->box] {
            std::vector<message> batch;
            {
              std::lock_guard inner(b->mutex);
              batch.swap(b->pending);
              b->scheduled = false;
            }
            for (auto& f : batch) s->send(f);  // on the session's executor: queued at once, in order
          });
          return true;
        }
      }
      return detail::counts_as_queued(n->session->send(m));
    }

    // Old messages and idle streams go by a timer on the first lane, which runs while there
    // are streams (detail::sweep_while).
    bool sweep() {
      const auto now = detail::history_clock::now();
      for (auto& sh : shards) {
        std::lock_guard lock(sh.mutex);
        const std::size_t before = sh.history.size();
        const std::size_t left = sh.history.sweep(now, options.history, [&sh](std::string_view uid) {
          return sh.uids.find(uid) != sh.uids.end();
        });
        streams.fetch_sub(before - left);
      }
    // Stop when nothing is left, unless a stream was made meanwhile (its maker saw
      // `sweeping` still true and left the sweeping to us).
      if (streams.load() == 0) {
        sweeping.store(false);
        if (streams.load() == 0 || sweeping.exchange(true)) return false;
      }
      return true;
    }

    void leave_group(node* n, std::string_view group) {
      auto& sh = shard_of(group);
      std::lock_guard lock(sh.mutex);
      auto it = sh.groups.find(group);
      if (it == sh.groups.end()) return;
      it->second.erase(n);
      if (it->second.empty()) sh.groups.erase(it);
    }

    static void fan_out(lane& l, const message& m) {
      std::lock_guard lock(l.mutex);
      for (auto& e : l.sessions) detail::session_access::send_on_context(*e.session, m);
    }

    void unbind(node* n) noexcept {
      {
        auto& sh = shard_of(n->uid);
        std::lock_guard lock(sh.mutex);
        if (n->indexed) {
          auto it = sh.uids.find(std::string_view(n->uid));
          auto& list = it->second;
          list[n->uid_index] = list.back();
          list[n->uid_index]->uid_index = n->uid_index;
          list.pop_back();
          if (list.empty()) {
            sh.uids.erase(it);
            uid_count.fetch_sub(1, std::memory_order_relaxed);
            detail::count(options, *n->session, metrics::uids, -1);
            if (auto* s = sh.history.find(n->uid)) s->touch(detail::history_clock::now());
          }
        }
      }
      for (auto& g : n->groups) leave_group(n, g);
      {
        lane& l = *n->home;
        std::lock_guard lock(l.mutex);
        l.sessions[n->lane_index] = l.sessions.back();
        l.sessions[n->lane_index].owner->lane_index = n->lane_index;
        l.sessions.pop_back();
      }
      session_count.fetch_sub(1, std::memory_order_relaxed);
      delete n;
    }

    registry_options options;
    std::vector<std::unique_ptr<lane>> lanes;
    mutable std::vector<shard> shards;
    std::atomic<std::size_t> uid_count{0};
    std::atomic<std::size_t> session_count{0};
    // History's sweeping (see sweep()).
    std::atomic<std::size_t> streams{0};
    std::atomic<bool> sweeping{false};
  };

  std::shared_ptr<state> state_;
};

}  // namespace herald

#endif  // HERALD_POLICY_MULTI_THREAD_HPP
