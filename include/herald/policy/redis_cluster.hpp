// registry<Session, redis_cluster>: several herald nodes (processes, machines) behind one
// Redis, so that a message reaches a uid or a group wherever its sessions are logged in.
//
//   #include <herald.hpp>
//   #include <herald/policy/redis_cluster.hpp>      // link hiredis (Debian: libhiredis-dev)
//   herald::redis_cluster_options rc;  rc.redis.host = "127.0.0.1";  rc.redis.port = 6379;
//   herald::registry<session, herald::redis_cluster> users(io.get_executor(), rc);
//
// The API is single_thread's (login, unicast, broadcast, join, leave, send_to_group,
// close_all, online, uids, counts, options): application code does not change. Like
// single_thread, one io_context thread owns the registry, its sessions and its Redis
// connections; run one node per core and let Redis join them.
//
// Routing (channel names start with the configurable prefix, "herald" by default). A node
// holds a channel exactly while it has a local member of it: it SUBSCRIBEs when the first
// local member arrives and UNSUBSCRIBEs when the last one leaves, so a message travels only
// to the nodes that hold its addressees:
//   <prefix>:uid:<uid>      members: the node's sessions of <uid>;
//   <prefix>:group:<name>   members: the node's sessions in group <name> (join/leave, and
//                           every group is left when its session's binding dies);
//   <prefix>:all            every node, always: broadcasts.
// unicast()/send_to_group()/broadcast() deliver to this node's sessions at once (a unicast
// with history on goes through Redis to every session, this node's too) and PUBLISH
// the message in an envelope that names this node (redis/envelope.hpp); the node skips its
// own envelopes when Redis brings them back, so every session gets a message exactly once. A
// payload without an envelope (`PUBLISH herald:uid:alice hi` from redis-cli, PHP, anything)
// is delivered as is.
//
// What counts is local: unicast(), send_to_group() and broadcast() return how many sessions
// *of this node* the message was queued to; online(), uids(), sessions_of(), uid_count(),
// session_count(), group_size(), group_count() and close_all() concern this node. The
// *_confirmed() variants also wait for Redis to say how many other nodes took the message.
// registry_options::duplicates applies per node.
//
// Cluster-wide presence is asynchronous and answered by Redis; each answer says whether it
// is cluster-wide or, when Redis did not answer within redis.request_timeout, this node's
// view (cluster_wide = false). Each is a snapshot: a session that logs in or out while it
// travels may or may not be counted.
//   online_in_cluster(uid)      PUBSUB NUMSUB <prefix>:uid:<uid>: O(1) on Redis. Exact up to
//                               the SUBSCRIBE/UNSUBSCRIBE in flight (milliseconds).
//   uids_in_cluster(),          PUBSUB CHANNELS <prefix>:uid:*: Redis walks *every* pub/sub
//   uid_count_in_cluster()      channel it has (all prefixes, all applications) and sends one
//                               name per uid, blocking its other clients meanwhile: O(all
//                               channels). Fine for a dashboard every few seconds, not per
//                               request at 10^6 uids. Exact as above; a uid is counted once
//                               however many nodes and sessions hold it. (With Redis Cluster,
//                               only the channels of the shard the node is connected to.)
//   session_count_in_cluster()  every presence_interval each node SETs its session count in
//                               <prefix>:node:<node-id> (expiring after 3 intervals) and
//                               SADDs its id to <prefix>:nodes; the answer is SMEMBERS + MGET
//                               of those keys: O(nodes), two round trips. Other nodes' counts
//                               are up to one interval old; a node that died is counted with
//                               its last report until its key expires (3 intervals), then
//                               dropped (and removed from the set). This node's own count is
//                               always its current one. (NUMSUB cannot count sessions: a node
//                               subscribes once per uid, however many sessions it holds.)
//   node_count_in_cluster()     PUBSUB NUMSUB <prefix>:all: nodes connected now, O(1).
//
// Delivery guarantee: exactly once to this node's sessions (while they are connected, as with
// single_thread); across nodes at most once. Redis pub/sub keeps nothing: a message published
// while Redis (or the link to it) is down, or before another node's SUBSCRIBE for a freshly
// logged-in uid or joined group has reached Redis, is lost for the other nodes and counted on
// the publishing side (redis_stats().publish_dropped / publish_unconfirmed). Local delivery
// never depends on Redis, except a unicast with history on: its offset is Redis's. Messages
// from one node arrive at another in the order they were published. Each reconnection of
// either Redis link counts in metrics::redis_reconnects (registry_options::metrics), as
// logins and uids do.
#ifndef HERALD_POLICY_REDIS_CLUSTER_HPP
#define HERALD_POLICY_REDIS_CLUSTER_HPP
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../history.hpp"
#include "../registry.hpp"
#include "one_thread.hpp"
#include "../redis/envelope.hpp"
#include "../redis/history_functions.hpp"
#include "../redis/pubsub.hpp"

