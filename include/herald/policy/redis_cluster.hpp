// registry<Session, redis_cluster>: several herald nodes (processes, machines) behind one
// Redis, so that a message reaches a uid wherever it is logged in.
//
//   #include <herald.hpp>
//   #include <herald/policy/redis_cluster.hpp>      // link hiredis (Debian: libhiredis-dev)
//   herald::redis_cluster_options rc;  rc.redis.host = "127.0.0.1";  rc.redis.port = 6379;
//   herald::registry<session, herald::redis_cluster> users(io.get_executor(), rc);
//
// The API is single_thread's (login, unicast, broadcast, close_all, online, sessions_of,
// uid_count, session_count, options): application code does not change. Like single_thread,
// one io_context thread owns the registry, its sessions and its Redis connections; run one
// node per core and let Redis join them.
//
// Routing (channel names start with the configurable prefix, "herald" by default):
//   <prefix>:uid:<uid>   a node SUBSCRIBEs when the first local session of <uid> logs in and
//                        UNSUBSCRIBEs when the last one leaves: a unicast travels only to the
//                        nodes that hold the uid;
//   <prefix>:all         every node subscribes: broadcasts.
// unicast()/broadcast() deliver to this node's sessions at once and PUBLISH the message in an
// envelope that names this node (redis/envelope.hpp); the node skips its own envelopes when
// Redis brings them back, so every session gets a message exactly once. A payload without an
// envelope (`PUBLISH herald:uid:alice hi` from redis-cli, PHP, anything) is delivered as is.
//
// What counts is local: unicast() and broadcast() return how many sessions *of this node* the
// message was queued to; online(), sessions_of(), uid_count(), session_count() and close_all()
// concern this node. The cluster-wide view is asynchronous: online_in_cluster(uid) (PUBSUB
// NUMSUB of the uid's channel), unicast_confirmed()/broadcast_confirmed() (how many other nodes
// took the message). registry_options::duplicates applies per node.
//
// Delivery guarantee: exactly once to this node's sessions (while they are connected, as with
// single_thread); across nodes at most once. Redis pub/sub keeps nothing: a message published
// while Redis (or the link to it) is down, or before another node's SUBSCRIBE for a freshly
// logged-in uid has reached Redis, is lost for the other nodes and counted on the publishing
// side (redis_stats().publish_dropped / publish_unconfirmed). Local delivery never depends on
// Redis. Messages from one node arrive at another in the order they were published.
#pragma once
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
  std::string prefix = "herald";     // channels: <prefix>:uid:<uid> and <prefix>:all
  std::string node_id;               // [A-Za-z0-9_.-]{1,64}; empty: 16 random hex digits
  std::size_t max_message_size = 1024 * 1024;  // larger messages from Redis are dropped, counted
};

// What the cluster side of a node has seen (its Redis link: redis_stats()).
struct cluster_stats {
  std::uint64_t from_redis = 0;   // messages from other publishers, delivered to local sessions
  std::uint64_t own_echoes = 0;   // this node's own publications coming back, skipped
  std::uint64_t oversize = 0;     // messages from Redis over max_message_size, dropped
  std::uint64_t unrouted = 0;     // messages on a channel that is not ours (should not happen)
};

// The answer of unicast_confirmed() / broadcast_confirmed().
struct cluster_delivery {
  std::size_t local = 0;               // sessions of this node it was queued to
  std::optional<long long> nodes;      // other nodes that received it from Redis; nullopt: not published
};

