// cluster_bench: the load driver of benchmarks/cluster_bench.sh (redis_cluster, cluster_node).
//
//   cluster_bench hold --port P --sessions N --uid-prefix S [--messages M] [--timeout S]
//                      [--sender --go-file F --size B --pause-ms MS] [--source-ips K] [--handshakes H]
//     Logs N sessions in to one node as <S>0 .. <S>N-1, prints "READY", then expects M
//     broadcasts "<seq> <steady_clock ns> xxx...": every session must get every one exactly
//     once, in order. For each it prints "DONE seq=<k> ms=<send to last session>"; at the end a
//     RESULT line. With --sender, one more session (not counted) waits for F to exist and then
//     sends the M broadcasts ("all:..." to its node), one every MS milliseconds.
//
//   cluster_bench unicast --port-a A --port-b B --receivers R --messages M [--window W] [--size B]
//     R sessions r0..r<R-1> on node B, one sender on node A that sends "r<j>:<seq> <ns> xxx"
//     (j = seq % R), at most W unanswered; reports delivered/s and latency (send -> receipt).
//
// One thread. Any failure prints FAIL and exits 1. Build: see cluster_bench.sh (g++ -O2, no CMake).
#include <herald.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "driver_support.hpp"

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using driver_support::fail;
using driver_support::num;
using driver_support::session;
using driver_support::session_ptr;
using driver_support::sleep_for;
using driver_support::steady;

namespace {

struct config {
  std::string mode;
  unsigned short port = 0, port_a = 0, port_b = 0;
  std::size_t sessions = 0, receivers = 100, messages = 1, window = 64, size = 64, handshakes = 300, source_ips = 16;
  std::string uid_prefix = "u";
  bool sender = false;
  std::string go_file;
  int pause_ms = 1000;
  int timeout_s = 300;
};

double cpu_seconds() {  // this process, user + system
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count(); }

config parse(int argc, char** argv) {
  config c;
  if (argc < 2) fail("usage: cluster_bench hold|unicast ... (see the source)");
  c.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) fail("missing value for " + std::string(a));
      return argv[++i];
    };
    if (a == "--port") c.port = static_cast<unsigned short>(num(value()));
    else if (a == "--port-a") c.port_a = static_cast<unsigned short>(num(value()));
    else if (a == "--port-b") c.port_b = static_cast<unsigned short>(num(value()));
    else if (a == "--sessions") c.sessions = num(value());
    else if (a == "--receivers") c.receivers = num(value());
    else if (a == "--messages") c.messages = num(value());
    else if (a == "--window") c.window = num(value());
    else if (a == "--size") c.size = num(value());
    else if (a == "--handshakes") c.handshakes = num(value());
    else if (a == "--source-ips") c.source_ips = num(value());
    else if (a == "--uid-prefix") c.uid_prefix = value();
    else if (a == "--sender") c.sender = true;
    else if (a == "--go-file") c.go_file = value();
    else if (a == "--pause-ms") c.pause_ms = static_cast<int>(num(value()));
    else if (a == "--timeout") c.timeout_s = static_cast<int>(num(value()));
    else fail("unknown option " + std::string(a));
  }
  if (c.size < 48) c.size = 48;
  return c;
}

// Latencies in ns: all kept (runs here are small enough), quantiles on demand.
struct sample {
  std::vector<std::int64_t> v;
  void add(std::int64_t x) { v.push_back(x); }
  double ms(double q) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return static_cast<double>(v[k]) / 1e6;
  }
  double max_ms() const { return v.empty() ? 0 : static_cast<double>(*std::max_element(v.begin(), v.end())) / 1e6; }
};

// "<seq> <ns> " padded with 'x' to `size`.
std::string payload(std::size_t seq, std::size_t size) {
  std::string p = std::to_string(seq) + " " + std::to_string(now_ns()) + " ";
  p.resize(std::max(size, p.size()), 'x');
  return p;
}

bool parse_payload(std::string_view m, std::size_t& seq, std::int64_t& sent) {
  const char* b = m.data();
  const char* e = b + m.size();
  auto r1 = std::from_chars(b, e, seq);
  if (r1.ec != std::errc{} || r1.ptr == e || *r1.ptr != ' ') return false;
  auto r2 = std::from_chars(r1.ptr + 1, e, sent);
  return r2.ec == std::errc{} && r2.ptr != e && *r2.ptr == ' ';
}

struct bench {
  config cfg;
  asio::io_context io{1};
  std::shared_ptr<const herald::session_options> options;
  std::size_t next_login = 0, logged_in = 0, login_target = 0;
  std::vector<std::string> uids;
  std::vector<session_ptr> sessions;
  std::vector<std::size_t> expected;  // next seq per session
  std::vector<std::size_t> have;      // sessions that have seq k
  std::size_t complete = 0;
  std::uint64_t deliveries = 0;
  double cpu_at_ready = 0;
  sample latency;
  unsigned short login_port = 0;
};

