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
// unicast()/send_to_group()/broadcast() deliver to this node's sessions at once and PUBLISH
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
// never depends on Redis. Messages from one node arrive at another in the order they were
// published. Each reconnection of either Redis link counts in metrics::redis_reconnects
// (registry_options::metrics), as logins and uids do.
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

#include "../registry.hpp"
#include "local_index.hpp"
#include "../redis/envelope.hpp"
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
};

// The answer of unicast_confirmed() / send_to_group_confirmed() / broadcast_confirmed().
struct cluster_delivery {
  std::size_t local = 0;               // sessions of this node it was queued to
  std::optional<long long> nodes;      // other nodes that received it from Redis; nullopt: not published
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

template <class Session>
class registry<Session, redis_cluster> {
 public:
  using session_type = Session;
  using binding_type = binding<Session, redis_cluster>;
  using clock = std::chrono::steady_clock;

  // `ex`: the executor (thread) of the sessions and of the Redis connections, which start at once.
  registry(asio::any_io_executor ex, redis_cluster_options cluster, registry_options options = {})
      : state_(std::make_shared<state>(options, std::move(cluster))) {
    state::start(state_, std::move(ex));
  }
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;
  ~registry() { stop(); }

  // Closes the Redis connections (local delivery goes on). The destructor does it too.
  void stop() { state_->stop(); }

  // As registry<Session, single_thread>::login.
  template <class Authenticate>
  asio::awaitable<binding_type> login(Session& s, Authenticate authenticate, clock::duration deadline = std::chrono::seconds(10)) {
    auto session = s.shared_from_this();
    auto st = state_;
    auto judged = co_await detail::judge_first_message(s, authenticate, deadline, st->options);
    if (judged.ended) {
      detail::count(st->options, metrics::logins_refused);
      co_return binding_type(s.status());
    }
    std::string refusal;
    if (!judged.verdict.uid) refusal = std::move(judged.verdict.reason);
    else if (st->options.duplicates == duplicate_login::reject && online(*judged.verdict.uid)) refusal = "uid already logged in";
    if (!refusal.empty()) {
      // Inline, not a helper coroutine: g++ 12 miscompiles awaiting one here.
      detail::count(st->options, metrics::logins_refused);
      s.close(ws::close_code::policy_violation, std::move(refusal));
      while (co_await s.read()) {
      }
      co_return binding_type(s.status());
    }
    if (!s.is_open()) co_return binding_type(s.status());
    detail::count(st->options, metrics::logins_ok);
    if (st->options.duplicates == duplicate_login::replace) detail::replace_older(*st, *judged.verdict.uid);
    auto* n = st->attach(std::move(session), std::move(*judged.verdict.uid));
    s.expect_idle();
    co_return binding_type(st, n);
  }

  // Sends to every session of `uid` on every node. Returns how many sessions of this node it
  // was queued to; the other nodes that hold the uid get it through Redis.
  std::size_t unicast(std::string_view uid, const message& m) {
    const std::size_t queued = state_->deliver_to_uid(uid, m);
    state_->publish(state_->uid_prefix, uid, m);
    return queued;
  }
  std::size_t unicast(std::string_view uid, std::string_view text) { return unicast(uid, message::text(text)); }

  // Sends to every logged-in session of every node; returns how many of this node's.
  std::size_t broadcast(const message& m) {
    const std::size_t queued = state_->deliver_to_all(m);
    state_->bus->publish(state_->all_channel, state_->envelope_of(m));
    return queued;
  }
  std::size_t broadcast(std::string_view text) { return broadcast(message::text(text)); }

  // unicast(), then waits (up to redis.request_timeout) for Redis to say how many other
  // nodes took the message. `uid` must outlive the wait.
  asio::awaitable<cluster_delivery> unicast_confirmed(const std::string& uid, const message& m) {
    auto st = state_;
    cluster_delivery out;
    out.local = st->deliver_to_uid(uid, m);
    const std::string channel = st->channel(st->uid_prefix, uid);
    out.nodes = co_await st->publish_confirmed(channel, m);
    co_return out;
  }
  asio::awaitable<cluster_delivery> broadcast_confirmed(const message& m) {
    auto st = state_;
    cluster_delivery out;
    out.local = st->deliver_to_all(m);
    out.nodes = co_await st->publish_confirmed(st->all_channel, m);
    co_return out;
  }

  // Starts the closing handshake of every session of this node.
  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    return state_->close_all(code, reason);
  }

  // ---- groups: a group spans the nodes; a session leaves its groups when its binding dies ----

  // Adds the bound session to `group` (1 to max_group_size bytes, like a uid); false if it
  // was already a member, the binding is empty or the name invalid. The node subscribes to
  // the group's channel with its first member.
  bool join(binding_type& b, std::string_view group) {
    if (!b || b.node_->detached || !detail::valid_name(group, state_->options.max_group_size)) return false;
    return state_->join(b.node_, group);
  }

  // Removes the bound session from `group`; false if it was not a member. The node
  // unsubscribes from the group's channel when its last member leaves.
  bool leave(binding_type& b, std::string_view group) { return b && state_->leave(b.node_, group); }

  // Sends to every session in `group` on every node. Returns how many sessions of this node
  // it was queued to; the other nodes with members get it through Redis.
  std::size_t send_to_group(std::string_view group, const message& m) {
    const std::size_t queued = state_->deliver_to_group(group, m);
    state_->publish(state_->group_prefix, group, m);
    return queued;
  }
  std::size_t send_to_group(std::string_view group, std::string_view text) { return send_to_group(group, message::text(text)); }

