// redis::pubsub: a node's two connections to Redis, kept up for as long as it runs.
//
//   - the subscriber connection SUBSCRIBEs to the channels the owner asks for and hands every
//     message to a callback;
//   - the publisher connection PUBLISHes (pipelined, never waiting for the answer unless asked)
//     and carries every other command (PUBSUB NUMSUB, PUBSUB CHANNELS, the presence reports).
//
// Redis going away is normal: each connection reconnects on its own, with exponential backoff
// and jitter; the subscriber then subscribes again to every channel it holds. While the
// publisher is down, publish() drops the message and counts it (at-most-once: nothing is
// queued for later). Nothing here blocks: everything runs on one executor (the owner's
// thread) and every call returns at once.
//
// Requires hiredis (see connection.hpp). Call from the executor's thread only.
#ifndef HERALD_REDIS_PUBSUB_HPP
#define HERALD_REDIS_PUBSUB_HPP
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../registry.hpp"  // detail::transparent_hash
#include "connection.hpp"

namespace herald::redis {


struct options {
  std::string host = "127.0.0.1";
  unsigned short port = 6379;
  std::string password;  // sent with AUTH when not empty
  std::chrono::steady_clock::duration connect_timeout = std::chrono::seconds(2);
  // Reconnect delays grow from backoff_min to backoff_max (doubling); each is drawn at random
  // from [delay/2, delay] so that many nodes do not reconnect in step.
  std::chrono::steady_clock::duration backoff_min = std::chrono::milliseconds(100);
  std::chrono::steady_clock::duration backoff_max = std::chrono::seconds(2);
  // A PING every keepalive; nothing heard for two of them closes the connection (and reconnects).
  std::chrono::steady_clock::duration keepalive = std::chrono::seconds(5);
  // How long request(), numsub() and publish_confirmed() wait for their answer.
  std::chrono::steady_clock::duration request_timeout = std::chrono::seconds(2);
  // Unwritten bytes the publisher may hold (Redis slower than the node); beyond: dropped, counted.
  std::size_t max_buffered = 16 * 1024 * 1024;
  // State changes (connected, lost, retrying), one line each, for the application's log.
  std::function<void(std::string_view)> log;
};

struct stats {
  std::uint64_t published = 0;            // PUBLISH answered by Redis
  std::uint64_t publish_dropped = 0;      // not sent: publisher down, or over max_buffered
  std::uint64_t publish_unconfirmed = 0;  // sent, but the connection was lost before Redis answered
  std::uint64_t publish_errors = 0;       // Redis answered with an error
  std::uint64_t received = 0;             // pub/sub messages received
  std::uint64_t connects = 0;             // successful connections (both kinds)
  std::uint64_t reconnects = 0;           // of those, the ones after a link's first
  std::uint64_t connect_failures = 0;
  std::uint64_t disconnects = 0;          // connections lost after being up
  std::size_t subscriptions = 0;          // channels subscribed, as last reported by Redis
  bool publisher_up = false;
  bool subscriber_up = false;
};

// The two connections of a pubsub.
enum class link : std::uint8_t { publisher, subscriber };

class pubsub : public std::enable_shared_from_this<pubsub> {
 public:
  using clock = std::chrono::steady_clock;
  // Called for every message on a subscribed channel; the views live for the call only.
  using handler = std::function<void(std::string_view channel, std::string_view payload)>;
  // Called each time a connection is up (connected, authenticated, resubscribed);
  // `again`: not the first time for that link, i.e. a reconnection.
  using connect_handler = std::function<void(link which, bool again)>;
  // Called when Redis has confirmed a SUBSCRIBE and no other for that channel is on its way:
  // from then on every PUBLISH on it reaches this node (until the link drops).
  using subscribed_handler = std::function<void(std::string_view channel)>;
  // The reply to a command (null: the publisher was lost before Redis answered).
  using reply_handler = std::function<void(reply_ptr)>;

  pubsub(asio::any_io_executor ex, options o, handler h)
      : ex_(std::move(ex)), opts_(std::move(o)), handler_(std::move(h)), pub_retry_(ex_), sub_retry_(ex_) {}
  pubsub(const pubsub&) = delete;
  pubsub& operator=(const pubsub&) = delete;