namespace herald {

struct redis_cluster {};

struct redis_cluster_options {
  redis::options redis;              // where Redis is, reconnect backoff, keepalive, logging
  std::string prefix = "herald";     // channels <prefix>:uid:<uid>, <prefix>:group:<name>, <prefix>:all
  std::string node_id;               // [A-Za-z0-9_.-]{1,64}; empty: 16 random hex digits
  std::size_t max_message_size = 1024 * 1024;  // larger messages from Redis are dropped, counted
  // How often the node reports its session count for session_count_in_cluster(); the report
  // lives 3 intervals. Zero: never (the node is then missing from that count).
  std::chrono::steady_clock::duration presence_interval = std::chrono::seconds(2);
};

// What the cluster side of a node has seen (its Redis link: redis_stats()).
struct cluster_stats {
  std::uint64_t from_redis = 0;   // messages from other publishers, delivered to local sessions
  std::uint64_t own_echoes = 0;   // this node's own publications coming back, skipped
  std::uint64_t oversize = 0;     // messages from Redis over max_message_size, dropped
  std::uint64_t unrouted = 0;     // messages on a channel that is not ours (should not happen)
  std::uint64_t invalid_text = 0; // text messages from Redis that are not UTF-8, dropped
  // History (registry_options::history), this node's side of it:
  std::uint64_t history_reads = 0;          // FCALL herald_read_1 sent: logins, gaps, reconnections
  std::uint64_t history_recovered = 0;      // logins that resumed with everything they missed
  std::uint64_t history_not_recovered = 0;  // logins told "not recovered" (Redis unanswered included)
  std::uint64_t history_replayed = 0;       // messages replayed (logins and gaps)
  std::uint64_t history_gaps = 0;           // live sessions that had to catch up (a gap, another epoch)
  std::uint64_t history_lost = 0;           // live sessions told their position was lost
  std::uint64_t history_unanswered = 0;     // reads that got no answer (the link dropped) or an error reply
};

// The answer of unicast_confirmed() / send_to_group_confirmed() / broadcast_confirmed().
struct cluster_delivery {
  std::size_t local = 0;               // sessions of this node it was queued to (with history: addressed to)
  std::optional<long long> nodes;      // other nodes that received it from Redis; nullopt: not published
  std::optional<stream_position> position;  // with history: where it is in the uid's history
};

// The answer of online_in_cluster().
struct cluster_presence {
  bool online = false;
  bool cluster_wide = false;  // false: Redis did not answer, this is the local view
};

// The answer of uid_count_in_cluster(), session_count_in_cluster(), node_count_in_cluster().
struct cluster_count {
  std::size_t count = 0;
  bool cluster_wide = false;  // false: Redis did not answer, this is the local count
};

// The answer of uids_in_cluster(): every uid online on some node, in no particular order.
struct cluster_uids {
  std::vector<std::string> uids;
  bool cluster_wide = false;  // false: Redis did not answer, these are this node's uids
};

namespace detail {
// The registry's state: the local index (one_thread_state) and the node's Redis side.
template <class Session>
struct redis_cluster_state : one_thread_state<Session, redis_cluster_state<Session>> {
  using base = one_thread_state<Session, redis_cluster_state<Session>>;
  using index = local_index<Session>;
  using node = typename base::node;
  using clock = std::chrono::steady_clock;
  using index::all;
  using index::groups;
  using index::uids;
  using index::deliver_to_all;
  using index::deliver_to_group;
  using index::deliver_to_uid;

  redis_cluster_state(registry_options o, redis_cluster_options c) : base(std::move(o)), cluster(std::move(c)) {
    node_id = cluster.node_id;
    if (!redis::valid_node_id(node_id)) {
      std::random_device rd;
      const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
      static const char hex[] = "0123456789abcdef";
      node_id.clear();
      for (int i = 15; i >= 0; --i) node_id += hex[(r >> (4 * i)) & 0xF];
    }
    all_channel = cluster.prefix + ":all";
    uid_prefix = cluster.prefix + ":uid:";
    group_prefix = cluster.prefix + ":group:";
    nodes_key = cluster.prefix + ":nodes";
    node_key_prefix = cluster.prefix + ":node:";
    node_key = node_key_prefix + node_id;
  }

