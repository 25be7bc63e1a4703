// history_bench: the load driver of benchmarks/history_bench.sh (issue 16, per-uid history).
//
//   history_bench cpu --port P [--port-b Q] --server-pid PID [--server-pid-b PID] --receivers R
//                     --messages M [--window W] [--size B] [--history] [--redis-port RP]
//     R receivers r0..r<R-1> on Q (default P), one sender on P: M unicasts "r<j>:<seq> xxx"
//     (j = seq % R), at most W unanswered. Every receiver checks each message: its own, intact,
//     in order, exactly once; with --history the "<offset>:" header too (offsets 1, 2, 3 per
//     uid). Reports the servers' CPU per message (ns, from /proc/PID/task/*/schedstat) and,
//     with --redis-port, the Redis commands per message (INFO commandstats, before and after).
//
//   history_bench reconnect --port P [--port-b Q] --sessions N --missed K [--handshakes H]
//                     [--server-pid PID ...] [--redis-port RP]
//     N sessions u0..u<N-1> log in to P (--history servers only) and keep their positions; all
//     are dropped at once (TCP RST); a sender on Q sends K messages to each uid and waits for
//     a marker to itself (then every one is recorded); then all N reconnect to Q at once (at
//     most H handshakes in flight) with their positions. Each must be told "recovered" and get
//     exactly its K messages, in order, then one live message. Reports the time from the first
//     reconnection until all N are live again, and the Redis commands per resume.
//
//   history_bench memory --uids U --per-uid N --size B [--redis-port RP]
//     In process: a single_thread registry with history (N per uid, the examples' format)
//     records N messages of B bytes for U offline uids; heap bytes per uid (mallinfo2) and the
//     registry's own estimate (history_stats). With --redis-port: the same through the history
//     function into that Redis (prefix "membench"), its used_memory per uid.
//
// One thread. Any failure prints FAIL and exits 1. The last line is RESULT key=value ...
#include <herald.hpp>
#include <herald/redis/connection.hpp>

#include <malloc.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "driver_support.hpp"
#include "proc_cpu.hpp"

using namespace std::chrono_literals;
using driver_support::fail;
using driver_support::num;
using driver_support::session;
using driver_support::session_ptr;
using driver_support::sleep_for;
using driver_support::steady;

namespace {

struct config {
  std::string mode;
  unsigned short port = 0, port_b = 0, redis_port = 0;
  std::vector<int> pids;
  std::size_t receivers = 1000, messages = 100000, window = 64, size = 64;
  std::size_t sessions = 5000, missed = 20, handshakes = 200, source_ips = 16;
  std::size_t uids = 10000, per_uid = 20;
  bool history = false;
  int timeout_s = 600;
};

config parse(int argc, char** argv) {
  config c;
  if (argc < 2) fail("usage: history_bench cpu|reconnect|memory ... (see the source)");
  c.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) fail("missing value for " + std::string(a));
      return argv[++i];
    };
    if (a == "--port") c.port = static_cast<unsigned short>(num(value()));
    else if (a == "--port-b") c.port_b = static_cast<unsigned short>(num(value()));
    else if (a == "--redis-port") c.redis_port = static_cast<unsigned short>(num(value()));
    else if (a == "--server-pid" || a == "--server-pid-b") c.pids.push_back(static_cast<int>(num(value())));
    else if (a == "--receivers") c.receivers = num(value());
    else if (a == "--messages") c.messages = num(value());
    else if (a == "--window") c.window = num(value());
    else if (a == "--size") c.size = num(value());
    else if (a == "--sessions") c.sessions = num(value());
    else if (a == "--missed") c.missed = num(value());
    else if (a == "--handshakes") c.handshakes = num(value());
    else if (a == "--uids") c.uids = num(value());
    else if (a == "--per-uid") c.per_uid = num(value());
    else if (a == "--history") c.history = true;
    else if (a == "--timeout") c.timeout_s = static_cast<int>(num(value()));
    else fail("unknown option " + std::string(a));
  }
  if (!c.port_b) c.port_b = c.port;
  return c;
}

