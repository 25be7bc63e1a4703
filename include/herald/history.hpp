// Per-uid history: every message sent to a uid gets an offset (1, 2, 3, ... per uid) in a
// stream whose epoch names one life of that history; a session that logs in with the
// position of the last message it processed gets, before anything live, every later message
// still held, or is told that history no longer covers its position.
//
//   herald::registry_options ro;
//   ro.history.max_messages = 100;                       // per uid; 0 (the default): off
//   ro.history.format = [](std::uint64_t offset, std::string_view text, bool binary) { ... };
//   ro.history.welcome = [](std::string_view uid, const herald::resume_result& r) { ... };
//   // the authenticator: login_verdict::accept(uid).resume_from({epoch, offset})
//
// What is recorded: unicasts (every message sent to one uid: registry::unicast from anywhere,
// the HTTP push API's /send, and on redis_cluster the history function in Redis). Group and
// broadcast messages are not: they have no offset and are delivered at most once (giving each
// uid a copy of every broadcast would cost memory per uid per broadcast; a group or "all"
// stream of its own is a later step).
//
// The frame of a recorded message may depend on its offset (an application's wire format
// puts the offset in the payload): history_options::format builds it once, when the offset
// is known, and that one frame is what every session of the uid receives and what history
// keeps, so a replay copies nothing. The library itself puts no bytes of its own in a frame.
//
// This header is the policies' common part: the types the application sees and the
// in-memory stream of single_thread and multi_thread. redis_cluster keeps its streams in
// Redis (policy/redis_cluster.hpp).
#ifndef HERALD_HISTORY_HPP
#define HERALD_HISTORY_HPP
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/asio.hpp"
#include "message.hpp"

namespace herald {

// Where a client is in its uid's stream: the stream's epoch and the offset of the last
// message it processed (0: none yet).
struct stream_position {
  std::string epoch;
  std::uint64_t offset = 0;
  friend bool operator==(const stream_position&, const stream_position&) = default;
};

// What login did about history.
enum class resume_state : std::uint8_t {
  off,            // the registry keeps no history
  fresh,          // no position was given: the session starts at the end of the stream
  recovered,      // every message after the given position was replayed, before anything live
  not_recovered,  // history no longer covers the position (trimmed, expired, another epoch,
                  // or, on redis_cluster, Redis did not answer): the application reloads its
                  // state; the session goes on live from `position`
};

struct resume_result {
  resume_state state = resume_state::off;
  // The stream's epoch and the offset of the last message before the live ones: what the
  // session has once the replay is through. (An empty epoch: redis_cluster could not ask
  // Redis; the first live message then tells the session its position.)
  stream_position position;
  std::size_t replayed = 0;  // messages replayed
  bool recovered() const noexcept { return state == resume_state::recovered; }
};

inline const char* to_string(resume_state s) noexcept {
  switch (s) {
    case resume_state::off: return "off";
    case resume_state::fresh: return "fresh";
    case resume_state::recovered: return "recovered";
    case resume_state::not_recovered: return "not recovered";
  }
  return "?";
}

struct history_options {
  // Messages kept per uid. 0 (the default): no history, and nothing here costs anything.
  std::size_t max_messages = 0;
  // A message older than this is gone from history (and a resume that needs it is not
  // recovered).
  std::chrono::milliseconds max_age = std::chrono::minutes(5);
  // How long a uid's stream (its epoch and last offset, without messages) outlives its last
  // message or session: a client that comes back within it, having missed nothing, is
  // recovered; after it, the stream is gone and a new epoch begins. In memory an empty
  // stream costs about 150 bytes and is kept while its uid has a session; in Redis, one
  // small hash, which expires position_ttl after its last message or read whether or not
  // the uid is connected (a session idle longer is then told "history lost" at its next
  // message, with a new epoch).
  std::chrono::milliseconds position_ttl = std::chrono::hours(24);
  // The frame of a message: `offset` is its place in the uid's history, 0 for a message that
  // is not recorded (group, broadcast). Called once per message (the frame is shared by every
  // receiver and by history). Unset: the message as it was given.
  std::function<message(std::uint64_t offset, std::string_view payload, bool binary)> format;
  // Queued to a session at login before the replay (e.g. the login reply with the position).
  // Unset: nothing; whatever the application sends after login() then follows the replay.
  std::function<message(std::string_view uid, const resume_result&)> welcome;
  // Queued to a live session whose position was lost (redis_cluster: Redis lost the stream,
  // or the node missed messages that history no longer holds): the state is not_recovered
  // and `position` is where the session goes on from. Unset: nothing is sent.
  std::function<message(std::string_view uid, const resume_result&)> lost;