  std::size_t unicast(std::string_view uid, const message& m) {
    if (history_on()) {  // through Redis, to this node's sessions too
      if (!valid_uid(uid, this->options)) return 0;
      push_recorded(uid, m);
      return this->sessions_of(uid);
    }
    const std::size_t queued = deliver_to_uid(uid, m);
    publish(uid_prefix, uid, m);
    return queued;
  }
  std::size_t broadcast(const message& m) {
    const std::size_t queued = deliver_to_all(history_frame(this->options.history, 0, m));
    bus->publish(all_channel, envelope_of(m));
    return queued;
  }
  std::size_t send_to_group(std::string_view group, const message& m) {
    const std::size_t queued = groups.find(group) == groups.end() ? 0 : deliver_to_group(group, history_frame(this->options.history, 0, m));
    publish(group_prefix, group, m);
    return queued;
  }
  static void start(const std::shared_ptr<redis_cluster_state>& st, asio::any_io_executor ex) {
    st->owner.adopt(ex);
    // The handlers point at this state; stop() (from ~registry) unhooks them.
    redis_cluster_state* self = st.get();
    st->bus = std::make_shared<redis::pubsub>(ex, st->cluster.redis, [self](std::string_view channel, std::string_view payload) {
      self->on_redis(channel, payload);
    });
    st->bus->on_connect([self](redis::link which, bool again) {
      if (again) detail::count(self->options, metrics::redis_reconnects);
      if (which == redis::link::publisher) self->report_presence();  // at once, not at the next tick
      if (self->history_on()) self->history_link_up(which);
    });
    if (st->history_on()) {
      st->bus->on_subscribed([self](std::string_view channel) { self->on_subscribed(channel); });
      st->bus->setup_command({"FUNCTION", "LOAD", "REPLACE", std::string(redis::history_library)});
      const auto& h = st->options.history;
      st->history_limits[0] = std::to_string(h.max_messages);
      st->history_limits[1] = std::to_string(h.max_age.count());
      st->history_limits[2] = std::to_string(h.position_ttl.count());
    }
    st->bus->subscribe(st->all_channel);
    st->bus->start();
    if (st->cluster.presence_interval > clock::duration::zero()) {
      st->presence_timer.emplace(ex);
      asio::co_spawn(ex, keep_reporting(st), asio::detached);
    }
  }
  void stop() {
    if (stopped) return;
    stopped = true;
    if (presence_timer) presence_timer->cancel();
    if (bus) bus->stop();
  }

  // The channel of a uid or group: `kind` is uid_prefix or group_prefix.
  static std::string channel(const std::string& kind, std::string_view name) {
    std::string c;
    c.reserve(kind.size() + name.size());
    c += kind;
    c += name;
    return c;
  }

  // PUBSUB CHANNELS pattern of every uid channel: the prefix's glob characters escaped.
  std::string uid_pattern() const {
    std::string p;
    for (char c : uid_prefix) {
      if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') p += '\\';
      p += c;
    }
    p += '*';
    return p;
  }

  std::string envelope_of(const message& m) const {
    return redis::wrap(node_id, m.op() == ws::opcode::binary, m.payload());
  }

  void publish(const std::string& kind, std::string_view name, const message& m) {
    bus->publish(channel(kind, name), envelope_of(m));
  }

  // Publishes and returns how many *other* nodes received it (nullopt: not published).
  asio::awaitable<std::optional<long long>> publish_confirmed(const std::string& ch, const message& m) {
    auto keep = bus;
    const std::string payload = envelope_of(m);
    const bool self_subscribed = keep->subscribed(ch);
    std::optional<long long> receivers = co_await keep->publish_confirmed(ch, payload);
    if (receivers) *receivers = std::max(0LL, *receivers - (self_subscribed ? 1 : 0));
    co_return receivers;
  }

  // A channel is held while the node has a local member of it (a session of the uid, a
  // session in the group): hold() with the first, release() after the last.
  void hold(const std::string& kind, std::string_view name) { bus->subscribe(channel(kind, name)); }
  void release(const std::string& kind, std::string_view name) noexcept {
    try {
      bus->unsubscribe(channel(kind, name));
    } catch (...) {  // out of memory: the subscription stays; messages for it find no one
    }
  }

  // A message from Redis: skip our own, deliver the rest to the local sessions concerned.
  // (Recorded messages are not skipped: with history every session, this node's included,
  // gets a uid's messages from Redis, in the order Redis gave them their offsets.)
  void on_redis(std::string_view ch, std::string_view payload) {
    const redis::envelope e = redis::unwrap(payload);
    if (!e.origin.empty() && e.origin == node_id && e.offset == 0) {
      ++stats.own_echoes;
      return;
    }
    if (e.body.size() > cluster.max_message_size) {
      ++stats.oversize;
      return;
    }
    // The frame: empty if the text is not UTF-8; with history, formatted (offset 0 when not recorded).
    auto body = [this, &e] { return frame_of(e.offset, e.binary, e.body); };
    if (ch == all_channel) {
      ++stats.from_redis;
      if (!all.empty()) deliver(body(), [this](const message& m) { deliver_to_all(m); });
    } else if (const auto uid = name_in(ch, uid_prefix)) {
      ++stats.from_redis;
      if (uids.find(*uid) == uids.end()) return;
      if (!history_on()) {
        deliver(body(), [this, uid](const message& m) { deliver_to_uid(*uid, m); });
      } else if (auto f = feeds.find(*uid); f != feeds.end()) {
        deliver(body(), [&](const message& m) {
          for (auto& c : f->second) deliver_live(*c, e.epoch, e.offset, m);
        });
      }
    } else if (const auto group = name_in(ch, group_prefix)) {
      ++stats.from_redis;
      if (groups.find(*group) != groups.end()) deliver(body(), [this, group](const message& m) { deliver_to_group(*group, m); });
    } else {
      ++stats.unrouted;
    }
  }
  // Text from Redis that is not UTF-8 cannot go out as a text frame: counted, dropped.
  template <class To>
  void deliver(const message& m, To to) {
    if (m) to(m);
    else ++stats.invalid_text;
  }
  static std::optional<std::string_view> name_in(std::string_view ch, const std::string& kind) {
    if (ch.size() <= kind.size() || ch.substr(0, kind.size()) != kind) return std::nullopt;
    return ch.substr(kind.size());
  }