  // Set before start().
  void on_connect(connect_handler h) { on_connect_ = std::move(h); }
  void on_subscribed(subscribed_handler h) { on_subscribed_ = std::move(h); }
  // A command written first on every publisher connection (after AUTH), before anything
  // else may be sent on it (e.g. FUNCTION LOAD of the functions later commands call). An
  // error answer is logged. Set before start().
  void setup_command(std::vector<std::string> args) { setup_.push_back(std::move(args)); }

  // Starts both connections (they keep reconnecting until stop()).
  void start() {
    if (started_) return;
    started_ = true;
    asio::co_spawn(ex_, run_publisher(shared_from_this()), asio::detached);
    asio::co_spawn(ex_, run_subscriber(shared_from_this()), asio::detached);
  }

  // Closes both connections for good; the handler is not called any more.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    handler_ = nullptr;
    on_connect_ = nullptr;
    on_subscribed_ = nullptr;
    pub_retry_.cancel();
    sub_retry_.cancel();
    if (pub_) pub_->close("stopped");
    if (sub_) sub_->close("stopped");
  }

  // Subscribes now (or at the next connection) and after every reconnection.
  void subscribe(std::string_view channel) {
    if (stopped_) return;
    if (!channels_.emplace(channel).second) return;
    if (sub_ && sub_->is_open() && sub_->write_command({"SUBSCRIBE", channel})) ++in_flight_[std::string(channel)];
  }
  void unsubscribe(std::string_view channel) {
    if (stopped_) return;
    auto it = channels_.find(channel);
    if (it == channels_.end()) return;
    channels_.erase(it);
    if (sub_ && sub_->is_open()) sub_->write_command({"UNSUBSCRIBE", channel});
  }
  bool subscribed(std::string_view channel) const { return channels_.find(channel) != channels_.end(); }
  // Subscribed here, confirmed by Redis on the live link, and no SUBSCRIBE for it on its way.
  bool confirmed(std::string_view channel) const {
    return subscribed(channel) && active_.find(channel) != active_.end() && in_flight_.find(channel) == in_flight_.end();
  }
  std::size_t channel_count() const noexcept { return channels_.size(); }

  // Publishes without waiting. False (and counted in publish_dropped) when it could not be
  // handed to Redis: the publisher is down or too far behind.
  bool publish(std::string_view channel, std::string_view payload) { return send_publish(channel, payload, nullptr); }

  // Publishes and waits (up to request_timeout) for Redis's answer: how many subscribers
  // (nodes) received it, or nullopt when it was dropped or not answered in time.
  asio::awaitable<std::optional<long long>> publish_confirmed(const std::string& channel, const std::string& payload) {
    auto self = shared_from_this();
    auto w = std::make_shared<waiter>(ex_);
    std::optional<long long> out;
    if (!send_publish(channel, payload, w)) co_return out;
    co_await w->wait(opts_.request_timeout);
    if (w->reply && w->reply->type == REDIS_REPLY_INTEGER) out = w->reply->integer;
    co_return out;
  }

  // Any other command, on the publisher connection, without waiting; its answer is ignored.
  // False when the publisher is down or too far behind (nothing is queued for later).
  bool command(std::span<const std::string_view> args) { return send_command(args, nullptr); }
  // The same, with its answer handed to `done` (null when the publisher is lost first). False,
  // and `done` not called, when it could not be sent.
  bool command(std::span<const std::string_view> args, reply_handler done) {
    return send(request_kind::command, args, nullptr, std::move(done));
  }
  // A command that publishes (e.g. a function that PUBLISHes): counted as a publication
  // (published, publish_dropped, publish_errors, publish_unconfirmed), its answer ignored.
  bool publish_command(std::span<const std::string_view> args) {
    if (send(request_kind::publish, args, nullptr, nullptr)) return true;
    ++stats_.publish_dropped;
    return false;
  }
  bool command(std::initializer_list<std::string_view> args) {
    return command(std::span<const std::string_view>(args.begin(), args.size()));
  }

  // Sends a command and waits (up to request_timeout) for its reply: null when the publisher
  // is down or Redis did not answer in time. `args` is read before the first suspension.
  // `publishes`: counted as a publication (see publish_command).
  asio::awaitable<reply_ptr> request(const std::vector<std::string_view>& args, bool publishes = false) {
    auto self = shared_from_this();
    auto w = std::make_shared<waiter>(ex_);
    reply_ptr out;
    const bool sent = publishes ? send(request_kind::publish, args, w, nullptr) : send_command(args, w);
    if (!sent) {
      if (publishes) ++stats_.publish_dropped;
      co_return out;
    }
    co_await w->wait(opts_.request_timeout);
    out = std::move(w->reply);
    co_return out;
  }