  bool enabled() const noexcept { return max_messages > 0; }
};

// The answer of registry::unicast_recorded(): how many sessions it was queued to and where
// it is in the uid's history (recorded = false when history is off or the message was empty).
struct recorded_delivery {
  std::size_t queued = 0;
  bool recorded = false;
  stream_position position;
};

// In-memory history of a registry (history_stats()): streams, messages held, and an estimate
// of the bytes they take (stream records, ring slots, map nodes, and the frames they hold).
struct history_stats {
  std::size_t streams = 0;
  std::size_t messages = 0;
  std::size_t bytes = 0;
};

namespace detail {

using history_clock = std::chrono::steady_clock;

// The frame of a recorded message (offset > 0) or of one that is not (0).
inline message history_frame(const history_options& o, std::uint64_t offset, const message& m) {
  if (!o.format || !m) return m;
  return o.format(offset, m.payload(), m.op() == ws::opcode::binary);
}

// 16 hex digits.
inline std::string epoch_text(std::uint64_t id) {
  static const char hex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, id >>= 4) s[static_cast<std::size_t>(i)] = hex[id & 0xF];
  return s;
}
inline std::optional<std::uint64_t> epoch_id(std::string_view s) noexcept {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<std::uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint64_t>(c - 'a' + 10);
    else return std::nullopt;
  }
  return v;
}

// A mixing step, so that consecutive stream numbers give unrelated-looking epochs.
inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::uint64_t random_u64() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

// One uid's stream in memory: its epoch, the offset of its last message, and its last
// messages (at most max_messages, none older than max_age) in a ring whose slots grow on
// demand. Offsets are implicit: the ring holds top - size + 1 .. top.
class memory_stream {
 public:
  using time_point = history_clock::time_point;

  memory_stream(std::uint64_t epoch, time_point now) noexcept : epoch_(epoch), touched_(now) {}

  std::uint64_t epoch() const noexcept { return epoch_; }
  std::uint64_t top() const noexcept { return top_; }
  std::size_t size() const noexcept { return count_; }
  stream_position position() const { return {epoch_text(epoch_), top_}; }

  // Records the frame `build(offset)` makes for the next offset; returns it (an empty
  // message, and nothing recorded, when `build` gives none).
  template <class Build>
  message append(time_point now, const history_options& o, Build&& build) {
    expire(now, o.max_age);
    message m = build(top_ + 1);
    if (!m) return m;
    ++top_;
    push({m, now}, o.max_messages);
    touched_ = now;
    return m;
  }

  // Whether the stream still holds every message after `from` (after dropping old ones).
  bool covers(const stream_position& from, time_point now, const history_options& o) noexcept {
    expire(now, o.max_age);
    const auto id = epoch_id(from.epoch);
    return id && *id == epoch_ && from.offset <= top_ && from.offset + 1 >= first();
  }
  // Calls deliver(frame) for every message after `from`, which covers() accepted; returns
  // how many.
  template <class Deliver>
  std::size_t replay(const stream_position& from, Deliver&& deliver) const {
    const std::uint64_t first_held = first();
    for (std::uint64_t off = from.offset + 1; off <= top_; ++off) deliver(slot(static_cast<std::size_t>(off - first_held)).frame);
    return static_cast<std::size_t>(top_ - from.offset);
  }

  // Drops messages older than max_age (oldest first).
  void expire(time_point now, std::chrono::milliseconds max_age) noexcept {
    while (count_ && now - ring_[start_].at >= max_age) {
      ring_[start_] = {};
      start_ = (start_ + 1) % ring_.size();
      --count_;
    }
    if (count_ == 0 && !ring_.empty()) {  // nothing held: give the slots back
      std::vector<entry>().swap(ring_);
      start_ = 0;
    }
  }

  void touch(time_point now) noexcept { touched_ = now; }
  // Nothing held, and nothing happened for `ttl`.
  bool idle(time_point now, std::chrono::milliseconds ttl) const noexcept { return count_ == 0 && now - touched_ >= ttl; }

  // Bytes this stream holds beyond its map node: the ring and the frames in it.
  std::size_t held_bytes() const noexcept {
    std::size_t b = ring_.capacity() ? ring_.capacity() * sizeof(entry) + 2 * sizeof(void*) : 0;
    for (std::size_t i = 0; i < count_; ++i) b += frame_cost(slot(i).frame);
    return b;
  }

 private:
  struct entry {
    message frame;
    time_point at{};
  };

  // A frame's allocation: its bytes, the message record in front of them (3 words) and the
  // allocator's own (about 2 words).
  static std::size_t frame_cost(const message& m) noexcept { return m ? m.frame_size() + 5 * sizeof(void*) : 0; }

  std::uint64_t first() const noexcept { return top_ - count_ + 1; }  // the oldest held (top + 1 when none)
  const entry& slot(std::size_t i) const noexcept { return ring_[(start_ + i) % ring_.size()]; }

  void push(entry e, std::size_t max) {
    if (max == 0) return;
    if (count_ < ring_.size()) {
      ring_[(start_ + count_) % ring_.size()] = std::move(e);
      ++count_;
    } else if (ring_.size() < max) {  // grow: straighten the ring first, then append
      if (start_ != 0) {
        std::rotate(ring_.begin(), ring_.begin() + start_, ring_.end());
        start_ = 0;
      }
      if (ring_.capacity() == ring_.size()) ring_.reserve(std::min(max, std::max<std::size_t>(4, ring_.size() * 2)));
      ring_.push_back(std::move(e));
      ++count_;
    } else {  // full: the oldest goes
      ring_[start_] = std::move(e);
      start_ = (start_ + 1) % ring_.size();
    }
  }