  node* attach(std::shared_ptr<Session> session, std::string uid) {
    auto [n, first_of_uid] = index::attach(std::move(session), std::move(uid));
    if (history_on()) {  // its live messages wait until login has read the stream
      auto c = std::make_unique<cursor>();
      c->n = n;
      c->id = ++cursors_made;
      feeds[n->uid].push_back(std::move(c));
    }
    if (first_of_uid) {
      this->count(*n->session, metrics::uids);
      hold(uid_prefix, n->uid);
    }
    return n;
  }

  void detach(node* n) noexcept {
    if (!n->detached && history_on()) drop_cursor(n);
    const bool last_of_uid = index::detach(n, [this](std::string_view group) { release(group_prefix, group); });
    if (!last_of_uid) return;
    this->count(*n->session, metrics::uids, -1);
    release(uid_prefix, n->uid);
  }

  // ---- history (registry_options::history): the streams are in Redis ----
  //
  // Every local session of a uid has a cursor: the position of the last recorded message it
  // was given. A recorded message from Redis that follows it goes out at once; one it already
  // has is skipped; anything else (a gap: messages this node missed while its subscriber link
  // was down; another epoch: Redis lost the stream) makes it catch up: live messages wait in
  // `held` while herald_read_1 fetches what comes after the position (after the uid's
  // SUBSCRIBE is confirmed, so that nothing published after the read can be missed), then the
  // replay goes out, then the held messages above it. Login is the first catch-up, from the
  // client's position, with the welcome before the replay.

  bool history_on() const noexcept { return this->options.history.enabled(); }

  // A login waiting for its first catch-up.
  struct resume_wait {
    explicit resume_wait(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;  // cancelled when done
    bool done = false;
    resume_result result;
    std::string uid;
    std::uint64_t cursor_id = 0;
  };
  struct held_message {
    std::string epoch;
    std::uint64_t offset = 0;  // 0: not recorded
    message frame;
  };
  struct cursor {
    node* n = nullptr;
    std::uint64_t id = 0;
    std::string epoch;
    std::uint64_t offset = 0;
    bool catching_up = true;  // live messages wait in `held`
    bool read_sent = false;   // herald_read_1 is on its way (else it waits for the subscription or the publisher)
    bool overflowed = false;  // `held` overflowed: read again once this read is through
    std::uint64_t generation = 0;  // of the read on its way: answers to older ones are ignored
    std::vector<held_message> held;
    std::shared_ptr<resume_wait> login;  // the login of this session, until its welcome
    std::optional<stream_position> from;  // the position it asked for
  };

  // The frame of a message from Redis (or of a replayed entry): formatted once.
  message frame_of(std::uint64_t offset, bool binary, std::string_view body) const {
    const auto& h = this->options.history;
    if (h.enabled() && h.format) {
      if (!binary && !is_valid_utf8(body.data(), body.size())) return message{};
      return h.format(offset, body, binary);
    }
    return binary ? message::binary(body) : message::text(body);
  }

  // FCALL herald_push_1: offset, append and PUBLISH in one round trip. Counted as a publication.
  std::vector<std::string_view> push_args(std::string_view uid, const message& m) const {
    return {"FCALL", "herald_push_1", "0", cluster.prefix, uid, m.payload(), m.op() == ws::opcode::binary ? "b" : "t",
            node_id, history_limits[0], history_limits[1], history_limits[2]};
  }
  void push_recorded(std::string_view uid, const message& m) { bus->publish_command(push_args(uid, m)); }

  cursor* find_cursor(std::string_view uid, std::uint64_t id) {
    auto f = feeds.find(uid);
    if (f == feeds.end()) return nullptr;
    for (auto& c : f->second)
      if (c->id == id) return c.get();
    return nullptr;
  }

  void drop_cursor(node* n) noexcept {
    auto f = feeds.find(std::string_view(n->uid));
    if (f == feeds.end()) return;
    auto& list = f->second;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i]->n != n) continue;
      if (auto w = std::move(list[i]->login)) {  // its login returns at once (the session is gone)
        resume_result r;
        r.state = list[i]->from ? resume_state::not_recovered : resume_state::fresh;
        finish_login(*w, std::move(r));
      }
      list[i] = std::move(list.back());
      list.pop_back();
      break;
    }
    if (list.empty()) feeds.erase(f);
  }