// The answer of online_in_cluster().
struct cluster_presence {
  bool online = false;
  bool cluster_wide = false;  // false: Redis did not answer, this is the local view
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
    state_->start(std::move(ex));
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
    if (judged.ended) co_return binding_type(s.status());
    std::string refusal;
    if (!judged.verdict.uid) refusal = std::move(judged.verdict.reason);
    else if (st->options.duplicates == duplicate_login::reject && online(*judged.verdict.uid)) refusal = "uid already logged in";
    if (!refusal.empty()) {
      // Inline, not a helper coroutine: g++ 12 miscompiles awaiting one here.
      s.close(ws::close_code::policy_violation, std::move(refusal));
      while (co_await s.read()) {
      }
      co_return binding_type(s.status());
    }
    if (!s.is_open()) co_return binding_type(s.status());
    if (st->options.duplicates == duplicate_login::replace) detail::replace_older(*st, *judged.verdict.uid);
    auto* n = st->attach(std::move(session), std::move(*judged.verdict.uid));
    s.expect_idle();
    co_return binding_type(st, n);
  }

  // Sends to every session of `uid` on every node. Returns how many sessions of this node it
  // was queued to; the other nodes that hold the uid get it through Redis.
  std::size_t unicast(std::string_view uid, const message& m) {
    const std::size_t queued = state_->deliver_to_uid(uid, m);
    state_->publish_to_uid(uid, m);
    return queued;
  }
  std::size_t unicast(std::string_view uid, std::string_view text) { return unicast(uid, message::text(text)); }

  // Sends to every logged-in session of every node; returns how many of this node's.
  std::size_t broadcast(const message& m) {
    const std::size_t queued = state_->deliver_to_all(m);
    state_->publish(state_->all_channel, m);
    return queued;
  }
  std::size_t broadcast(std::string_view text) { return broadcast(message::text(text)); }

  // unicast(), then waits (up to redis.request_timeout) for Redis to say how many other
  // nodes took the message. `uid` must outlive the wait.
  asio::awaitable<cluster_delivery> unicast_confirmed(const std::string& uid, const message& m) {
    auto st = state_;
    cluster_delivery out;
    out.local = st->deliver_to_uid(uid, m);
    const std::string channel = st->uid_channel(uid);
    const std::string payload = st->envelope_of(m);
    const std::optional<long long> receivers = co_await st->bus->publish_confirmed(channel, payload);
    if (receivers) out.nodes = std::max(0LL, *receivers - (st->bus->subscribed(channel) ? 1 : 0));
    co_return out;
  }
  asio::awaitable<cluster_delivery> broadcast_confirmed(const message& m) {
    auto st = state_;
    cluster_delivery out;
    out.local = st->deliver_to_all(m);
    const std::string payload = st->envelope_of(m);
    const std::optional<long long> receivers = co_await st->bus->publish_confirmed(st->all_channel, payload);
    if (receivers) out.nodes = std::max(0LL, *receivers - 1);
    co_return out;
  }

  // Starts the closing handshake of every session of this node.
  std::size_t close_all(std::uint16_t code = ws::close_code::going_away, std::string_view reason = "server shutting down") {
    for (auto& e : state_->all) e.session->close(code, std::string(reason));
    return session_count();
  }

  // This node's view.
  bool online(std::string_view uid) const { return state_->uids.find(uid) != state_->uids.end(); }
  std::size_t sessions_of(std::string_view uid) const {
    auto it = state_->uids.find(uid);
    return it == state_->uids.end() ? 0 : it->second.size();
  }
  std::size_t uid_count() const noexcept { return state_->uids.size(); }
  std::size_t session_count() const noexcept { return state_->all.size(); }
  const registry_options& options() const noexcept { return state_->options; }

  // Is `uid` logged in on any node? Local sessions answer at once; otherwise PUBSUB NUMSUB of
  // the uid's channel (a node subscribes while it holds the uid). When Redis does not answer,
  // the local view, marked as such. `uid` must outlive the wait.
  asio::awaitable<cluster_presence> online_in_cluster(const std::string& uid) {
    auto st = state_;
    cluster_presence out;
    if (st->uids.find(std::string_view(uid)) != st->uids.end()) {
      out.online = true;
      out.cluster_wide = true;
      co_return out;
    }
    const std::string channel = st->uid_channel(uid);
    const std::optional<long long> subscribers = co_await st->bus->numsub(channel);
    if (subscribers) {
      out.online = *subscribers > 0;
      out.cluster_wide = true;
    }
    co_return out;
  }

  const std::string& node_id() const noexcept { return state_->node_id; }
  const std::string& prefix() const noexcept { return state_->cluster.prefix; }
  std::string uid_channel(std::string_view uid) const { return state_->uid_channel(uid); }
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
    using base::uids;
    using base::deliver_to_all;
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
    }

    void start(asio::any_io_executor ex) {
      // The handler points at this state; stop() (from ~registry) unhooks it.
      bus = std::make_shared<redis::pubsub>(std::move(ex), cluster.redis,
                                            [this](std::string_view channel, std::string_view payload) { on_redis(channel, payload); });
      bus->subscribe(all_channel);
      bus->start();
    }
    void stop() {
      if (bus) bus->stop();
    }

    std::string uid_channel(std::string_view uid) const {
      std::string c;
      c.reserve(uid_prefix.size() + uid.size());
      c += uid_prefix;
      c += uid;
      return c;
    }

    std::string envelope_of(const message& m) const {
      return redis::wrap(node_id, m.op() == ws::opcode::binary, m.payload());
    }

    void publish(const std::string& channel, const message& m) { bus->publish(channel, envelope_of(m)); }
    void publish_to_uid(std::string_view uid, const message& m) { bus->publish(uid_channel(uid), envelope_of(m)); }


    // A message from Redis: skip our own, deliver the rest to the local sessions concerned.
    void on_redis(std::string_view channel, std::string_view payload) {
      const redis::envelope e = redis::unwrap(payload);
      if (!e.origin.empty() && e.origin == node_id) {
        ++stats.own_echoes;
        return;
      }
      if (e.body.size() > cluster.max_message_size) {
        ++stats.oversize;
        return;
      }
      if (channel == all_channel) {
        ++stats.from_redis;
        if (!all.empty()) deliver_to_all(e.binary ? message::binary(e.body) : message::text(e.body));
      } else if (channel.size() > uid_prefix.size() && channel.substr(0, uid_prefix.size()) == uid_prefix) {
        ++stats.from_redis;
        const std::string_view uid = channel.substr(uid_prefix.size());
        if (uids.find(uid) != uids.end()) deliver_to_uid(uid, e.binary ? message::binary(e.body) : message::text(e.body));
      } else {
        ++stats.unrouted;
      }
    }

    node* attach(std::shared_ptr<Session> session, std::string uid) {
      auto [n, first_of_uid] = base::attach(std::move(session), std::move(uid));
      if (first_of_uid) bus->subscribe(uid_channel(n->uid));  // the first local session of this uid
      return n;
    }

    void detach(node* n) noexcept {
      if (!base::detach(n)) return;
      try {
        bus->unsubscribe(uid_channel(n->uid));  // the last local session of this uid left
      } catch (...) {  // out of memory: the subscription stays; messages for it find no one
      }
    }

    void unbind(node* n) noexcept {
      detach(n);
      delete n;
    }

    registry_options options;
    redis_cluster_options cluster;
    std::string node_id;
    std::string all_channel;
    std::string uid_prefix;
    std::shared_ptr<redis::pubsub> bus;
    herald::cluster_stats stats;
  };

  std::shared_ptr<state> state_;
};

}  // namespace herald