  // send_to_group(), then waits for Redis to say how many other nodes (with members) took
  // it. `group` must outlive the wait.
  asio::awaitable<cluster_delivery> send_to_group_confirmed(const std::string& group, const message& m) {
    auto st = state_;
    cluster_delivery out;
    out.local = st->deliver_to_group(group, m);
    const std::string channel = st->channel(st->group_prefix, group);
    out.nodes = co_await st->publish_confirmed(channel, m);
    co_return out;
  }

  // This node's members.
  std::size_t group_size(std::string_view group) const { return state_->group_size(group); }
  bool is_member(const binding_type& b, std::string_view group) const { return b && state_->is_member(b.node_, group); }
  // Groups with a member on this node (= group channels it holds).
  std::size_t group_count() const noexcept { return state_->groups.size(); }

  // ---- presence: this node's view ----

  template <class F>
  void for_each_uid(F&& f) const {
    state_->for_each_uid(std::forward<F>(f));
  }
  std::vector<std::string> uids() const { return state_->uid_list(); }
  bool online(std::string_view uid) const { return state_->uids.find(uid) != state_->uids.end(); }
  std::size_t sessions_of(std::string_view uid) const { return state_->sessions_of(uid); }
  std::size_t uid_count() const noexcept { return state_->uids.size(); }
  std::size_t session_count() const noexcept { return state_->all.size(); }
  const registry_options& options() const noexcept { return state_->options; }

  // ---- presence: the cluster's view, from Redis (costs and consistency: see the top) ----

  // Is `uid` logged in on any node? Local sessions answer at once; otherwise PUBSUB NUMSUB of
  // the uid's channel. `uid` must outlive the wait.
  asio::awaitable<cluster_presence> online_in_cluster(const std::string& uid) {
    auto st = state_;
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

  // Everything bindings need to unbind; shared with them (see single_thread).
  struct state : detail::local_index<Session> {
    using base = detail::local_index<Session>;
    using node = typename base::node;
    using base::all;
    using base::groups;
    using base::uids;
    using base::deliver_to_all;
    using base::deliver_to_group;
    using base::deliver_to_uid;

    state(registry_options o, redis_cluster_options c) : options(o), cluster(std::move(c)) {
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

    static void start(const std::shared_ptr<state>& st, asio::any_io_executor ex) {
      // The handlers point at this state; stop() (from ~registry) unhooks them.
      state* self = st.get();
      st->bus = std::make_shared<redis::pubsub>(ex, st->cluster.redis, [self](std::string_view channel, std::string_view payload) {
        self->on_redis(channel, payload);
      });
      st->bus->on_connect([self](redis::link which, bool again) {
        if (again) detail::count(self->options, metrics::redis_reconnects);
        if (which == redis::link::publisher) self->report_presence();  // at once, not at the next tick
      });
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
    void on_redis(std::string_view ch, std::string_view payload) {
      const redis::envelope e = redis::unwrap(payload);
      if (!e.origin.empty() && e.origin == node_id) {
        ++stats.own_echoes;
        return;
      }
      if (e.body.size() > cluster.max_message_size) {
        ++stats.oversize;
        return;
      }
      auto body = [&e] { return e.binary ? message::binary(e.body) : message::text(e.body); };
      if (ch == all_channel) {
        ++stats.from_redis;
        if (!all.empty()) deliver_to_all(body());
      } else if (const auto uid = name_in(ch, uid_prefix)) {
        ++stats.from_redis;
        if (uids.find(*uid) != uids.end()) deliver_to_uid(*uid, body());
      } else if (const auto group = name_in(ch, group_prefix)) {
        ++stats.from_redis;
        if (groups.find(*group) != groups.end()) deliver_to_group(*group, body());
      } else {
        ++stats.unrouted;
      }
    }
    static std::optional<std::string_view> name_in(std::string_view ch, const std::string& kind) {
      if (ch.size() <= kind.size() || ch.substr(0, kind.size()) != kind) return std::nullopt;
      return ch.substr(kind.size());
    }

    node* attach(std::shared_ptr<Session> session, std::string uid) {
      auto [n, first_of_uid] = base::attach(std::move(session), std::move(uid));
      if (first_of_uid) {
        detail::count(options, metrics::uids);
        hold(uid_prefix, n->uid);
      }
      return n;
    }

    void detach(node* n) noexcept {
      const bool last_of_uid = base::detach(n, [this](std::string_view group) { release(group_prefix, group); });
      if (!last_of_uid) return;
      detail::count(options, metrics::uids, -1);
      release(uid_prefix, n->uid);
    }

    bool join(node* n, std::string_view group) {
      const bool first_member = groups.find(group) == groups.end();
      if (!base::join_group(n, group)) return false;
      if (first_member) hold(group_prefix, group);
      return true;
    }

    bool leave(node* n, std::string_view group) {
      if (!base::leave(n, group)) return false;
      if (groups.find(group) == groups.end()) release(group_prefix, group);
      return true;
    }

    void unbind(node* n) noexcept {
      detach(n);
      delete n;
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
    static asio::awaitable<void> keep_reporting(std::shared_ptr<state> st) {
      while (!st->stopped) {
        st->report_presence();
        st->presence_timer->expires_after(st->cluster.presence_interval);
        error_code ec;
        co_await st->presence_timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }

    registry_options options;
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
  };

  std::shared_ptr<state> state_;
};

}  // namespace herald

#endif  // HERALD_POLICY_REDIS_CLUSTER_HPP