  std::shared_ptr<resume_wait> begin_resume(node* n, std::optional<stream_position> from) {
    auto w = std::make_shared<resume_wait>(this->owner.executor());
    // Redis answers within request_timeout or is taken as down; the subscription comes first.
    w->timer.expires_after(2 * cluster.redis.request_timeout);
    w->uid = n->uid;
    cursor* c = nullptr;
    if (auto f = feeds.find(std::string_view(n->uid)); f != feeds.end())
      for (auto& x : f->second)
        if (x->n == n) c = x.get();
    if (!c) {
      w->done = true;
      return w;
    }
    w->cursor_id = c->id;
    c->login = w;
    c->from = std::move(from);
    start_catch_up(*c);
    return w;
  }

  // After the login's wait: its result, or, when Redis did not answer in time, the welcome
  // without a position (the session's first live message will then tell it where it is).
  resume_result end_resume(resume_wait& w) {
    if (!w.done) {
      if (cursor* c = find_cursor(w.uid, w.cursor_id); c && c->login.get() == &w) {
        go_on_without_position(*c);
      } else {
        w.done = true;
      }
    }
    return w.result;
  }

  void finish_login(resume_wait& w, resume_result r) {
    w.result = std::move(r);
    w.done = true;
    w.timer.cancel();
  }

  void welcome(cursor& c, resume_result r) {
    if (this->options.history.welcome) {
      if (message m = this->options.history.welcome(c.n->uid, r)) session_access::send_here(*c.n->session, m);
    }
    auto w = std::move(c.login);
    c.from.reset();
    if (w) finish_login(*w, std::move(r));
  }

  void start_catch_up(cursor& c) {
    c.catching_up = true;
    c.read_sent = false;
    ++c.generation;
    if (bus->confirmed(channel(uid_prefix, c.n->uid))) send_read(c);
  }

  void send_read(cursor& c) {
    const bool resume = c.login ? c.from.has_value() : true;
    const std::string& epoch = c.login ? (c.from ? c.from->epoch : c.epoch) : c.epoch;
    const std::string offset = std::to_string(c.login ? (c.from ? c.from->offset : 0) : c.offset);
    const std::vector<std::string_view> args{"FCALL", "herald_read_1", "0", cluster.prefix, c.n->uid, resume ? "resume" : "fresh",
                                             epoch, offset, history_limits[0], history_limits[1], history_limits[2]};
    c.read_sent = bus->command(args, [weak = this->weak_from_this(), uid = c.n->uid, id = c.id, gen = c.generation](redis::reply_ptr r) {
      if (auto st = weak.lock()) st->on_read(uid, id, gen, std::move(r));
    });
    if (c.read_sent) ++stats.history_reads;
  }

  // The answer of herald_read_1: {epoch, top, 0 fresh | 1 recovered, entries... | 2 not recovered}.
  void on_read(const std::string& uid, std::uint64_t id, std::uint64_t generation, redis::reply_ptr r) {
    cursor* c = find_cursor(uid, id);
    if (!c || c->generation != generation) return;
    c->read_sent = false;
    if (!r) {
      ++stats.history_unanswered;  // the link dropped: read again when it is back (history_link_up)
      return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[2]->type != REDIS_REPLY_INTEGER) {
      // An error (out of memory, the function missing...): asking again could wait for ever.
      ++stats.history_unanswered;
      go_on_without_position(*c);
      return;
    }
    stream_position top{std::string(redis::text_of(r->element[0])), static_cast<std::uint64_t>(r->element[1]->integer)};
    const long long state = r->element[2]->integer;
    const std::uint64_t after = c->login ? (c->from ? c->from->offset : top.offset) : c->offset;
    std::vector<message> replay;
    bool covered = state == 1;
    for (std::size_t i = 3; covered && i < r->elements; ++i) {
      const auto entry = redis::parse_history_entry(redis::text_of(r->element[i]));
      covered = entry && entry->offset == after + replay.size() + 1;
      if (covered) replay.push_back(frame_of(entry->offset, entry->binary, entry->body));
    }
    if (covered && after + replay.size() != top.offset) covered = false;  // not the whole of it
    if (!covered) replay.clear();
    if (c->login) {
      resume_result res;
      res.state = !c->from ? resume_state::fresh : covered ? resume_state::recovered : resume_state::not_recovered;
      res.position = top;
      res.replayed = replay.size();
      if (res.state == resume_state::recovered) ++stats.history_recovered;
      if (res.state == resume_state::not_recovered) ++stats.history_not_recovered;
      welcome(*c, std::move(res));
    } else if (!covered) {
      tell_lost(*c, top);
    }
    stats.history_replayed += replay.size();
    for (auto& m : replay)
      if (m) session_access::send_here(*c->n->session, m);
    c->epoch = std::move(top.epoch);
    c->offset = top.offset;
    c->catching_up = false;
    auto held = std::move(c->held);
    c->held.clear();
    if (std::exchange(c->overflowed, false)) {
      start_catch_up(*c);
      return;
    }
    for (auto& h : held) deliver_live(*c, h.epoch, h.offset, h.frame);
  }

  void tell_lost(cursor& c, const stream_position& top) {
    ++stats.history_lost;
    if (this->options.history.lost) {
      resume_result res;
      res.state = resume_state::not_recovered;
      res.position = top;
      if (message m = this->options.history.lost(c.n->uid, res)) session_access::send_here(*c.n->session, m);
    }
  }