// On-CPU time of the given processes (all threads), in ns.
std::uint64_t cpu_ns(const std::vector<int>& pids) {
  std::uint64_t sum = 0;
  for (int pid : pids) {
    const long long ns = bench_proc::on_cpu_ns(pid);
    if (ns < 0) fail("cannot read /proc/" + std::to_string(pid) + "/task/*/schedstat");
    sum += static_cast<std::uint64_t>(ns);
  }
  return sum;
}

// ---- Redis: INFO commandstats (calls per command), INFO memory, commands of our own ----

struct redis_link {
  std::shared_ptr<herald::redis::connection> c;
};

asio::awaitable<herald::redis::reply_ptr> redis_do(redis_link& r, const std::vector<std::string>& args) {
  const std::vector<std::string_view> v(args.begin(), args.end());
  if (!r.c->write_command(v)) fail("redis: not connected");
  auto reply = co_await r.c->read();
  if (!reply) fail("redis: " + r.c->error());
  co_return reply;
}

asio::awaitable<std::map<std::string, std::uint64_t>> commandstats(redis_link& r) {
  const std::vector<std::string> info{"INFO", "commandstats"};
  const auto reply = co_await redis_do(r, info);
  std::map<std::string, std::uint64_t> out;
  const std::string_view text = herald::redis::text_of(reply.get());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = text.find("\r\n", pos);
    const std::string_view line = text.substr(pos, end - pos);
    pos = end == std::string_view::npos ? text.size() : end + 2;
    if (line.rfind("cmdstat_", 0) != 0) continue;
    const auto colon = line.find(':');
    const auto calls = line.find("calls=");
    if (colon == std::string_view::npos || calls == std::string_view::npos) continue;
    const auto comma = line.find(',', calls);
    out[std::string(line.substr(8, colon - 8))] = num(line.substr(calls + 6, comma - calls - 6));
  }
  co_return out;
}

asio::awaitable<std::uint64_t> used_memory(redis_link& r) {
  const std::vector<std::string> info{"INFO", "memory"};
  const auto reply = co_await redis_do(r, info);
  const std::string_view text = herald::redis::text_of(reply.get());
  const auto at = text.find("used_memory:");
  if (at == std::string_view::npos) fail("no used_memory in INFO memory");
  co_return num(text.substr(at + 12, text.find("\r\n", at) - at - 12));
}

std::string describe(const std::map<std::string, std::uint64_t>& before, const std::map<std::string, std::uint64_t>& after,
                     double per, std::uint64_t* total) {
  std::string out;
  *total = 0;
  for (const auto& [cmd, n] : after) {
    const auto it = before.find(cmd);
    const std::uint64_t d = n - (it == before.end() ? 0 : it->second);
    if (d == 0 || cmd == "info") continue;
    *total += d;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s=%.3f", out.empty() ? "" : ",", cmd.c_str(), static_cast<double>(d) / per);
    out += buf;
  }
  return out;
}

// ---- clients ----

struct driver {
  config cfg;
  asio::io_context io{1};
  std::shared_ptr<const herald::session_options> options;
  std::size_t connections = 0;
};

// (Strings reach the coroutines below by reference to the caller's named locals: g++ 12
// miscompiles coroutines that take a std::string by value or a temporary.)
asio::awaitable<session_ptr> open_session(driver& d, unsigned short port, const std::string& target) {
  auto ws = co_await driver_support::connect_from(port, d.connections++, d.cfg.source_ips, target, d.options);
  co_return ws;
}