  // PUBSUB NUMSUB: how many subscribers `channel` has across Redis (nullopt when Redis did
  // not answer within request_timeout).
  asio::awaitable<std::optional<long long>> numsub(const std::string& channel) {
    const std::vector<std::string_view> args{"PUBSUB", "NUMSUB", channel};
    const reply_ptr r = co_await request(args);
    std::optional<long long> out;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER)
      out = r->element[1]->integer;
    co_return out;
  }

  const redis::stats& stats() const noexcept { return stats_; }
  const redis::options& options() const noexcept { return opts_; }

 private:
  // Someone awaiting one answer: the answer cancels the timer.
  struct waiter {
    explicit waiter(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    reply_ptr reply;  // null: no answer (or an error answer to a PUBLISH)
    bool done = false;
    void complete(reply_ptr r) {
      if (done) return;
      done = true;
      reply = std::move(r);
      timer.cancel();
    }
    asio::awaitable<void> wait(clock::duration limit) {
      if (done) co_return;
      timer.expires_after(limit);
      error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      done = true;
    }
  };

  // A connection that lasted this long resets the reconnect backoff.
  static constexpr clock::duration stable_after = std::chrono::seconds(2);

  enum class request_kind : std::uint8_t { publish, command, ping };
  struct pending_request {
    request_kind kind;
    std::shared_ptr<waiter> w;
    reply_handler done;
  };

  // Reconnect delays: doubling from backoff_min to backoff_max, each drawn from [d/2, d].
  struct backoff {
    clock::duration min, max, next_delay;
    std::minstd_rand rng{std::random_device{}()};
    backoff(clock::duration lo, clock::duration hi) : min(lo), max(std::max(lo, hi)), next_delay(lo) {}
    void reset() { next_delay = min; }
    clock::duration next() {
      const auto d = next_delay;
      next_delay = std::min(max, next_delay * 2);
      const auto half = d / 2;
      const auto span = static_cast<std::uint64_t>((d - half).count());
      const auto extra = span ? static_cast<clock::duration::rep>(rng() % (span + 1)) : 0;
      return half + clock::duration(extra);
    }
  };

  // Up, authenticated, set up (setup_command), and not too far behind.
  bool publisher_can_take() const {
    return !stopped_ && pub_ready_ && pub_ && pub_->is_open() && pub_->buffered() <= opts_.max_buffered;
  }

  bool send_publish(std::string_view channel, std::string_view payload, std::shared_ptr<waiter> w) {
    if (!publisher_can_take() || !pub_->write_command({"PUBLISH", channel, payload})) {
      ++stats_.publish_dropped;
      if (w) w->complete(nullptr);
      return false;
    }
    pending_.push_back({request_kind::publish, std::move(w), nullptr});
    return true;
  }

  bool send_command(std::span<const std::string_view> args, std::shared_ptr<waiter> w) {
    return send(request_kind::command, args, std::move(w), nullptr);
  }

  // Writes a command whose answer goes to `w` or `done` (neither is told when it cannot be
  // sent, except `w`, which is completed with nothing).
  bool send(request_kind kind, std::span<const std::string_view> args, std::shared_ptr<waiter> w, reply_handler done) {
    if (!publisher_can_take() || !pub_->write_command(args)) {
      if (w) w->complete(nullptr);
      return false;
    }
    pending_.push_back({kind, std::move(w), std::move(done)});
    return true;
  }

  void connected(link which, bool again) {
    if (again) ++stats_.reconnects;
    if (on_connect_) on_connect_(which, again);
  }

  void log(std::string_view line) {
    if (opts_.log) opts_.log(line);
  }
  std::string where() const { return opts_.host + ":" + std::to_string(opts_.port); }

  // Connects `c` and authenticates; false (logged, counted) if that failed. `failures`: the
  // attempts that failed in a row (the first and every tenth are logged).
  asio::awaitable<bool> open(connection& c, const char* role, std::uint64_t* failures) {
    auto self = shared_from_this();
    const error_code ec = co_await c.connect(opts_.host, opts_.port, opts_.connect_timeout);
    std::string failure;
    if (ec) failure = ec.message();
    if (failure.empty() && !opts_.password.empty()) {
      c.write_command({"AUTH", opts_.password});
      auto r = co_await c.read();
      if (!r) failure = "AUTH: " + c.error();
      else if (r->type == REDIS_REPLY_ERROR) failure = "AUTH: " + std::string(text_of(r.get()));
    }
    if (failure.empty() && stopped_) failure = "stopped";
    if (!failure.empty()) {
      c.close(failure);
      ++stats_.connect_failures;
      ++*failures;
      if (!stopped_ && (*failures == 1 || *failures % 10 == 0))
        log(std::string("redis ") + role + ": cannot connect to " + where() + ": " + failure + " (attempt " +
            std::to_string(*failures) + "; retrying with backoff)");
      co_return false;
    }
    *failures = 0;
    ++stats_.connects;
    co_return true;
  }

  asio::awaitable<void> pause(asio::steady_timer& t, clock::duration d) {
    t.expires_after(d);
    error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  static asio::awaitable<void> run_publisher(std::shared_ptr<pubsub> self) {
    backoff delays(self->opts_.backoff_min, self->opts_.backoff_max);
    std::uint64_t failures = 0;
    bool was_up = false;
    while (!self->stopped_) {
      auto c = std::make_shared<connection>(self->ex_);
      self->pub_ = c;
      const bool up = co_await self->open(*c, "publisher", &failures);
      if (up) {
        const auto up_since = clock::now();
        self->stats_.publisher_up = true;
        self->log("redis publisher: connected to " + self->where() + " (publications dropped so far: " +
                  std::to_string(self->stats_.publish_dropped) + ")");
        pubsub* raw = self.get();
        c->keepalive(self->opts_.keepalive, [raw, weak = std::weak_ptr<connection>(c)] {
          auto conn = weak.lock();
          if (conn && conn->write_command({"PING"})) raw->pending_.push_back({request_kind::ping, nullptr, nullptr});
        });
        self->set_up(*c);
        self->pub_ready_ = true;
        self->connected(link::publisher, std::exchange(was_up, true));
        for (;;) {
          auto r = co_await c->read();
          if (!r) break;
          self->on_publisher_reply(std::move(r));
        }
        self->pub_ready_ = false;
        self->stats_.publisher_up = false;
        ++self->stats_.disconnects;
        self->fail_pending();
        if (!self->stopped_) self->log("redis publisher: lost (" + c->error() + "); reconnecting");
        if (clock::now() - up_since >= stable_after) delays.reset();  // else: dropped at once, keep backing off
      }
      self->pub_.reset();
      self->fail_pending();  // publications written while AUTH was pending, if AUTH failed
      if (self->stopped_) break;
      const auto d = delays.next();
      co_await self->pause(self->pub_retry_, d);
    }
    self->fail_pending();
  }

  static asio::awaitable<void> run_subscriber(std::shared_ptr<pubsub> self) {
    backoff delays(self->opts_.backoff_min, self->opts_.backoff_max);
    std::uint64_t failures = 0;
    bool was_up = false;
    while (!self->stopped_) {
      auto c = std::make_shared<connection>(self->ex_);
      const bool up = co_await self->open(*c, "subscriber", &failures);
      if (up) {
        const auto up_since = clock::now();
        self->sub_ = c;
        self->stats_.subscriber_up = true;
        self->resubscribe_all();
        self->log("redis subscriber: connected to " + self->where() + ", subscribing to " +
                  std::to_string(self->channels_.size()) + " channels");
        c->keepalive(self->opts_.keepalive, [weak = std::weak_ptr<connection>(c)] {
          if (auto conn = weak.lock()) conn->write_command({"PING"});
        });
        self->connected(link::subscriber, std::exchange(was_up, true));
        for (;;) {
          auto r = co_await c->read();
          if (!r) break;
          self->on_subscriber_reply(r.get());
        }
        self->sub_.reset();
        self->stats_.subscriber_up = false;
        self->stats_.subscriptions = 0;
        self->active_.clear();
        self->in_flight_.clear();
        ++self->stats_.disconnects;
        if (!self->stopped_) self->log("redis subscriber: lost (" + c->error() + "); reconnecting");
        if (clock::now() - up_since >= stable_after) delays.reset();
      }
      if (self->stopped_) break;
      const auto d = delays.next();
      co_await self->pause(self->sub_retry_, d);
    }
  }

  // SUBSCRIBE to everything held, at most 1000 channels per command.
  void resubscribe_all() {
    std::vector<std::string_view> args;
    args.reserve(1001);
    args.push_back("SUBSCRIBE");
    auto write = [&] {
      if (sub_->write_command(args))
        for (std::size_t i = 1; i < args.size(); ++i) ++in_flight_[std::string(args[i])];
      args.resize(1);
    };
    for (const auto& ch : channels_) {
      args.push_back(ch);
      if (args.size() == 1001) write();
    }
    if (args.size() > 1) write();
  }

  // The setup commands, first on a new publisher connection; an error answer is logged.
  void set_up(connection& c) {
    for (const auto& cmd : setup_) {
      const std::vector<std::string_view> args(cmd.begin(), cmd.end());
      if (!c.write_command(args)) continue;
      pending_.push_back({request_kind::command, nullptr, [this, name = cmd.empty() ? std::string() : cmd[0]](reply_ptr r) {
                            if (r && r->type == REDIS_REPLY_ERROR)
                              log("redis publisher: " + name + " failed: " + std::string(text_of(r.get())));
                          }});
    }
  }

  void on_publisher_reply(reply_ptr r) {
    if (pending_.empty()) return;  // nothing asked for it (cannot happen with a sane server)
    pending_request p = std::move(pending_.front());
    pending_.pop_front();
    if (p.kind == request_kind::publish) {
      if (r->type == REDIS_REPLY_ERROR) {
        ++stats_.publish_errors;
        r.reset();
      } else {
        ++stats_.published;
      }
    }
    if (p.w) p.w->complete(std::move(r));
    else if (p.done) p.done(std::move(r));
  }

  void fail_pending() {
    auto failed = std::move(pending_);  // the handlers may send again
    pending_.clear();
    for (auto& p : failed) {
      if (p.kind == request_kind::publish) ++stats_.publish_unconfirmed;
      if (p.w) p.w->complete(nullptr);
      else if (p.done) p.done(nullptr);
    }
  }

  void on_subscriber_reply(const redisReply* r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;  // PONG and the like
    const std::string_view kind = text_of(r->element[0]);
    if (kind == "message") {
      ++stats_.received;
      if (handler_) handler_(text_of(r->element[1]), text_of(r->element[2]));
    } else if ((kind == "subscribe" || kind == "unsubscribe") && r->element[2]->type == REDIS_REPLY_INTEGER) {
      stats_.subscriptions = static_cast<std::size_t>(r->element[2]->integer);
      const std::string_view ch = text_of(r->element[1]);
      if (kind == "unsubscribe") {
        if (auto a = active_.find(ch); a != active_.end()) active_.erase(a);
        return;
      }
      active_.emplace(ch);
      auto it = in_flight_.find(ch);
      if (it != in_flight_.end() && --it->second > 0) return;
      if (it != in_flight_.end()) in_flight_.erase(it);
      if (on_subscribed_ && subscribed(ch)) on_subscribed_(ch);
    }
  }

  asio::any_io_executor ex_;
  redis::options opts_;
  handler handler_;
  connect_handler on_connect_;
  subscribed_handler on_subscribed_;
  std::vector<std::vector<std::string>> setup_;
  asio::steady_timer pub_retry_;
  asio::steady_timer sub_retry_;
  std::shared_ptr<connection> pub_;
  std::shared_ptr<connection> sub_;
  std::deque<pending_request> pending_;  // the publisher's unanswered commands, in order
  std::unordered_set<std::string, herald::detail::transparent_hash, std::equal_to<>> channels_;
  // Confirmed by Redis on the current subscriber link; SUBSCRIBEs written and not yet confirmed.
  std::unordered_set<std::string, herald::detail::transparent_hash, std::equal_to<>> active_;
  std::unordered_map<std::string, int, herald::detail::transparent_hash, std::equal_to<>> in_flight_;
  redis::stats stats_;
  bool started_ = false;
  bool stopped_ = false;
  bool pub_ready_ = false;  // the publisher is up and set up
};

}  // namespace herald::redis

#endif  // HERALD_REDIS_PUBSUB_HPP