  // Redis gave no position in time for a login, or answered a read with an error: the
  // session goes on without one instead of holding its live messages. A login is welcomed
  // (not recovered, when it asked for a position), a live session told it lost messages;
  // what was held is delivered, and the next recorded message's position becomes its own. A
  // late answer to the read is ignored.
  void go_on_without_position(cursor& c) {
    ++c.generation;
    c.catching_up = false;
    c.read_sent = false;
    c.overflowed = false;
    c.epoch.clear();  // no position: deliver_live adopts the next recorded message's
    c.offset = 0;
    if (c.login) {
      resume_result r;
      r.state = c.from ? resume_state::not_recovered : resume_state::fresh;
      if (c.from) ++stats.history_not_recovered;
      welcome(c, std::move(r));
    } else {
      tell_lost(c, stream_position{});
    }
    auto held = std::move(c.held);
    c.held.clear();
    for (auto& h : held) deliver_live(c, h.epoch, h.offset, h.frame);
  }

  // One live message from Redis for `c`'s uid (offset 0: not recorded).
  void deliver_live(cursor& c, std::string_view epoch, std::uint64_t offset, const message& frame) {
    if (c.catching_up) {
      if (c.held.size() >= this->options.history.max_messages) {
        c.overflowed = true;  // more than history holds arrived during one read: read again after it
        c.held.clear();
      }
      if (!c.overflowed) c.held.push_back({std::string(epoch), offset, frame});
      return;
    }
    if (offset == 0) {
      session_access::send_here(*c.n->session, frame);
      return;
    }
    if (c.epoch.empty()) {  // no position since Redis gave none (a read always names an epoch)
      session_access::send_here(*c.n->session, frame);
      c.epoch = std::string(epoch);
      c.offset = offset;
      return;
    }
    if (epoch == c.epoch) {
      if (offset <= c.offset) return;  // had it already (replayed)
      if (offset == c.offset + 1) {
        session_access::send_here(*c.n->session, frame);
        c.offset = offset;
        return;
      }
    }
    ++stats.history_gaps;  // missed messages, or another epoch: ask Redis, hold this one meanwhile
    start_catch_up(c);
    c.held.push_back({std::string(epoch), offset, frame});
  }

  // The uid's subscription is confirmed: the catch-ups waiting for it read now.
  void on_subscribed(std::string_view ch) {
    const auto uid = name_in(ch, uid_prefix);
    if (!uid) return;
    auto f = feeds.find(*uid);
    if (f == feeds.end()) return;
    for (auto& c : f->second)
      if (c->catching_up && !c->read_sent) send_read(*c);
  }

  // A link is back: after the subscriber was down every session may have missed messages
  // (each catches up once its SUBSCRIBE is confirmed again); after the publisher was down,
  // the reads it lost are sent again.
  void history_link_up(redis::link which) {
    for (auto& [uid, list] : feeds) {
      for (auto& c : list) {
        if (which == redis::link::subscriber) start_catch_up(*c);
        else if (c->catching_up && !c->read_sent && bus->confirmed(channel(uid_prefix, uid))) send_read(*c);
      }
    }
  }

  bool join(node* n, std::string_view group) {
    const bool first_member = groups.find(group) == groups.end();
    if (!index::join_group(n, group)) return false;
    if (first_member) hold(group_prefix, group);
    return true;
  }

  bool leave(node* n, std::string_view group) {
    if (!index::leave(n, group)) return false;
    if (groups.find(group) == groups.end()) release(group_prefix, group);
    return true;
  }

