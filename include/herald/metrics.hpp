// Counters and gauges for a herald server, readable as a struct and as Prometheus text.
//
// Writers never share a cache line: each thread adds into its own slot, and a reading sums
// the slots. A gauge is a counter that also goes down (sessions, uids, queued bytes).
// Sessions and registries report into the object given in their options.
#ifndef HERALD_METRICS_HPP
#define HERALD_METRICS_HPP
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace herald {

struct metrics_snapshot {
  // gauges
  std::int64_t sessions = 0;      // open WebSocket sessions (upgraded, not yet closed)
  std::int64_t uids = 0;          // uids with at least one session
  std::int64_t queued_bytes = 0;  // bytes of frames waiting in send queues
  // counters
  std::uint64_t logins_ok = 0;
  std::uint64_t logins_refused = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t dropped = 0;               // messages not sent: queue full, or session closing
  std::uint64_t slow_consumer_closes = 0;  // sessions closed at their queue limit
  std::uint64_t handshakes_refused = 0;    // upgrade requests answered with an HTTP error
  std::uint64_t redis_reconnects = 0;
  // sessions ended, by the class of their close code
  std::uint64_t closes_normal = 0;       // 1000, 1001, 1005
  std::uint64_t closes_protocol = 0;     // 1002, 1003, 1007, 1009, 1010: the peer broke a rule
  std::uint64_t closes_policy = 0;       // 1008: refused login, timeout, slow consumer
  std::uint64_t closes_abnormal = 0;     // 1006: lost without a close frame (idle timeout too)
  std::uint64_t closes_server = 0;       // 1011
  std::uint64_t closes_application = 0; // 3000-4999 (4000: replaced by a newer login)

  std::uint64_t rate_limited_closes = 0;    // sessions closed for exceeding their inbound rate limit

  // Prometheus text exposition format (version 0.0.4); every name starts with herald_. Each
  // family has exactly one HELP and one TYPE line, before its samples.
  std::string prometheus() const {
    std::string out;
    auto family = [&out](const char* name, const char* type, const char* help) {
      out += "# HELP ";
      out += name;
      out += ' ';
      out += help;
      out += "\n# TYPE ";
      out += name;
      out += ' ';
      out += type;
      out += '\n';
    };
    auto sample = [&out](const char* name, auto value, const char* labels = "") {
      out += name;
      out += labels;
      out += ' ';
      out += std::to_string(value);
      out += '\n';
    };
    auto metric = [&](const char* name, const char* type, const char* help, auto value) {
      family(name, type, help);
      sample(name, value);
    };
    metric("herald_sessions", "gauge", "Open WebSocket sessions.", sessions);
    metric("herald_uids", "gauge", "User ids with at least one session.", uids);
    metric("herald_queued_bytes", "gauge", "Bytes waiting in send queues.", queued_bytes);
    metric("herald_logins_total", "counter", "Logins accepted.", logins_ok);
    metric("herald_logins_refused_total", "counter", "Logins refused (authenticator, invalid uid, duplicate, timeout).", logins_refused);
    metric("herald_messages_in_total", "counter", "Messages received from peers.", messages_in);
    metric("herald_bytes_in_total", "counter", "Bytes received from peers (wire bytes).", bytes_in);
    metric("herald_messages_out_total", "counter", "Messages written to peers.", messages_out);
    metric("herald_bytes_out_total", "counter", "Payload bytes written to peers.", bytes_out);
    metric("herald_dropped_total", "counter", "Messages not sent: queue full or session closing.", dropped);
    metric("herald_slow_consumer_closes_total", "counter", "Sessions closed at their send queue limit.", slow_consumer_closes);
    metric("herald_rate_limited_closes_total", "counter", "Sessions closed for exceeding their inbound rate limit.", rate_limited_closes);
    metric("herald_handshakes_refused_total", "counter", "Upgrade requests answered with an HTTP error.", handshakes_refused);
    metric("herald_redis_reconnects_total", "counter", "Reconnections to Redis.", redis_reconnects);
    family("herald_closes_total", "counter", "Sessions ended, by close code class.");
    sample("herald_closes_total", closes_normal, "{class=\"normal\"}");
    sample("herald_closes_total", closes_protocol, "{class=\"protocol\"}");
    sample("herald_closes_total", closes_policy, "{class=\"policy\"}");
    sample("herald_closes_total", closes_abnormal, "{class=\"abnormal\"}");
    sample("herald_closes_total", closes_server, "{class=\"server\"}");
    sample("herald_closes_total", closes_application, "{class=\"application\"}");
    return out;
  }
};

class metrics {
 public:
  enum id : unsigned {
    sessions,
    uids,
    queued_bytes,
    logins_ok,
    logins_refused,
    messages_in,
    bytes_in,
    messages_out,
    bytes_out,
    dropped,
    slow_consumer_closes,
    handshakes_refused,
    redis_reconnects,
    closes_normal,
    closes_protocol,
    closes_policy,
    closes_abnormal,
    closes_server,
    closes_application,
    rate_limited_closes,
    count_
  };

  metrics() = default;
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // Adds `v` (negative for a gauge going down) to this thread's slot.
  void add(id which, std::int64_t v = 1) noexcept {
    auto& cell = local().values[which];
    cell.store(cell.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);  // only this thread writes it
  }

  // Counts a session's end under the class of its close code.
  void count_close(std::uint16_t code) noexcept {
    if (code == 1000 || code == 1001 || code == 1005) add(closes_normal);
    else if (code == 1008) add(closes_policy);
    else if (code == 1006) add(closes_abnormal);
    else if (code == 1011) add(closes_server);
    else if (code >= 3000 && code <= 4999) add(closes_application);
    else add(closes_protocol);
  }

  metrics_snapshot snapshot() const {
    std::array<std::int64_t, count_> sum{};
    {
      std::lock_guard lock(mutex_);
      for (const auto& s : slots_)
        for (unsigned i = 0; i < count_; ++i) sum[i] += s.values[i].load(std::memory_order_relaxed);
    }
    metrics_snapshot m;
    m.sessions = sum[sessions];
    m.uids = sum[uids];
    m.queued_bytes = sum[queued_bytes];
    auto u = [&sum](id i) { return static_cast<std::uint64_t>(sum[i]); };
    m.logins_ok = u(logins_ok);
    m.logins_refused = u(logins_refused);
    m.messages_in = u(messages_in);
    m.bytes_in = u(bytes_in);
    m.messages_out = u(messages_out);
    m.bytes_out = u(bytes_out);
    m.dropped = u(dropped);
    m.slow_consumer_closes = u(slow_consumer_closes);
    m.handshakes_refused = u(handshakes_refused);
    m.redis_reconnects = u(redis_reconnects);
    m.closes_normal = u(closes_normal);
    m.closes_protocol = u(closes_protocol);
    m.closes_policy = u(closes_policy);
    m.closes_abnormal = u(closes_abnormal);
    m.closes_server = u(closes_server);
    m.closes_application = u(closes_application);
    m.rate_limited_closes = u(rate_limited_closes);
    return m;
  }

  std::string prometheus() const { return snapshot().prometheus(); }

 private:
  struct alignas(64) slot {
    std::array<std::atomic<std::int64_t>, count_> values{};
  };

  // This thread's slot in this metrics object (found once per thread, then cached).
  slot& local() {
    // Keyed by a serial, not the address: a new metrics object may reuse a freed one's address.
    thread_local std::uint64_t cached_serial = 0;
    thread_local slot* cached_slot = nullptr;
    if (cached_serial == serial_) return *cached_slot;
    std::lock_guard lock(mutex_);
    auto [it, fresh] = by_thread_.try_emplace(std::this_thread::get_id(), nullptr);
    if (fresh) it->second = &slots_.emplace_back();
    cached_serial = serial_;
    cached_slot = it->second;
    return *cached_slot;
  }

  static std::uint64_t next_serial() noexcept {
    static std::atomic<std::uint64_t> serial{0};
    return ++serial;
  }

  const std::uint64_t serial_ = next_serial();
  mutable std::mutex mutex_;
  std::deque<slot> slots_;  // stable addresses
  std::unordered_map<std::thread::id, slot*> by_thread_;
};

}  // namespace herald

#endif  // HERALD_METRICS_HPP