// The login reply: plain, or with --history "@<epoch>:<offset>:<state>:login successful, ...".
struct welcome {
  std::string epoch;
  std::uint64_t offset = 0;
  std::string state;
};
welcome parse_welcome(std::string_view t, const std::string& uid, bool history) {
  welcome w;
  const std::string plain = "login successful, your uid is " + uid;
  if (!history) {
    if (t != plain) fail("login reply of " + uid + ": " + std::string(t.substr(0, 80)));
    return w;
  }
  const auto c1 = t.find(':'), c2 = t.find(':', c1 + 1), c3 = t.find(':', c2 + 1);
  if (t.empty() || t[0] != '@' || c3 == std::string_view::npos || t.substr(c3 + 1) != plain)
    fail("welcome of " + uid + ": " + std::string(t.substr(0, 80)));
  w.epoch = std::string(t.substr(1, c1 - 1));
  w.offset = num(t.substr(c1 + 1, c2 - c1 - 1));
  w.state = std::string(t.substr(c2 + 1, c3 - c2 - 1));
  return w;
}

const std::string root = "/";

asio::awaitable<session_ptr> log_in(driver& d, unsigned short port, const std::string& uid, welcome* w, const std::string& target) {
  auto ws = co_await open_session(d, port, target);
  ws->send(uid);
  auto reply = co_await ws->read();
  if (!reply) fail("login of " + uid + ": " + reply.status().reason);
  const welcome got = parse_welcome(reply->text(), uid, d.cfg.history);
  if (w) *w = got;
  co_return ws;
}

// "<offset>:<body>" with --history: checks the offset follows `*last`; returns the body.
std::string_view body_of(std::string_view m, bool history, std::uint64_t* last, const std::string& who) {
  if (!history) return m;
  const auto colon = m.find(':');
  if (colon == 0 || colon == std::string_view::npos) fail(who + ": no offset header: " + std::string(m.substr(0, 60)));
  const std::uint64_t off = num(m.substr(0, colon));
  if (off != *last + 1) fail(who + ": offset " + std::to_string(off) + " after " + std::to_string(*last));
  *last = off;
  return m.substr(colon + 1);
}

// ---- cpu: a closed loop of unicasts ----

struct cpu_run {
  session_ptr sender;
  std::vector<session_ptr> receivers;
  std::vector<std::size_t> next_seq;
  std::vector<std::uint64_t> offsets;
  std::size_t sent = 0, received = 0, in_flight = 0;
  std::string pad;
  asio::steady_timer* done = nullptr;
};

void send_more(driver& d, cpu_run& u) {
  while (u.in_flight < d.cfg.window && u.sent < d.cfg.messages) {
    const std::size_t j = u.sent % u.receivers.size();
    std::string m(1, 'r');  // (appends: g++ 12 -O2 warns falsely on "r" + std::string)
    m += std::to_string(j);
    m += ':';
    m += std::to_string(u.sent);
    m += ' ';
    m += std::string_view(u.pad).substr(0, d.cfg.size > m.size() ? d.cfg.size - m.size() : 0);
    u.sender->send(m);
    ++u.sent;
    ++u.in_flight;
  }
}

asio::awaitable<void> cpu_reader(driver& d, cpu_run& u, std::size_t j) {
  const std::string who = "r" + std::to_string(j);
  for (;;) {
    auto m = co_await u.receivers[j]->read();
    if (!m) fail(who + " ended: " + m.status().reason);
    const std::string_view body = body_of(m->text(), d.cfg.history, &u.offsets[j], who);
    const std::size_t seq = num(body.substr(0, body.find(' ')));
    if (seq % u.receivers.size() != j || seq != u.next_seq[j]) fail(who + ": unexpected seq " + std::to_string(seq));
    u.next_seq[j] += u.receivers.size();
    ++u.received;
    --u.in_flight;
    if (u.received == d.cfg.messages) u.done->cancel();
    else send_more(d, u);
  }
}