  // This node's session count, for session_count_in_cluster() on the other nodes.
  void report_presence() {
    if (stopped || cluster.presence_interval <= clock::duration::zero()) return;
    const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(3 * cluster.presence_interval).count();
    const std::string count = std::to_string(all.size());
    const std::string px = std::to_string(std::max<long long>(1, ttl));
    bus->command({"SET", node_key, count, "PX", px});
    bus->command({"SADD", nodes_key, node_id});
  }
  static asio::awaitable<void> keep_reporting(std::shared_ptr<redis_cluster_state> st) {
    while (!st->stopped) {
      st->report_presence();
      st->presence_timer->expires_after(st->cluster.presence_interval);
      error_code ec;
      co_await st->presence_timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  redis_cluster_options cluster;
  std::string node_id;
  std::string all_channel;
  std::string uid_prefix;
  std::string group_prefix;
  std::string nodes_key;        // the set of node ids that report presence
  std::string node_key_prefix;  // <prefix>:node:<node-id>: a node's session count
  std::string node_key;
  std::shared_ptr<redis::pubsub> bus;
  std::optional<asio::steady_timer> presence_timer;
  herald::cluster_stats stats;
  bool stopped = false;
  // History: the cursors of the local sessions by uid, and the limits as FCALL arguments.
  std::unordered_map<std::string, std::vector<std::unique_ptr<cursor>>, transparent_hash, std::equal_to<>> feeds;
  std::uint64_t cursors_made = 0;
  std::string history_limits[3];
};
}  // namespace detail


template <class Session>
class registry<Session, redis_cluster>
    : public detail::one_thread_registry<Session, redis_cluster, detail::redis_cluster_state<Session>> {
  using base = detail::one_thread_registry<Session, redis_cluster, detail::redis_cluster_state<Session>>;
  using state = detail::redis_cluster_state<Session>;
  using base::state_;

 public:
  // login, unicast, broadcast, send_to_group, close_all, close_uid, join, leave and the local
  // presence queries are one_thread_registry's (policy/one_thread.hpp): from any thread, with
  // this node's sessions; the sends also publish to Redis.

  // `ex`: the executor (thread) of the sessions and of the Redis connections, which start at once.
  registry(asio::any_io_executor ex, redis_cluster_options cluster, registry_options options = {})
      : base(std::make_shared<state>(std::move(options), std::move(cluster))) {
    state::start(state_, std::move(ex));
  }
  ~registry() { stop(); }

  // Closes the Redis connections (local delivery goes on). The destructor does it too.
  void stop() {
    auto& owner = state_->owner;
    if (owner.here() || owner.stopped()) return state_->stop();
    if (owner.run_before_start([this] { state_->stop(); })) return;
    owner.post([st = state_] { st->stop(); });
  }

  // The *_confirmed and *_in_cluster calls may be awaited on any executor: they run on the
  // registry's and resume the caller on its own.

  // unicast(), then waits (up to redis.request_timeout) for Redis to say how many other
  // nodes took the message. `uid` must outlive the wait.
  asio::awaitable<cluster_delivery> unicast_confirmed(const std::string& uid, const message& m) {
    auto st = state_;
    cluster_delivery out;
    if (!st->owner.here()) {
      out = co_await asio::co_spawn(st->owner.executor(), unicast_confirmed(uid, m), asio::use_awaitable);
      co_return out;
    }
    if (!m) co_return out;
    if (st->history_on()) {  // FCALL herald_push_1: {epoch, offset, receivers}
      if (!detail::valid_uid(uid, st->options)) co_return out;
      out.local = st->sessions_of(uid);
      const bool self_subscribed = st->bus->subscribed(st->channel(st->uid_prefix, uid));
      const std::vector<std::string_view> args = st->push_args(uid, m);
      const redis::reply_ptr r = co_await st->bus->request(args, true);
      if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[1]->type == REDIS_REPLY_INTEGER &&
          r->element[2]->type == REDIS_REPLY_INTEGER) {
        out.position = stream_position{std::string(redis::text_of(r->element[0])), static_cast<std::uint64_t>(r->element[1]->integer)};
        out.nodes = std::max(0LL, r->element[2]->integer - (self_subscribed ? 1 : 0));
      }
      co_return out;
    }
    out.local = st->deliver_to_uid(uid, m);
    const std::string channel = st->channel(st->uid_prefix, uid);
    out.nodes = co_await st->publish_confirmed(channel, m);
    co_return out;
  }
  asio::awaitable<cluster_delivery> broadcast_confirmed(const message& m) {
    auto st = state_;
    cluster_delivery out;
    if (!st->owner.here()) {
      out = co_await asio::co_spawn(st->owner.executor(), broadcast_confirmed(m), asio::use_awaitable);
      co_return out;
    }
    if (!m) co_return out;
    out.local = st->deliver_to_all(detail::history_frame(st->options.history, 0, m));
    out.nodes = co_await st->publish_confirmed(st->all_channel, m);
    co_return out;
  }

  // send_to_group(), then waits for Redis to say how many other nodes (with members) took
  // it. `group` must outlive the wait.
  asio::awaitable<cluster_delivery> send_to_group_confirmed(const std::string& group, const message& m) {
    auto st = state_;
    cluster_delivery out;
    if (!st->owner.here()) {
      out = co_await asio::co_spawn(st->owner.executor(), send_to_group_confirmed(group, m), asio::use_awaitable);
      co_return out;
    }
    if (!m) co_return out;
    if (st->groups.find(group) != st->groups.end()) out.local = st->deliver_to_group(group, detail::history_frame(st->options.history, 0, m));
    const std::string channel = st->channel(st->group_prefix, group);
    out.nodes = co_await st->publish_confirmed(channel, m);
    co_return out;
  }

  // ---- presence: the cluster's view, from Redis (costs and consistency: see the top) ----

  // Is `uid` logged in on any node? Local sessions answer at once; otherwise PUBSUB NUMSUB of
  // the uid's channel. `uid` must outlive the wait.
  asio::awaitable<cluster_presence> online_in_cluster(const std::string& uid) {
    auto st = state_;
    if (!st->owner.here()) {
      const cluster_presence there = co_await asio::co_spawn(st->owner.executor(), online_in_cluster(uid), asio::use_awaitable);
      co_return there;
    }
    cluster_presence out;
    if (st->uids.find(std::string_view(uid)) != st->uids.end()) {
      out.online = true;
      out.cluster_wide = true;
      co_return out;
    }
    const std::string channel = st->channel(st->uid_prefix, uid);
    const std::optional<long long> subscribers = co_await st->bus->numsub(channel);
    if (subscribers) {
      out.online = *subscribers > 0;
      out.cluster_wide = true;
    }
    co_return out;
  }