asio::awaitable<session_ptr> open_session(bench& b, unsigned short port, const std::string& uid, std::size_t i) {
  const std::string target = "/";
  auto ws = co_await driver_support::connect_from(port, i, b.cfg.source_ips, target, b.options);
  ws->send(uid);
  auto reply = co_await ws->read();
  if (!reply || reply->text() != "login successful, your uid is " + uid) fail("login of " + uid + " failed");
  co_return ws;
}

// hold mode: session i's reader.
asio::awaitable<void> hold_reader(bench& b, std::size_t i) {
  auto ws = b.sessions[i];
  for (;;) {
    auto m = co_await ws->read();
    if (!m) fail("session " + b.uids[i] + " ended: " + std::to_string(m.status().code) + " " + m.status().reason);
    const std::int64_t t = now_ns();
    std::size_t seq = 0;
    std::int64_t sent = 0;
    if (!parse_payload(m->text(), seq, sent)) fail("corrupt message at " + b.uids[i]);
    if (seq != b.expected[i]) fail(b.uids[i] + ": got seq " + std::to_string(seq) + ", expected " + std::to_string(b.expected[i]));
    ++b.expected[i];
    ++b.deliveries;
    b.latency.add(t - sent);
    if (++b.have[seq] == b.cfg.sessions) {
      std::printf("DONE seq=%zu ms=%.3f\n", seq, static_cast<double>(t - sent) / 1e6);
      std::fflush(stdout);
      if (++b.complete == b.cfg.messages) {
        std::printf("RESULT sessions=%zu broadcasts=%zu deliveries=%llu exactly_once=yes latency_p50_ms=%.3f "
                    "latency_p99_ms=%.3f latency_max_ms=%.3f driver_cpu_ms_per_broadcast=%.1f\n",
                    b.cfg.sessions, b.cfg.messages, static_cast<unsigned long long>(b.deliveries), b.latency.ms(0.5),
                    b.latency.ms(0.99), b.latency.max_ms(),
                    (cpu_seconds() - b.cpu_at_ready) * 1e3 / static_cast<double>(b.cfg.messages));
        std::fflush(stdout);
        std::_Exit(0);
      }
    }
  }
}

asio::awaitable<void> login_worker(bench& b) {
  while (b.next_login < b.cfg.sessions) {
    const std::size_t i = b.next_login++;
    b.sessions[i] = co_await open_session(b, b.cfg.port, b.uids[i], i);
    ++b.logged_in;
  }
}

asio::awaitable<void> run_hold(bench& b) {
  const config& c = b.cfg;
  b.uids.resize(c.sessions);
  for (std::size_t i = 0; i < c.sessions; ++i) b.uids[i] = c.uid_prefix + std::to_string(i);
  b.sessions.resize(c.sessions);
  b.expected.assign(c.sessions, 0);
  b.have.assign(c.messages, 0);
  b.latency.v.reserve(c.sessions * c.messages);
  const auto start = steady::now();
  const std::size_t workers = std::min(c.handshakes, c.sessions);
  for (std::size_t w = 0; w < workers; ++w) asio::co_spawn(b.io, login_worker(b), asio::detached);
  while (b.logged_in < c.sessions) co_await sleep_for(20ms);
  const double login_s = std::chrono::duration<double>(steady::now() - start).count();
  for (std::size_t i = 0; i < c.sessions; ++i) asio::co_spawn(b.io, hold_reader(b, i), asio::detached);
  session_ptr sender;
  if (c.sender) {
    const std::string uid = c.uid_prefix + "sender";
    sender = co_await open_session(b, c.port, uid, c.sessions);
  }
  b.cpu_at_ready = cpu_seconds();
  std::printf("READY sessions=%zu login_s=%.2f\n", c.sessions, login_s);
  std::fflush(stdout);
  if (!sender) co_return;
  while (::access(c.go_file.c_str(), F_OK) != 0) co_await sleep_for(20ms);
  for (std::size_t k = 0; k < c.messages; ++k) {
    sender->send("all:" + payload(k, c.size));
    co_await sleep_for(std::chrono::milliseconds(c.pause_ms));
  }
  for (;;) {  // drain the sender's own copies
    auto m = co_await sender->read();
    if (!m) co_return;
  }
}

// unicast mode
struct unicast_state {
  session_ptr sender;
  std::vector<session_ptr> receivers;
  std::vector<std::size_t> last_seq;  // per receiver, +1
  std::size_t sent = 0, received = 0, in_flight = 0;
  std::size_t probes = 0, probe_round = 0;
  bool measuring = false;
  sample latency;
  steady::time_point first_send, last_receive;
  asio::steady_timer* wake = nullptr;
};