asio::awaitable<void> run_cpu(driver& d) {
  const config& c = d.cfg;
  cpu_run u;
  u.pad.assign(c.size, 'x');
  asio::steady_timer done(d.io, steady::time_point::max());
  u.done = &done;
  for (std::size_t j = 0; j < c.receivers; ++j) {
    welcome w;
    const std::string uid = "r" + std::to_string(j);
    u.receivers.push_back(co_await log_in(d, c.port_b, uid, &w, root));
    u.offsets.push_back(w.offset);
    u.next_seq.push_back(j);
  }
  const std::string sender_uid = "cpu-sender";
  u.sender = co_await log_in(d, c.port, sender_uid, nullptr, root);
  for (std::size_t j = 0; j < c.receivers; ++j) asio::co_spawn(d.io, cpu_reader(d, u, j), asio::detached);
  co_await sleep_for(300ms);  // subscriptions settled (redis_cluster)
  redis_link r;
  std::map<std::string, std::uint64_t> before;
  if (c.redis_port) {
    r.c = std::make_shared<herald::redis::connection>(d.io.get_executor());
    if (auto ec = co_await r.c->connect("127.0.0.1", c.redis_port, 5s)) fail("redis: " + ec.message());
    before = co_await commandstats(r);
  }
  const std::uint64_t cpu0 = cpu_ns(c.pids);
  const auto t0 = steady::now();
  send_more(d, u);
  herald::error_code ec;
  co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  const double seconds = std::chrono::duration<double>(steady::now() - t0).count();
  const std::uint64_t cpu1 = cpu_ns(c.pids);
  std::string redis;
  if (c.redis_port) {
    const auto after = co_await commandstats(r);
    std::uint64_t total = 0;
    const std::string per = describe(before, after, static_cast<double>(c.messages), &total);
    redis = " redis_commands_per_message=" + std::to_string(static_cast<double>(total) / static_cast<double>(c.messages)) +
            " redis_per_message=" + per;
  }
  std::printf("RESULT mode=cpu history=%d messages=%zu receivers=%zu size=%zu window=%zu seconds=%.3f messages_per_s=%.0f "
              "server_cpu_ns_per_message=%.0f%s\n",
              c.history ? 1 : 0, c.messages, c.receivers, c.size, c.window, seconds, static_cast<double>(c.messages) / seconds,
              static_cast<double>(cpu1 - cpu0) / static_cast<double>(c.messages), redis.c_str());
  std::fflush(stdout);
  std::_Exit(0);
}

// ---- reconnect: N sessions dropped at once resume K missed messages each ----

struct resume_run {
  std::vector<std::string> uids;
  std::vector<welcome> at;         // positions kept by the clients
  std::vector<session_ptr> sessions;
  std::size_t next = 0, live = 0, replayed = 0;
  steady::time_point first, last;
  asio::steady_timer* all_live = nullptr;
};

asio::awaitable<void> resume_one(driver& d, resume_run& r, std::size_t i) {
  const std::string uid = r.uids[i];
  const std::string target = "/?epoch=" + r.at[i].epoch + "&offset=" + std::to_string(r.at[i].offset);
  welcome w;
  auto ws = co_await log_in(d, d.cfg.port_b, uid, &w, target);
  if (w.state != "recovered" || w.epoch != r.at[i].epoch || w.offset != r.at[i].offset + d.cfg.missed)
    fail(uid + ": resumed " + w.state + " at " + w.epoch + ":" + std::to_string(w.offset));
  std::uint64_t last = r.at[i].offset;
  for (std::size_t k = 0; k < d.cfg.missed; ++k) {
    auto m = co_await ws->read();
    if (!m) fail(uid + " ended during its replay");
    if (body_of(m->text(), true, &last, uid) != "m" + std::to_string(k)) fail(uid + ": replay " + std::to_string(k) + " wrong");
  }
  r.replayed += d.cfg.missed;
  r.sessions[i] = ws;
  r.at[i].offset = last;
  r.last = steady::now();
  if (++r.live == r.uids.size()) r.all_live->cancel();
}

asio::awaitable<void> resume_worker(driver& d, resume_run& r) {
  while (r.next < r.uids.size()) {
    const std::size_t i = r.next++;
    co_await resume_one(d, r, i);
  }
}

asio::awaitable<void> login_worker(driver& d, resume_run& r) {
  while (r.next < r.uids.size()) {
    const std::size_t i = r.next++;
    const std::string uid = r.uids[i];
    r.sessions[i] = co_await log_in(d, d.cfg.port, uid, &r.at[i], root);
    ++r.live;
  }
}