  // Every uid online on some node (PUBSUB CHANNELS: O(all channels on Redis)).
  asio::awaitable<cluster_uids> uids_in_cluster() {
    auto st = state_;
    if (!st->owner.here()) {
      cluster_uids there = co_await asio::co_spawn(st->owner.executor(), uids_in_cluster(), asio::use_awaitable);
      co_return there;
    }
    const std::string pattern = st->uid_pattern();
    const std::vector<std::string_view> args{"PUBSUB", "CHANNELS", pattern};
    const redis::reply_ptr r = co_await st->bus->request(args);
    cluster_uids out;
    if (r && r->type == REDIS_REPLY_ARRAY) {
      out.cluster_wide = true;
      out.uids.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) {
        const std::string_view ch = redis::text_of(r->element[i]);
        if (ch.size() > st->uid_prefix.size()) out.uids.emplace_back(ch.substr(st->uid_prefix.size()));
      }
    } else {
      for (const auto& [uid, list] : st->uids) out.uids.push_back(uid);
    }
    co_return out;
  }

  // How many uids are online on some node (each once): the size of uids_in_cluster().
  asio::awaitable<cluster_count> uid_count_in_cluster() {
    const cluster_uids all = co_await uids_in_cluster();
    cluster_count out;
    out.count = all.uids.size();
    out.cluster_wide = all.cluster_wide;
    co_return out;
  }

  // How many sessions the nodes hold: this node's current count plus the last report of
  // every other live node (O(nodes); up to presence_interval old).
  asio::awaitable<cluster_count> session_count_in_cluster() {
    auto st = state_;
    cluster_count out;
    if (!st->owner.here()) {
      out = co_await asio::co_spawn(st->owner.executor(), session_count_in_cluster(), asio::use_awaitable);
      co_return out;
    }
    out.count = st->all.size();
    const std::vector<std::string_view> members_of{"SMEMBERS", st->nodes_key};
    const redis::reply_ptr ids = co_await st->bus->request(members_of);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) co_return out;
    std::vector<std::string> keys;  // the other nodes' report keys
    std::vector<std::string_view> other_ids;
    for (std::size_t i = 0; i < ids->elements; ++i) {
      const std::string_view id = redis::text_of(ids->element[i]);
      if (id.empty() || id == st->node_id) continue;
      other_ids.push_back(id);
      keys.push_back(st->node_key_prefix + std::string(id));
    }
    if (keys.empty()) {
      out.cluster_wide = true;
      co_return out;
    }
    std::vector<std::string_view> mget{"MGET"};
    mget.insert(mget.end(), keys.begin(), keys.end());
    const redis::reply_ptr counts = co_await st->bus->request(mget);
    if (!counts || counts->type != REDIS_REPLY_ARRAY || counts->elements != keys.size()) co_return out;
    std::vector<std::string_view> expired{"SREM", st->nodes_key};
    std::size_t sum = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string_view v = redis::text_of(counts->element[i]);
      if (counts->element[i]->type != REDIS_REPLY_STRING) {
        expired.push_back(other_ids[i]);  // its report expired: the node stopped or died
        continue;
      }
      std::size_t n = 0;
      std::from_chars(v.data(), v.data() + v.size(), n);  // not a number (someone else's key): 0
      sum += n;
    }
    if (expired.size() > 2) st->bus->command(expired);
    out.count += sum;
    out.cluster_wide = true;
    co_return out;
  }

  // How many nodes are connected to Redis now (PUBSUB NUMSUB of the broadcast channel).
  asio::awaitable<cluster_count> node_count_in_cluster() {
    auto st = state_;
    cluster_count out;
    if (!st->owner.here()) {
      out = co_await asio::co_spawn(st->owner.executor(), node_count_in_cluster(), asio::use_awaitable);
      co_return out;
    }
    out.count = 1;
    const std::optional<long long> subscribers = co_await st->bus->numsub(st->all_channel);
    if (subscribers) {
      out.count = static_cast<std::size_t>(std::max(0LL, *subscribers));
      out.cluster_wide = true;
    }
    co_return out;
  }

  const std::string& node_id() const noexcept { return state_->node_id; }
  const std::string& prefix() const noexcept { return state_->cluster.prefix; }
  std::string uid_channel(std::string_view uid) const { return state_->channel(state_->uid_prefix, uid); }
  std::string group_channel(std::string_view group) const { return state_->channel(state_->group_prefix, group); }
  const std::string& broadcast_channel() const noexcept { return state_->all_channel; }
  const herald::cluster_stats& cluster_stats() const noexcept { return state_->stats; }
  const redis::stats& redis_stats() const noexcept { return state_->bus->stats(); }

 private:
  friend class binding<Session, redis_cluster>;
};

}  // namespace herald

#endif  // HERALD_POLICY_REDIS_CLUSTER_HPP