  std::vector<entry> ring_;
  std::uint64_t epoch_;
  std::uint64_t top_ = 0;
  time_point touched_;
  std::uint32_t start_ = 0;
  std::uint32_t count_ = 0;
};

// uid -> stream, for the one thread (single_thread) or the one shard (multi_thread) that owns
// it. New streams get a fresh epoch: a random number drawn with the first stream, plus a
// count of the streams made since, mixed.
class memory_history {
 public:
  using time_point = history_clock::time_point;

  memory_history() = default;
  explicit memory_history(std::uint64_t seed) noexcept : seed_(seed), seeded_(true) {}

  memory_stream* find(std::string_view uid) noexcept {
    auto it = streams_.find(uid);
    return it == streams_.end() ? nullptr : &it->second;
  }
  // The uid's stream, made if there is none (`made` says so).
  memory_stream& at(std::string_view uid, time_point now, bool* made = nullptr) {
    auto it = streams_.find(uid);
    if (made) *made = it == streams_.end();
    if (it != streams_.end()) return it->second;
    if (!std::exchange(seeded_, true)) seed_ = random_u64();  // drawn when needed: a registry without history draws none
    return streams_.emplace(std::string(uid), memory_stream(mix64(seed_ + ++made_), now)).first->second;
  }

  // Drops old messages everywhere, and the streams that are idle (see memory_stream::idle)
  // and whose uid has no session (`online(uid)` false). Returns how many streams are left.
  template <class Online>
  std::size_t sweep(time_point now, const history_options& o, Online&& online) {
    for (auto it = streams_.begin(); it != streams_.end();) {
      it->second.expire(now, o.max_age);
      if (it->second.idle(now, o.position_ttl) && !online(std::string_view(it->first))) it = streams_.erase(it);
      else ++it;
    }
    return streams_.size();
  }

  std::size_t size() const noexcept { return streams_.size(); }
  void add_stats(history_stats& s) const noexcept {
    s.streams += streams_.size();
    for (const auto& [uid, st] : streams_) {
      s.messages += st.size();
      // A map node: the pair, the next pointer, the cached hash and the allocator's 2 words,
      // plus the uid's heap bytes.
      s.bytes += sizeof(std::pair<const std::string, memory_stream>) + 4 * sizeof(void*) + st.held_bytes() +
                 (uid.size() > 15 ? uid.capacity() + 1 : 0);
    }
    s.bytes += streams_.bucket_count() * sizeof(void*);
  }

 private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, memory_stream, hash, std::equal_to<>> streams_;
  std::uint64_t seed_ = 0;
  std::uint64_t made_ = 0;
  bool seeded_ = false;
};

// Login on the uid's stream `s`: decides fresh, recovered or not_recovered, and hands
// `deliver` the welcome (if the application wants one) and then every message replayed, in
// order. The caller makes this one step with attaching the session, so that nothing live
// comes between.
template <class Deliver>
resume_result resume_from_memory(memory_stream& s, std::string_view uid, const std::optional<stream_position>& from,
                                 history_clock::time_point now, const history_options& o, Deliver&& deliver) {
  resume_result r;
  s.touch(now);
  const bool covered = from && s.covers(*from, now, o);
  r.state = !from ? resume_state::fresh : covered ? resume_state::recovered : resume_state::not_recovered;
  r.position = s.position();
  if (covered) r.replayed = static_cast<std::size_t>(s.top() - from->offset);
  if (o.welcome) {
    if (message w = o.welcome(uid, r)) deliver(w);
  }
  if (covered) s.replay(*from, deliver);
  return r;
}

// How often the streams are swept: often enough that memory follows max_age, at most once a
// minute, at least every 10 ms.
inline history_clock::duration sweep_interval(const history_options& o) {
  const auto shorter = std::min(o.max_age, o.position_ttl) / 4;
  return std::clamp<history_clock::duration>(shorter, std::chrono::milliseconds(10), std::chrono::seconds(60));
}

// Calls owner->sweep() every sweep_interval on `ex` for as long as it returns true and the owner
// lives. The timer belongs to its own pending wait, not to the owner: an owner kept alive by
// bindings in coroutine frames may then outlive the io_context without touching it.
template <class Owner>
void sweep_while(asio::any_io_executor ex, std::weak_ptr<Owner> owner, history_clock::duration every) {
  struct job {
    job(asio::any_io_executor e, std::weak_ptr<Owner> o, history_clock::duration d) : timer(std::move(e)), owner(std::move(o)), every(d) {}
    asio::steady_timer timer;
    std::weak_ptr<Owner> owner;
    history_clock::duration every;
    static void arm(std::shared_ptr<job> j) {
      auto* t = &j->timer;
      t->expires_after(j->every);
      t->async_wait([j = std::move(j)](error_code ec) mutable {
        if (ec) return;
        auto o = j->owner.lock();
        if (o && o->sweep()) arm(std::move(j));
      });
    }
  };
  job::arm(std::make_shared<job>(std::move(ex), std::move(owner), every));
}

}  // namespace detail
}  // namespace herald

#endif  // HERALD_HISTORY_HPP