void send_next(bench& b, unicast_state& u) {
  while (u.in_flight < b.cfg.window && u.sent < b.cfg.messages) {
    const std::size_t j = u.sent % u.receivers.size();
    u.sender->send("r" + std::to_string(j) + ":" + payload(u.sent, b.cfg.size));
    ++u.sent;
    ++u.in_flight;
  }
}

asio::awaitable<void> unicast_reader(bench& b, unicast_state& u, std::size_t j) {
  auto ws = u.receivers[j];
  for (;;) {
    auto m = co_await ws->read();
    if (!m) fail("receiver r" + std::to_string(j) + " ended: " + m.status().reason);
    const std::int64_t t = now_ns();
    if (m->text().substr(0, 6) == "probe ") {  // "probe <round>": counts in its own round only
      if (m->text().substr(6) == std::to_string(u.probe_round)) ++u.probes;
      if (u.probes == u.receivers.size()) u.wake->cancel();
      continue;
    }
    std::size_t seq = 0;
    std::int64_t sent = 0;
    if (!parse_payload(m->text(), seq, sent)) fail("corrupt unicast message");
    if (seq % u.receivers.size() != j) fail("message for another receiver");
    if (seq + 1 <= u.last_seq[j]) fail("duplicate or reordered unicast");
    u.last_seq[j] = seq + 1;
    u.latency.add(t - sent);
    ++u.received;
    --u.in_flight;
    u.last_receive = steady::now();
    if (u.received == b.cfg.messages) u.wake->cancel();
    else send_next(b, u);
  }
}

asio::awaitable<void> run_unicast(bench& b) {
  const config& c = b.cfg;
  unicast_state u;
  asio::steady_timer wake(b.io);
  u.wake = &wake;
  for (std::size_t j = 0; j < c.receivers; ++j) {
    const std::string uid = "r" + std::to_string(j);
    u.receivers.push_back(co_await open_session(b, c.port_b, uid, j));
  }
  u.last_seq.assign(c.receivers, 0);
  const std::string sender_uid = "unicast-sender";
  u.sender = co_await open_session(b, c.port_a, sender_uid, c.receivers);
  for (std::size_t j = 0; j < c.receivers; ++j) asio::co_spawn(b.io, unicast_reader(b, u, j), asio::detached);
  // Every receiver's subscription has reached Redis once a probe to each of them arrived.
  const auto probe_deadline = steady::now() + 10s;
  while (u.probes < c.receivers) {
    if (steady::now() > probe_deadline) fail("the receivers' subscriptions did not reach Redis within 10 s");
    u.probes = 0;
    ++u.probe_round;
    for (std::size_t j = 0; j < c.receivers; ++j)
      u.sender->send("r" + std::to_string(j) + ":probe " + std::to_string(u.probe_round));
    wake.expires_after(500ms);
    herald::error_code ec;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  ++u.probe_round;           // late probes of earlier rounds are not counted
  co_await sleep_for(300ms);
  std::printf("READY receivers=%zu\n", c.receivers);
  std::fflush(stdout);
  u.first_send = steady::now();
  send_next(b, u);
  while (u.received < c.messages) {
    wake.expires_after(1s);
    herald::error_code ec;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  const double s = std::chrono::duration<double>(u.last_receive - u.first_send).count();
  std::printf("RESULT unicast messages=%zu receivers=%zu window=%zu size=%zu seconds=%.3f delivered_per_s=%.0f "
              "latency_p50_ms=%.3f latency_p99_ms=%.3f latency_max_ms=%.3f\n",
              c.messages, c.receivers, c.window, c.size, s, static_cast<double>(c.messages) / s, u.latency.ms(0.5),
              u.latency.ms(0.99), u.latency.max_ms());
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  bench b;
  b.cfg = parse(argc, argv);
  b.options = driver_support::client_options();
  if (b.cfg.mode == "hold") {
    if (!b.cfg.port || !b.cfg.sessions) fail("hold needs --port and --sessions");
  } else if (b.cfg.mode == "unicast") {
    if (!b.cfg.port_a || !b.cfg.port_b || !b.cfg.receivers) fail("unicast needs --port-a, --port-b, --receivers");
  } else {
    fail("mode must be hold or unicast");
  }
  driver_support::run(b.io, b.cfg.mode == "hold" ? run_hold(b) : run_unicast(b), b.cfg.timeout_s, [&b] {
    return " (logged in " + std::to_string(b.logged_in) + ", broadcasts complete " + std::to_string(b.complete) + ")";
  });
  return 0;
}