asio::awaitable<void> run_reconnect(driver& d) {
  const config& c = d.cfg;
  if (!c.history) fail("reconnect needs --history (a server with --history)");
  resume_run r;
  asio::steady_timer all_live(d.io, steady::time_point::max());
  r.all_live = &all_live;
  for (std::size_t i = 0; i < c.sessions; ++i) r.uids.push_back("u" + std::to_string(i));
  r.at.resize(c.sessions);
  r.sessions.resize(c.sessions);
  const std::size_t workers = std::min(c.handshakes, c.sessions);
  for (std::size_t w = 0; w < workers; ++w) asio::co_spawn(d.io, login_worker(d, r), asio::detached);
  while (r.live < c.sessions) co_await sleep_for(20ms);
  std::printf("logged in %zu sessions\n", c.sessions);
  std::fflush(stdout);
  welcome sw;
  const std::string sender_uid = "reconnect-sender";
  auto sender = co_await log_in(d, c.port_b, sender_uid, &sw, root);

  for (auto& s : r.sessions) s->drop(true);  // all at once, no close frame
  r.sessions.assign(c.sessions, nullptr);
  for (std::size_t k = 0; k < c.missed; ++k)
    for (std::size_t i = 0; i < c.sessions; ++i) sender->send(r.uids[i] + ":m" + std::to_string(k));
  sender->send("reconnect-sender:marker");  // recorded after all of the above (same connection, in order)
  for (;;) {
    auto m = co_await sender->read();
    if (!m) fail("the sender ended: " + std::to_string(m.status().code) + " " + m.status().reason);
    if (m->text().find(":marker") != std::string_view::npos) break;
  }
  std::printf("sent %zu messages while they were away\n", c.missed * c.sessions);
  std::fflush(stdout);

  redis_link rl;
  std::map<std::string, std::uint64_t> before;
  if (c.redis_port) {
    rl.c = std::make_shared<herald::redis::connection>(d.io.get_executor());
    if (auto ec = co_await rl.c->connect("127.0.0.1", c.redis_port, 5s)) fail("redis: " + ec.message());
    before = co_await commandstats(rl);
  }
  const std::uint64_t cpu0 = c.pids.empty() ? 0 : cpu_ns(c.pids);
  r.next = 0;
  r.live = 0;
  r.first = steady::now();
  for (std::size_t w = 0; w < workers; ++w) asio::co_spawn(d.io, resume_worker(d, r), asio::detached);
  herald::error_code ec;
  co_await all_live.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  const double seconds = std::chrono::duration<double>(r.last - r.first).count();
  const std::uint64_t cpu1 = c.pids.empty() ? 0 : cpu_ns(c.pids);
  std::string redis;
  if (c.redis_port) {
    const auto after = co_await commandstats(rl);
    std::uint64_t total = 0;
    const std::string per = describe(before, after, static_cast<double>(c.sessions), &total);
    redis = " redis_commands_per_resume=" + std::to_string(static_cast<double>(total) / static_cast<double>(c.sessions)) +
            " redis_per_resume=" + per;
  }
  // Live again: one more message to each, which must come next with the next offset.
  for (std::size_t i = 0; i < c.sessions; ++i) sender->send(r.uids[i] + ":live");
  for (std::size_t i = 0; i < c.sessions; ++i) {
    auto m = co_await r.sessions[i]->read();
    if (!m || body_of(m->text(), true, &r.at[i].offset, r.uids[i]) != "live") fail(r.uids[i] + ": no live message after the replay");
  }
  std::printf("RESULT mode=reconnect sessions=%zu missed=%zu replayed=%zu seconds_until_all_live=%.3f resumes_per_s=%.0f "
              "server_cpu_ms=%.0f%s\n",
              c.sessions, c.missed, r.replayed, seconds, static_cast<double>(c.sessions) / seconds,
              static_cast<double>(cpu1 - cpu0) / 1e6, redis.c_str());
  std::fflush(stdout);
  std::_Exit(0);
}

// ---- memory: bytes per uid ----

asio::awaitable<void> run_memory(driver& d) {
  const config& c = d.cfg;
  const std::string pad(c.size, 'x');
  {
    herald::registry_options ro;
    ro.history.max_messages = c.per_uid;
    ro.history.format = [](std::uint64_t offset, std::string_view payload, bool) {  // the examples' header
      std::string s = offset ? std::to_string(offset) : std::string();
      s += ':';
      s += payload;
      return herald::message::text(s);
    };
    herald::registry<session, herald::single_thread> users(d.io.get_executor(), ro);
    ::malloc_trim(0);
    const std::size_t heap0 = ::mallinfo2().uordblks;
    for (std::size_t u = 0; u < c.uids; ++u)
      for (std::size_t k = 0; k < c.per_uid; ++k) users.unicast_recorded("user-" + std::to_string(u), herald::message::text(pad));
    const std::size_t heap1 = ::mallinfo2().uordblks;
    const herald::history_stats s = users.history_stats();
    if (s.streams != c.uids || s.messages != c.uids * c.per_uid) fail("history holds the wrong count");
    std::printf("RESULT mode=memory where=process uids=%zu per_uid=%zu size=%zu heap_bytes_per_uid=%.0f "
                "estimated_bytes_per_uid=%.0f heap_bytes_per_message=%.1f\n",
                c.uids, c.per_uid, c.size, static_cast<double>(heap1 - heap0) / static_cast<double>(c.uids),
                static_cast<double>(s.bytes) / static_cast<double>(c.uids),
                static_cast<double>(heap1 - heap0) / static_cast<double>(c.uids * c.per_uid));
    std::fflush(stdout);
  }
  if (c.redis_port) {
    redis_link r;
    r.c = std::make_shared<herald::redis::connection>(d.io.get_executor());
    if (auto ec = co_await r.c->connect("127.0.0.1", c.redis_port, 5s)) fail("redis: " + ec.message());
    const std::uint64_t m0 = co_await used_memory(r);
    const std::string n = std::to_string(c.per_uid);
    for (std::size_t u = 0; u < c.uids; ++u) {
      const std::string uid = "user-" + std::to_string(u);
      for (std::size_t k = 0; k < c.per_uid; ++k) {
        const std::vector<std::string_view> args{"FCALL", "herald_push_1", "0", "membench", uid, pad, "t", "bench", n, "300000", "86400000"};
        r.c->write_command(args);
      }
      for (std::size_t k = 0; k < c.per_uid; ++k) {
        auto reply = co_await r.c->read();
        if (!reply || reply->type == REDIS_REPLY_ERROR) fail("FCALL: " + std::string(herald::redis::text_of(reply.get())));
      }
    }
    const std::uint64_t m1 = co_await used_memory(r);
    std::printf("RESULT mode=memory where=redis uids=%zu per_uid=%zu size=%zu used_memory_bytes_per_uid=%.0f\n", c.uids,
                c.per_uid, c.size, static_cast<double>(m1 - m0) / static_cast<double>(c.uids));
    std::fflush(stdout);
  }
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  driver d;
  d.cfg = parse(argc, argv);
  d.options = driver_support::client_options(std::size_t{1} << 30);  // the reconnect sender queues K x N at once
  if (d.cfg.mode == "cpu") {
    if (!d.cfg.port || d.cfg.pids.empty()) fail("cpu needs --port and --server-pid");
  } else if (d.cfg.mode == "reconnect") {
    if (!d.cfg.port) fail("reconnect needs --port");
  } else if (d.cfg.mode != "memory") {
    fail("mode must be cpu, reconnect or memory");
  }
  auto body = d.cfg.mode == "cpu" ? run_cpu(d) : d.cfg.mode == "reconnect" ? run_reconnect(d) : run_memory(d);
  driver_support::run(d.io, std::move(body), d.cfg.timeout_s, [] { return std::string(); });
  return 0;
}
