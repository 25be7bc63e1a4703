// load_client: drives a running server that speaks uid_push_server's protocol (herald's
// example, or a peer in benchmarks/peers/) with many herald client sessions and measures it
// from outside (its RSS and CPU time come from /proc/<server-pid>: the CPU time of all its
// threads from schedstat, to the nanosecond; the user/sys split from stat, in 10 ms ticks).
//
//   load_client --host 127.0.0.1 --port P --sessions N --scenario hold|broadcast|unicast|churn
//               --server-pid PID [--messages M] [--size BYTES] [--window W]
//               [--duration S] [--cycles C]
//               [--timeout S] [--stall-timeout S] [--handshakes H] [--source-ips K]
//               [--syscalls off|perf|strace|auto] [--deflate] [--payload x|json]
//
// Every scenario first connects N sessions (at most H handshakes in flight), each logging
// in as "u<i>" and waiting for "login successful, your uid is u<i>".
//
//   hold       waits 2 s, then reports the server's RSS growth per idle logged-in session.
//   broadcast  one more session (uid "sender") sends M messages "all:<payload>", at most W
//              in flight (a broadcast is done when all N+1 sessions have it). The payload is
//              exactly BYTES bytes: "<seq> <steady_clock ns> " padded with 'x'. Every session
//              checks that it gets every sequence number once, in order, intact.
//   unicast    a closed loop of M messages with W in flight: message s goes from session
//              i = s % N to a peer j != i as "u<j>:<s> <ns> <j> " padded with 'x' to BYTES
//              bytes, and each delivery sends the next message. The receiver checks that it
//              is addressed to itself, intact, and that no sequence number arrives twice; at
//              the end every message must have arrived exactly once.
//   churn      one more session (uid "control") stays; W workers repeat, for --duration
//              seconds or --cycles cycles in all, whichever ends first: connect, handshake,
//              log in with a NEW uid "c<k>", receive the unicast the control session sends
//              to "c<k>" (it must be exactly that message: a session that first gets another
//              uid's message fails the run), then leave: even k with a clean close
//              handshake, odd k abruptly (k % 4 == 1: TCP FIN without a close frame; k % 4 ==
//              3: TCP RST). After each leave the control session sends a "ghost" to the uid
//              that left, which nobody may receive: the N idle sessions and the control
//              session fail the run on any message, and a churn session on anything but its
//              own. At the end a marker the control session sends to itself proves that the
//              server has routed every ghost. Reports cycles/s, server CPU per cycle, and
//              the server's RSS at the start and the end of the phase.
//
// --deflate: every client session offers permessage-deflate (RFC 7692) and the run fails unless
// the server accepts it (uid_push_server --deflate); the client then inflates what it gets.
// (Needs a build with zlib.) --payload json: broadcast payloads are JSON documents of exactly
// BYTES bytes ({"seq":S,"t":NS,"items":[...]} with varied fields, compressible like real ones,
// not like a run of 'x'); every session checks each one byte for byte. The broadcast also
// reports the WebSocket bytes on the wire per delivery (frames as received, headers included).
//
// --syscalls counts the server's syscalls during the measured phase of broadcast, unicast and
// churn (perf stat on the syscalls:sys_enter_* tracepoints; strace -c where perf is missing)
// and reports them per delivery, message or cycle (see syscall_counter).
//
// Against a loopback server the sessions connect from K source addresses 127.0.0.1 ...
// 127.0.0.K (default 16; IP_BIND_ADDRESS_NO_PORT). From a single source address, Linux
// connect() searches the ephemeral port range for a free port, and once half of it is in
// use that search dominates the client's CPU (measured: 70% of the load client's time in
// __inet_hash_connect at 19 000 sessions), so the login rate would measure the client's
// kernel, not the server. --source-ips 1 brings that behaviour back.
//
// One thread, one io_context. Every wait is bounded by --timeout (whole run) and, while
// messages flow, by --stall-timeout (no delivery for that long). Any failure prints FAIL
// with the details and exits 1. The last line is `RESULT key=value ...`.
#include <herald.hpp>
#if HERALD_BENCH_DEFLATE
#include <herald/deflate.hpp>
#endif

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "proc_cpu.hpp"

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using session = herald::ws_session<>;
using session_ptr = std::shared_ptr<session>;
using clock_type = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------- configuration

struct config {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::size_t sessions = 0;
  std::string scenario;
  std::size_t messages = 100;
  std::size_t size = 1024;
  long server_pid = 0;
  std::size_t window = 4;
  int timeout_s = 120;
  int stall_timeout_s = 20;
  std::size_t handshakes = 500;
  std::size_t source_ips = 0;  // 0: 16 for a 127.x server, else 1 (no explicit bind)
  int duration_s = 10;          // churn: how long new cycles start
  std::size_t cycles = 1000000; // churn: at most this many cycles
  std::string syscalls = "off";  // count the server's syscalls: off, perf, strace, auto
  bool deflate = false;          // offer permessage-deflate; fail unless it is agreed
  std::string payload = "x";     // broadcast payloads: x (padded with 'x') or json
};

// "<seq> <ns> " needs at most 10 + 1 + 20 + 1 bytes.
constexpr std::size_t min_payload = 32;
// unicast "<seq> <ns> <dest> " and churn "<k> <ns> c<k> " need at most 10 + 1 + 20 + 1 + 21 + 1.
constexpr std::size_t min_payload_addressed = 56;

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "load_client: %s\n"
               "usage: load_client --host H --port P --sessions N --scenario hold|broadcast|unicast|churn\n"
               "                   --server-pid PID [--messages M (100)] [--size BYTES (1024, >= %zu; unicast,\n"
               "                   churn >= %zu)] [--window W (4)] [--duration SECONDS (churn: 10)]\n"
               "                   [--cycles C (churn: 1000000)] [--timeout SECONDS (120)]\n"
               "                   [--stall-timeout SECONDS (20)] [--handshakes H (500)]\n"
               "                   [--source-ips K (16 for a loopback server, 1..254)]\n"
               "                   [--syscalls off|perf|strace|auto (off)] [--deflate]\n"
               "                   [--payload x|json (x; broadcast)]\n",
               why, min_payload, min_payload_addressed);
  std::exit(2);
}

std::size_t to_size(const std::string& s) {
  std::size_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) usage("expected a non-negative integer");
  return v;
}

config parse_args(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (a == "--host") c.host = value();
    else if (a == "--port") c.port = static_cast<unsigned short>(to_size(value()));
    else if (a == "--sessions") c.sessions = to_size(value());
    else if (a == "--scenario") c.scenario = value();
    else if (a == "--messages") c.messages = to_size(value());
    else if (a == "--size") c.size = to_size(value());
    else if (a == "--server-pid") c.server_pid = static_cast<long>(to_size(value()));
    else if (a == "--window") c.window = to_size(value());
    else if (a == "--timeout") c.timeout_s = static_cast<int>(to_size(value()));
    else if (a == "--stall-timeout") c.stall_timeout_s = static_cast<int>(to_size(value()));
    else if (a == "--handshakes") c.handshakes = to_size(value());
    else if (a == "--source-ips") c.source_ips = to_size(value());
    else if (a == "--duration") c.duration_s = static_cast<int>(to_size(value()));
    else if (a == "--cycles") c.cycles = to_size(value());
    else if (a == "--syscalls") c.syscalls = value();
    else if (a == "--deflate") c.deflate = true;
    else if (a == "--payload") c.payload = value();
    else if (a == "--help" || a == "-h") usage("help");
    else usage("unknown option");
  }
  if (c.port == 0) usage("--port is required");
  if (c.sessions == 0) usage("--sessions must be at least 1");
  if (c.scenario != "hold" && c.scenario != "broadcast" && c.scenario != "unicast" && c.scenario != "churn")
    usage("--scenario takes hold, broadcast, unicast or churn");
  if (c.server_pid <= 0) usage("--server-pid is required");
  if (c.size < min_payload) usage("--size is too small for the sequence number and timestamp");
  if ((c.scenario == "unicast" || c.scenario == "churn") && c.size < min_payload_addressed)
    usage("--size is too small for the sequence number, timestamp and address");
  if (c.duration_s <= 0 || c.cycles == 0) usage("--duration and --cycles must be positive");
  if (c.messages == 0 || c.messages > 0xFFFFFFF0u) usage("--messages out of range");
  if (c.window == 0) usage("--window must be at least 1");
  if (c.handshakes == 0) usage("--handshakes must be at least 1");
  if (c.source_ips > 254) usage("--source-ips takes 1 to 254");
  if (c.timeout_s <= 0 || c.stall_timeout_s <= 0) usage("timeouts must be positive");
  if (c.syscalls != "off" && c.syscalls != "perf" && c.syscalls != "strace" && c.syscalls != "auto")
    usage("--syscalls takes off, perf, strace or auto");
  if (c.payload != "x" && c.payload != "json") usage("--payload takes x or json");
  if (c.payload == "json" && (c.scenario != "broadcast" || c.size < 128)) usage("--payload json is for broadcast, --size >= 128");
#if !HERALD_BENCH_DEFLATE
  if (c.deflate) usage("built without zlib: --deflate is not available (apt-get install zlib1g-dev, then rebuild)");
#endif
  return c;
}

// ---------------------------------------------------------------- /proc and rusage

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool process_alive(long pid) { return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0; }

// A "Vm...:   123 kB" line of /proc/PID/status, in bytes; -1 if unreadable.
long long proc_status_bytes(long pid, std::string_view key) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/status");
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t eol = s.find('\n', pos);
    if (eol == std::string::npos) eol = s.size();
    const std::string_view line(s.data() + pos, eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::size_t p = key.size() + 1;
      while (p < line.size() && (line[p] == ' ' || line[p] == '\t')) ++p;
      long long kb = 0;
      const auto r = std::from_chars(line.data() + p, line.data() + line.size(), kb);
      if (r.ec != std::errc{}) return -1;
      return kb * 1024;
    }
    pos = eol + 1;
  }
  return -1;
}

struct cpu_times {
  double user = 0, sys = 0;
  double run = -1;  // on-CPU time of all threads to the nanosecond (schedstat); -1 if unknown
  double total() const { return user + sys; }
};

// The exact on-CPU time of all threads in seconds (schedstat); -1 if unreadable.
double proc_run_seconds(long pid) {
  const long long ns = bench_proc::on_cpu_ns(pid);
  return ns < 0 ? -1 : static_cast<double>(ns) / 1e9;
}

// utime and stime (fields 14 and 15 of /proc/PID/stat) in seconds, and the exact on-CPU time;
// negative if unreadable.
cpu_times proc_cpu(long pid) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = s.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return {-1, -1};
  std::istringstream in(s.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int n = 3; n <= 15 && (in >> field); ++n) {
    if (n == 14) utime = std::stoull(field);
    if (n == 15) stime = std::stoull(field);
  }
  if (!in) return {-1, -1};
  const auto tck = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {static_cast<double>(utime) / tck, static_cast<double>(stime) / tck, proc_run_seconds(pid)};
}

cpu_times self_cpu() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return {secs(ru.ru_utime), secs(ru.ru_stime)};
}

// Busy and total core-seconds of the whole machine so far (first line of /proc/stat).
struct machine_cpu {
  double busy = 0, total = 0;
};
machine_cpu read_machine_cpu() {
  std::istringstream in(read_file("/proc/stat"));
  std::string label;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  if (!in || label != "cpu") return {};
  const auto tck = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto busy = static_cast<double>(user + nice + system + irq + softirq + steal);
  return {busy / tck, (busy + static_cast<double>(idle + iowait)) / tck};
}

// CPU time of the server, of this process and of the machine at one moment.
struct cpu_snapshot {
  cpu_times server;
  cpu_times client;
  machine_cpu machine;
  static cpu_snapshot take(long server_pid) { return {proc_cpu(server_pid), self_cpu(), read_machine_cpu()}; }
};

// What happened between two snapshots, in core-seconds.
struct cpu_use {
  double server_user = 0, server_sys = 0, client_user = 0, client_sys = 0, machine_busy = 0, machine_total = 0;
  double server_run = -1;  // exact, when schedstat was readable at both ends
  // The server's CPU time: exact where possible; the user/sys split is in 10 ms ticks.
  double server() const { return server_run >= 0 ? server_run : server_user + server_sys; }
  double client() const { return client_user + client_sys; }
  // Everything else the machine did meanwhile (other processes, kernel threads); when this
  // is large the run shared the machine and its numbers are disturbed.
  double others() const { return std::max(0.0, machine_busy - server() - client()); }
  static cpu_use between(const cpu_snapshot& a, const cpu_snapshot& b) {
    return {b.server.user - a.server.user, b.server.sys - a.server.sys, b.client.user - a.client.user,
            b.client.sys - a.client.sys, b.machine.busy - a.machine.busy, b.machine.total - a.machine.total,
            a.server.run >= 0 && b.server.run >= 0 ? b.server.run - a.server.run : -1};
  }
};

// "machine: ..." line; warns when other processes took more than 10% of the machine.
void print_machine(const char* phase, const cpu_use& u) {
  std::printf("machine during %s: %.2f of %.2f core-s busy (server %.2f, load client %.2f, other processes %.2f)\n",
              phase, u.machine_busy, u.machine_total, u.server(), u.client(), u.others());
  if (u.machine_total > 0 && u.others() > 0.10 * u.machine_total)
    std::printf("WARNING: other processes used %.0f%% of the machine during %s; its numbers are disturbed\n",
                100.0 * u.others() / u.machine_total, phase);
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---------------------------------------------------------------- the server's syscalls

// How many syscalls of each kind the server made during the measured phase.
struct syscall_counts {
  std::string tool = "none";  // perf, strace, or none (not counted)
  unsigned long long total = 0;
  std::map<std::string, unsigned long long> by_name;  // perf: those of perf_syscalls only
};

// What perf counts by name; raw_syscalls:sys_enter counts every syscall, so "other" is exact.
// (Not all of syscalls:sys_enter_*: perf takes 15-20 s here to open and to close those 360
// events, and cannot be switched on before it has opened them.)
constexpr const char* perf_syscalls[] = {
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "recvfrom", "recvmsg", "recvmmsg", "read", "readv",
    "sendto", "sendmsg", "sendmmsg", "write", "writev", "accept", "accept4", "close", "shutdown", "setsockopt",
    "getsockopt", "getsockname", "getpeername", "ioctl", "fcntl", "futex", "sched_yield", "timerfd_settime",
    "clock_nanosleep", "nanosleep", "poll", "ppoll", "mmap", "munmap", "mremap", "brk", "madvise", "mprotect",
    "getrandom", "rt_sigprocmask", "io_uring_enter", "eventfd2"};

// The groups of the RESULT line: [field, syscalls]; everything else is "other".
const std::vector<std::pair<const char*, std::vector<std::string_view>>>& syscall_groups() {
  static const std::vector<std::pair<const char*, std::vector<std::string_view>>> groups = {
      {"epoll_wait", {"epoll_wait", "epoll_pwait", "epoll_pwait2"}},
      {"epoll_ctl", {"epoll_ctl"}},
      {"recv", {"recvfrom", "recvmsg", "recvmmsg", "read", "readv"}},
      {"send", {"sendto", "sendmsg", "sendmmsg", "write", "writev"}},
      {"accept", {"accept4", "accept"}},
      {"close", {"close"}},
  };
  return groups;
}

// The RESULT fields sys_*_per_op (n/a when not counted) and a readable line with the detail.
std::string syscall_fields(const syscall_counts& s, double ops, const char* op_name) {
  std::string fields = " syscalls=" + s.tool;
  char buf[96];
  if (s.tool == "none" || ops <= 0) {
    fields += " sys_per_op=n/a";
    for (const auto& g : syscall_groups()) fields += std::string(" sys_") + g.first + "_per_op=n/a";
    fields += " sys_other_per_op=n/a";
    std::printf("server syscalls: not counted\n");
    return fields;
  }
  const unsigned long long total = s.total;
  unsigned long long other = total;
  std::map<std::string, unsigned long long> grouped;
  std::vector<std::pair<unsigned long long, std::string>> others;
  for (const auto& [name, n] : s.by_name) {
    bool found = false;
    for (const auto& g : syscall_groups())
      for (const auto member : g.second)
        if (member == name) grouped[g.first] += n, found = true;
    if (found) other -= std::min(other, n);
    else if (n > 0) others.emplace_back(n, name);
  }
  std::snprintf(buf, sizeof buf, " sys_per_op=%.3f", static_cast<double>(total) / ops);
  fields += buf;
  std::printf("server syscalls (%s) during the phase: %llu = %.3f per %s;", s.tool.c_str(), total,
              static_cast<double>(total) / ops, op_name);
  for (const auto& g : syscall_groups()) {
    const double per = static_cast<double>(grouped[g.first]) / ops;
    std::snprintf(buf, sizeof buf, " sys_%s_per_op=%.3f", g.first, per);
    fields += buf;
    std::printf(" %s %.3f", g.first, per);
  }
  std::snprintf(buf, sizeof buf, " sys_other_per_op=%.3f", static_cast<double>(other) / ops);
  fields += buf;
  std::printf(" other %.3f\n", static_cast<double>(other) / ops);
  std::sort(others.rbegin(), others.rend());
  if (other > 0) {
    std::printf("server syscalls, other (%llu):", other);
    unsigned long long named = 0;
    for (std::size_t i = 0; i < others.size(); ++i) {
      named += others[i].first;
      if (i < 8) std::printf(" %s %llu", others[i].second.c_str(), others[i].first);
    }
    if (named < other) std::printf(" (not named: %llu)", other - named);
    std::printf("\n");
  }
  std::printf("server syscalls by name:");
  for (const auto& [name, n] : s.by_name)
    if (n > 0) std::printf(" %s=%llu", name.c_str(), n);
  std::printf("\n");
  return fields;
}

// Counts the server's syscalls during exactly the measured phase.
//   perf    perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_<perf_syscalls> -p PID
//           (every thread of the server), started before the login with its counters off
//           (-D -1) and switched on and off through its control FIFOs, so that neither its
//           start-up nor the login is counted.
//   strace  strace -c -f -p PID attached at the start of the phase (ptrace stops the server
//           at every syscall: its CPU figures are then much too high; only where perf is missing).
//   auto    perf where it is on PATH, else strace, else none.
class syscall_counter {
 public:
  syscall_counter(std::string mode, long pid) : mode_(std::move(mode)), pid_(pid) {}
  syscall_counter(const syscall_counter&) = delete;
  syscall_counter& operator=(const syscall_counter&) = delete;
  ~syscall_counter() {
    stop_child();
    if (ctl_ >= 0) ::close(ctl_);
    if (ack_ >= 0) ::close(ack_);
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  // Before the login: picks the tool, and starts perf with its counters off.
  void prepare() {
    if (mode_ == "off") return;
    if (mode_ == "auto") mode_ = on_path("perf") ? "perf" : on_path("strace") ? "strace" : "off";
    if (mode_ == "off") return;
    char tmpl[] = "/tmp/load_client_syscalls.XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return give_up("mkdtemp failed");
    dir_ = tmpl;
    if (mode_ != "perf") return;
    const std::string ctl = dir_ + "/ctl", ack = dir_ + "/ack";
    if (::mkfifo(ctl.c_str(), 0600) != 0 || ::mkfifo(ack.c_str(), 0600) != 0) return give_up("mkfifo failed");
    // Read-write on our side: neither open blocks, whenever perf opens its ends.
    ctl_ = ::open(ctl.c_str(), O_RDWR | O_CLOEXEC);
    ack_ = ::open(ack.c_str(), O_RDWR | O_CLOEXEC);
    if (ctl_ < 0 || ack_ < 0) return give_up("cannot open the FIFOs");
    std::string events = "raw_syscalls:sys_enter";
    for (const char* name : perf_syscalls) events += std::string(",syscalls:sys_enter_") + name;
    spawn({"perf", "stat", "-e", events, "-p", std::to_string(pid_), "-x", ",", "-o", dir_ + "/out", "-D", "-1",
           "--control", "fifo:" + ctl + "," + ack});
  }

  // At the start of the measured phase.
  void begin() {
    if (mode_ == "perf") {
      if (!command("enable")) give_up("perf did not acknowledge 'enable'");
    } else if (mode_ == "strace") {
      spawn({"strace", "-c", "-f", "-q", "-o", dir_ + "/out", "-p", std::to_string(pid_)});
      ::usleep(500000);  // ptrace attaches to every thread; give it time before the phase
    }
  }

  // At the end of the measured phase: stops counting and reads the counts.
  syscall_counts end() {
    syscall_counts r;
    if (mode_ == "off" || child_ < 0) return r;
    if (mode_ == "perf" && !command("disable")) {
      give_up("perf did not acknowledge 'disable'");
      return r;
    }
    if (!stop_child()) return r;
    std::istringstream in(read_file(dir_ + "/out"));
    std::string line;
    const std::string_view prefix = "syscalls:sys_enter_", all = "raw_syscalls:sys_enter";
    while (std::getline(in, line)) {
      if (mode_ == "perf") {  // count,unit,event,...
        const auto c1 = line.find(',');
        const auto c2 = c1 == std::string::npos ? c1 : line.find(',', c1 + 1);
        const auto c3 = c2 == std::string::npos ? c2 : line.find(',', c2 + 1);
        if (line.empty() || line[0] == '#' || c3 == std::string::npos) continue;
        const std::string_view event(line.data() + c2 + 1, c3 - c2 - 1);
        unsigned long long n = 0;
        std::from_chars(line.data(), line.data() + c1, n);  // "<not counted>" stays 0
        if (event == all) r.total += n;
        else if (event.substr(0, prefix.size()) == prefix) r.by_name[std::string(event.substr(prefix.size()))] += n;
      } else {  // % time, seconds, usecs/call, calls, [errors], syscall
        std::istringstream row(line);
        std::vector<std::string> t;
        for (std::string w; row >> w;) t.push_back(w);
        if (t.size() < 5 || t.back() == "total" || !std::isdigit(static_cast<unsigned char>(t[0][0]))) continue;
        const unsigned long long n = std::strtoull(t[3].c_str(), nullptr, 10);
        r.by_name[t.back()] += n;
        r.total += n;
      }
    }
    r.tool = mode_;
    return r;
  }

 private:
  static bool on_path(const char* tool) {
    return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
  }

  void give_up(const std::string& why) {
    std::printf("WARNING: syscall counting (%s) off: %s\n", mode_.c_str(), why.c_str());
    stop_child();
    mode_ = "off";
  }

  void spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_addopen(&fa, 2, (dir_ + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return give_up(std::string("cannot start ") + argv[0] + ": " + std::strerror(rc));
    child_ = pid;
  }

  // Writes a perf control command and waits (up to 30 s: perf may still be opening its
  // events) for its "ack".
  bool command(const char* what) {
    const std::string cmd = std::string(what) + "\n";
    if (::write(ctl_, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) return false;
    std::string got;
    const auto deadline = clock_type::now() + 30s;
    while (got.find('\n') == std::string::npos && clock_type::now() < deadline) {
      if (::waitpid(child_, nullptr, WNOHANG) == child_) {
        child_ = -1;
        std::printf("perf ended early: %s\n", read_file(dir_ + "/stderr").c_str());
        return false;
      }
      pollfd p{ack_, POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) {
        char buf[64];
        const ssize_t n = ::read(ack_, buf, sizeof buf);
        if (n > 0) got.append(buf, static_cast<std::size_t>(n));
      }
    }
    return got.rfind("ack", 0) == 0;
  }

  // SIGINT makes perf and strace write their counts and exit; true if it did within 10 s.
  bool stop_child() {
    if (child_ < 0) return false;
    ::kill(child_, SIGINT);
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 100 && !exited; ++i) {
      if (::waitpid(child_, &status, WNOHANG) == child_) exited = true;
      else ::usleep(100000);
    }
    if (!exited) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, &status, 0);
      std::printf("WARNING: %s did not exit within 10 s of SIGINT (killed); syscalls not counted\n", mode_.c_str());
    }
    child_ = -1;
    return exited;
  }

  std::string mode_;
  long pid_;
  std::string dir_;
  int ctl_ = -1, ack_ = -1;
  pid_t child_ = -1;
};

// ---------------------------------------------------------------- latency sample

// Every value while it fits, then a uniform reservoir (Algorithm R); exact count, max, mean.
class sample {
 public:
  explicit sample(std::size_t capacity) : capacity_(capacity) {}
  void reserve(std::size_t n) { values_.reserve(std::min(n, capacity_)); }
  void add(std::int64_t v) {
    ++count_;
    sum_ += static_cast<double>(v);
    max_ = std::max(max_, v);
    if (values_.size() < capacity_) {
      values_.push_back(v);
    } else {
      std::uniform_int_distribution<std::uint64_t> pick(0, count_ - 1);
      const auto j = pick(rng_);
      if (j < capacity_) values_[j] = v;
    }
  }
  std::uint64_t count() const { return count_; }
  std::size_t kept() const { return values_.size(); }
  std::int64_t max() const { return max_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }
  // Quantile q in [0, 1] of the kept values (reorders them).
  std::int64_t quantile(double q) {
    if (values_.empty()) return 0;
    auto k = static_cast<std::size_t>(q * static_cast<double>(values_.size() - 1) + 0.5);
    std::nth_element(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(k), values_.end());
    return values_[k];
  }

 private:
  std::size_t capacity_;
  std::vector<std::int64_t> values_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
  std::int64_t max_ = 0;
  std::mt19937_64 rng_{12345};
};

std::string ms(double ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f ms", ns / 1e6);
  return buf;
}

// ---------------------------------------------------------------- JSON payloads

// A JSON document of exactly `size` bytes (>= 128) for broadcast `seq` sent at `ns`: items with
// ids, names, prices and tags drawn from a generator seeded by seq, then a pad to the size.
std::string json_payload(std::size_t seq, long long ns, std::size_t size) {
  static constexpr const char* sides[] = {"buy", "sell"};
  static constexpr const char* tags[] = {"eu", "us", "asia", "hot", "new", "sale", "vip", "beta"};
  std::uint64_t x = 0x9E3779B97F4A7C15ull * (seq + 1);
  auto rnd = [&x](std::uint64_t n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x % n;
  };
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "{\"seq\":%zu,\"t\":%lld,\"items\":[", seq, ns);
  std::string doc(buf, static_cast<std::size_t>(n));
  const std::size_t tail = std::strlen("],\"pad\":\"\"}");
  for (bool first = true;; first = false) {
    n = std::snprintf(buf, sizeof buf,
                      "%s{\"id\":%llu,\"user\":\"user%llu\",\"price\":%llu.%02llu,\"qty\":%llu,\"side\":\"%s\","
                      "\"tags\":[\"%s\",\"%s\"]}",
                      first ? "" : ",", static_cast<unsigned long long>(rnd(10000000)),
                      static_cast<unsigned long long>(rnd(100000)), static_cast<unsigned long long>(rnd(5000)),
                      static_cast<unsigned long long>(rnd(100)), static_cast<unsigned long long>(1 + rnd(500)),
                      sides[rnd(2)], tags[rnd(8)], tags[rnd(8)]);
    if (doc.size() + static_cast<std::size_t>(n) + tail > size) break;
    doc.append(buf, static_cast<std::size_t>(n));
  }
  doc += "],\"pad\":\"";
  doc.append(size - doc.size() - 2, ' ');
  doc += "\"}";
  return doc;
}

// ---------------------------------------------------------------- the run

enum class phase { start, login, hold, broadcast, unicast, churn, done };

const char* phase_name(phase p) {
  switch (p) {
    case phase::start: return "start";
    case phase::login: return "login";
    case phase::hold: return "hold";
    case phase::broadcast: return "broadcast";
    case phase::unicast: return "unicast";
    case phase::churn: return "churn";
    case phase::done: return "done";
  }
  return "?";
}

// Phases during which the logged-in sessions must stay connected.
bool steady_phase(phase p) { return p == phase::hold || p == phase::broadcast || p == phase::unicast || p == phase::churn; }

// What one churn worker is doing, for the diagnosis of a cycle that hangs.
struct churn_slot {
  bool busy = false;
  std::uint64_t k = 0;
  const char* step = "";
  clock_type::time_point since;
};

struct peer {
  std::uint32_t expected = 0;  // next sequence number
  std::uint32_t received = 0;  // valid broadcast messages received
  bool logged_in = false;
  bool ended = false;
  herald::close_status end;
};

struct bench {
  config cfg;
  asio::io_context io{1};
  std::shared_ptr<const herald::session_options> options;
  tcp::endpoint endpoint;
  std::size_t total = 0;  // sessions to log in: N, plus the sender (broadcast) or control (churn)
  std::vector<session_ptr> sessions;
  std::vector<peer> peers;
  phase ph = phase::start;

  // Wakes the controller coroutine; it re-checks its condition after every wake-up.
  asio::steady_timer wake{io};
  void notify() { wake.cancel(); }

  // login
  std::size_t next_login = 0;
  std::size_t logged_in = 0;
  std::size_t login_failed = 0;
  std::vector<std::string> login_failures;  // first few
  sample login_latency{1u << 20};

  // broadcast
  std::vector<std::string> sent_json;    // --payload json: what was sent as each sequence number
  std::vector<std::uint32_t> seq_count;  // sessions that have each sequence number
  std::size_t completed = 0;             // sequence numbers every session has
  std::uint64_t deliveries = 0;
  std::uint64_t errors = 0;
  std::vector<std::string> error_samples;
  sample latency{4u << 20};
  clock_type::time_point last_delivery;

  // unicast
  std::vector<std::uint8_t> uni_got;  // per sequence number: delivered
  std::size_t uni_next = 0;           // next sequence number to send
  std::string uni_frame;

  // churn
  session_ptr control;
  std::uint64_t churn_next = 0;    // next cycle number k
  std::uint64_t cycles_done = 0;   // complete cycles
  std::uint64_t churn_clean = 0, churn_fin = 0, churn_rst = 0, ghosts_sent = 0;
  std::size_t churn_running = 0;   // workers still running
  clock_type::time_point churn_deadline;
  std::vector<churn_slot> churn_slots;
  bool expect_marker = false, marker_received = false;
  sample cycle_latency{1u << 20};
  sample close_latency{1u << 20};  // clean closes: close() until the connection has ended

  std::unique_ptr<syscall_counter> sys;  // the server's syscalls during the measured phase

  std::size_t ended_in_phase = 0;
  bool failing = false;
  std::string fail_reason;

  std::string uid_of(std::size_t i) const {
    if (cfg.scenario == "broadcast" && i == cfg.sessions) return "sender";
    if (cfg.scenario == "churn" && i == cfg.sessions) return "control";
    std::string uid = "u";  // (not "u" + to_string: g++ 12 warns falsely, -Wrestrict)
    uid += std::to_string(i);
    return uid;
  }

  void error(std::string what) {
    ++errors;
    if (error_samples.size() < 20) error_samples.push_back(std::move(what));
  }

  // Marks the run as failed; the monitor prints the details and exits (after a short grace,
  // so simultaneous failures are reported together).
  void fail(std::string why) {
    if (failing) return;
    failing = true;
    fail_reason = std::move(why);
  }

  void on_login_failure(std::size_t i, std::string why) {
    ++login_failed;
    if (login_failures.size() < 10) login_failures.push_back(uid_of(i) + ": " + why);
    notify();
  }

  void on_message(std::size_t i, std::string_view m) {
    if (cfg.scenario == "unicast") return on_unicast(i, m);
    if (cfg.scenario == "churn") return on_churn_message(i, m);
    const std::int64_t t = now_ns();
    if (ph != phase::broadcast) {
      error(uid_of(i) + ": unexpected message in phase " + phase_name(ph) + ": '" +
            std::string(m.substr(0, 80)) + "'");
      return;
    }
    if (cfg.payload == "json") return on_json_broadcast(i, m, t);
    peer& p = peers[i];
    if (m.size() != cfg.size) {
      error(uid_of(i) + ": message of " + std::to_string(m.size()) + " bytes, expected " + std::to_string(cfg.size) +
            " (after seq " + std::to_string(p.expected) + "): '" + std::string(m.substr(0, 40)) + "...'");
      return;
    }
    std::uint32_t seq = 0;
    std::int64_t sent = 0;
    const char* b = m.data();
    const char* e = b + m.size();
    auto r1 = std::from_chars(b, e, seq);
    bool ok = r1.ec == std::errc{} && r1.ptr < e && *r1.ptr == ' ';
    const char* q = ok ? r1.ptr + 1 : e;
    auto r2 = std::from_chars(q, e, sent);
    ok = ok && r2.ec == std::errc{} && r2.ptr < e && *r2.ptr == ' ';
    if (ok) {
      for (const char* c = r2.ptr + 1; c < e; ++c) {
        if (*c != 'x') {
          ok = false;
          break;
        }
      }
    }
    if (!ok) {
      error(uid_of(i) + ": corrupt payload (after seq " + std::to_string(p.expected) + "): '" +
            std::string(m.substr(0, 60)) + "...'");
      return;
    }
    if (seq >= cfg.messages) {
      error(uid_of(i) + ": sequence number " + std::to_string(seq) + " was never sent");
      return;
    }
    if (seq != p.expected) {
      if (seq < p.expected) {
        error(uid_of(i) + ": seq " + std::to_string(seq) + " again or out of order (expected " +
              std::to_string(p.expected) + ")");
        return;  // not counted a second time
      }
      error(uid_of(i) + ": seq " + std::to_string(seq) + " arrived, expected " + std::to_string(p.expected) +
            " (missing " + std::to_string(seq - p.expected) + ")");
    }
    delivered(i, seq, sent, t);
  }

  // --payload json: {"seq":S,"t":NS,... exactly as sent.
  void on_json_broadcast(std::size_t i, std::string_view m, std::int64_t t) {
    peer& p = peers[i];
    constexpr std::string_view head = "{\"seq\":";
    std::uint32_t seq = 0;
    std::int64_t sent = 0;
    const char* e = m.data() + m.size();
    auto r1 = std::from_chars(m.data() + std::min(head.size(), m.size()), e, seq);
    bool ok = m.substr(0, head.size()) == head && r1.ec == std::errc{} && seq < sent_json.size() && e - r1.ptr > 5 &&
              std::string_view(r1.ptr, 5) == ",\"t\":";
    auto r2 = std::from_chars(ok ? r1.ptr + 5 : e, e, sent);
    ok = ok && r2.ec == std::errc{} && m == sent_json[seq];
    if (!ok) {
      error(uid_of(i) + ": a JSON broadcast of " + std::to_string(m.size()) + " bytes is not what was sent (after seq " +
            std::to_string(p.expected) + "): '" + std::string(m.substr(0, 60)) + "...'");
      return;
    }
    if (seq != p.expected) {
      if (seq < p.expected) {
        error(uid_of(i) + ": seq " + std::to_string(seq) + " again or out of order (expected " + std::to_string(p.expected) + ")");
        return;
      }
      error(uid_of(i) + ": seq " + std::to_string(seq) + " arrived, expected " + std::to_string(p.expected));
    }
    delivered(i, seq, sent, t);
  }

  // A verified broadcast delivery of `seq` to session i.
  void delivered(std::size_t i, std::uint32_t seq, std::int64_t sent, std::int64_t t) {
    peer& p = peers[i];
    p.expected = seq + 1;
    ++p.received;
    ++deliveries;
    latency.add(t - sent);
    last_delivery = clock_type::time_point(
        std::chrono::duration_cast<clock_type::duration>(std::chrono::nanoseconds(t)));
    if (++seq_count[seq] == total) {
      while (completed < cfg.messages && seq_count[completed] == total) ++completed;
      notify();
    }
  }

  // unicast: "<seq> <ns> <dest> xxx..." addressed to u<dest>, which must be this session.
  void on_unicast(std::size_t i, std::string_view m) {
    const std::int64_t t = now_ns();
    if (ph != phase::unicast) {
      error(uid_of(i) + ": unexpected message in phase " + phase_name(ph) + ": '" + std::string(m.substr(0, 80)) + "'");
      return fail("a message arrived outside the unicast phase");
    }
    std::uint64_t seq = 0, dest = 0;
    std::int64_t sent = 0;
    const char* b = m.data();
    const char* e = b + m.size();
    auto r1 = std::from_chars(b, e, seq);
    bool ok = m.size() == cfg.size && r1.ec == std::errc{} && r1.ptr < e && *r1.ptr == ' ';
    auto r2 = std::from_chars(ok ? r1.ptr + 1 : e, e, sent);
    ok = ok && r2.ec == std::errc{} && r2.ptr < e && *r2.ptr == ' ';
    auto r3 = std::from_chars(ok ? r2.ptr + 1 : e, e, dest);
    ok = ok && r3.ec == std::errc{} && r3.ptr < e && *r3.ptr == ' ';
    for (const char* c = ok ? r3.ptr + 1 : e; ok && c < e; ++c) ok = *c == 'x';
    if (!ok) {
      error(uid_of(i) + ": corrupt unicast of " + std::to_string(m.size()) + " bytes: '" + std::string(m.substr(0, 60)) +
            "...'");
      return fail("unicast verification failed: corrupt message");
    }
    if (dest != i) {
      error(uid_of(i) + ": received seq " + std::to_string(seq) + " addressed to u" + std::to_string(dest));
      return fail("unicast verification failed: a message reached the wrong uid");
    }
    if (seq >= uni_next) {
      error(uid_of(i) + ": seq " + std::to_string(seq) + " was never sent");
      return fail("unicast verification failed: unknown sequence number");
    }
    if (uni_got[seq]) {
      error(uid_of(i) + ": seq " + std::to_string(seq) + " arrived twice");
      return fail("unicast verification failed: a message arrived twice");
    }
    uni_got[seq] = 1;
    ++peers[i].received;
    ++deliveries;
    latency.add(t - sent);
    last_delivery = clock_type::time_point(std::chrono::duration_cast<clock_type::duration>(std::chrono::nanoseconds(t)));
    if (deliveries == cfg.messages) notify();
    send_next_unicast();  // closed loop: every delivery lets the next message go
  }

  // Sends sequence number uni_next from session seq % N to a peer (never itself when N > 1).
  void send_next_unicast() {
    if (uni_next >= cfg.messages || failing) return;
    const std::size_t seq = uni_next++;
    const std::size_t n = cfg.sessions;
    const std::size_t from = seq % n;
    const std::size_t to = n == 1 ? 0 : (from + 1 + (seq / n) % (n - 1)) % n;
    char head[min_payload_addressed + 1];
    const int len = std::snprintf(head, sizeof head, "%zu %lld %zu ", seq, static_cast<long long>(now_ns()), to);
    uni_frame.assign(uid_of(to));
    uni_frame += ':';
    uni_frame.append(head, static_cast<std::size_t>(len));
    uni_frame.append(cfg.size - static_cast<std::size_t>(len), 'x');
    const auto r = sessions[from]->send(std::string_view(uni_frame));
    if (r != herald::send_result::queued)
      fail(uid_of(from) + "'s send() of seq " + std::to_string(seq) + " returned " + std::to_string(static_cast<int>(r)));
  }

  // churn: the idle sessions and the control session receive nothing but the final marker.
  void on_churn_message(std::size_t i, std::string_view m) {
    if (i == cfg.sessions && expect_marker && m == "churn-end-marker") {
      marker_received = true;
      notify();
      return;
    }
    error(uid_of(i) + ": received '" + std::string(m.substr(0, 80)) + "' in phase " + phase_name(ph) +
          (m.substr(0, 6) == "ghost " ? " (a message to a uid that had left)" : ""));
    fail("churn verification failed: a session received a message that was not addressed to it");
  }

  void on_end(std::size_t i, const herald::close_status& why) {
    peer& p = peers[i];
    p.ended = true;
    p.end = why;
    if (steady_phase(ph)) {
      ++ended_in_phase;
      fail("session " + uid_of(i) + " ended during the " + phase_name(ph) + " phase: " + std::to_string(why.code) +
           " '" + why.reason + "'");
    } else if (ph == phase::login && p.logged_in) {
      ++ended_in_phase;
      fail("session " + uid_of(i) + " ended after logging in: " + std::to_string(why.code) + " '" + why.reason + "'");
    }
  }

  [[noreturn]] void exit_with_failure() {
    sys.reset();  // stops perf or strace
    std::printf("FAIL: %s\n", fail_reason.c_str());
    std::printf("  phase: %s; logged in %zu of %zu, login failures %zu\n", phase_name(ph), logged_in, total,
                login_failed);
    for (const auto& f : login_failures) std::printf("    login failure: %s\n", f.c_str());
    std::map<std::string, std::size_t> ends;
    for (std::size_t i = 0; i < peers.size(); ++i)
      if (peers[i].ended) ++ends[std::to_string(peers[i].end.code) + " '" + peers[i].end.reason + "'"];
    for (const auto& [why, n] : ends) std::printf("  sessions ended with %s: %zu\n", why.c_str(), n);
    if (cfg.scenario == "broadcast") {
      std::size_t short_sessions = 0;
      std::uint32_t lo = 0xFFFFFFFFu, hi = 0;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        lo = std::min(lo, peers[i].received);
        hi = std::max(hi, peers[i].received);
        if (peers[i].received < cfg.messages) ++short_sessions;
      }
      std::printf("  broadcasts completed (every session has it): %zu of %zu; deliveries %llu of %llu\n", completed,
                  cfg.messages, static_cast<unsigned long long>(deliveries),
                  static_cast<unsigned long long>(cfg.messages) * total);
      std::printf("  per-session received: min %u max %u; sessions with fewer than %zu: %zu\n", lo, hi, cfg.messages,
                  short_sessions);
      std::size_t shown = 0;  // the sessions furthest behind
      for (std::size_t i = 0; i < peers.size() && shown < 10; ++i) {
        if (peers[i].received == lo && lo < cfg.messages) {
          std::printf("    %s: received %u, next expected seq %u%s\n", uid_of(i).c_str(), peers[i].received,
                      peers[i].expected, peers[i].ended ? " (ended)" : "");
          ++shown;
        }
      }
      if (completed < cfg.messages && completed < seq_count.size())
        std::printf("  seq %zu reached %u of %zu sessions\n", completed, seq_count[completed], total);
      if (ph == phase::broadcast)
        std::printf("  last delivery %.3f s ago\n", seconds_between(last_delivery, clock_type::now()));
    }
    if (cfg.scenario == "unicast") {
      std::printf("  unicast: sent %zu of %zu, delivered %llu\n", uni_next, cfg.messages,
                  static_cast<unsigned long long>(deliveries));
      std::size_t shown = 0, missing = 0;
      for (std::size_t s = 0; s < uni_next && s < uni_got.size(); ++s) {
        if (uni_got[s]) continue;
        ++missing;
        if (shown++ < 10) {
          const std::size_t n = cfg.sessions, from = s % n, to = n == 1 ? 0 : (from + 1 + (s / n) % (n - 1)) % n;
          std::printf("    not delivered: seq %zu from %s to %s\n", s, uid_of(from).c_str(), uid_of(to).c_str());
        }
      }
      std::printf("  sent but not delivered: %zu\n", missing);
      if (ph == phase::unicast)
        std::printf("  last delivery %.3f s ago\n", seconds_between(last_delivery, clock_type::now()));
    }
    if (cfg.scenario == "churn") {
      std::printf("  churn: %llu cycles complete, %llu started (clean %llu, FIN %llu, RST %llu), %llu ghosts sent, "
                  "%zu workers running%s\n",
                  static_cast<unsigned long long>(cycles_done), static_cast<unsigned long long>(churn_next),
                  static_cast<unsigned long long>(churn_clean), static_cast<unsigned long long>(churn_fin),
                  static_cast<unsigned long long>(churn_rst), static_cast<unsigned long long>(ghosts_sent),
                  churn_running, expect_marker && !marker_received ? "; the end marker has not come back" : "");
      const auto now = clock_type::now();
      for (const auto& sl : churn_slots)
        if (sl.busy)
          std::printf("    c%llu: %s for %.3f s\n", static_cast<unsigned long long>(sl.k), sl.step,
                      seconds_between(sl.since, now));
    }
    std::printf("  verification errors: %llu\n", static_cast<unsigned long long>(errors));
    for (const auto& e : error_samples) std::printf("    %s\n", e.c_str());
    std::printf("  server pid %ld %s\n", cfg.server_pid, process_alive(cfg.server_pid) ? "is alive" : "is GONE");
    std::printf("RESULT scenario=%s status=FAIL phase=%s sessions=%zu logged_in=%zu login_failures=%zu completed=%zu "
                "deliveries=%llu errors=%llu ended=%zu cycles=%llu\n",
                cfg.scenario.c_str(), phase_name(ph), cfg.sessions, logged_in, login_failed, completed,
                static_cast<unsigned long long>(deliveries), static_cast<unsigned long long>(errors), ended_in_phase,
                static_cast<unsigned long long>(cycles_done));
    std::fflush(stdout);
    std::_Exit(1);  // leave the sockets to the kernel
  }
};

void report_exception(bench& b, const char* where, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    b.fail(std::string("exception in ") + where + ": " + ex.what());
  } catch (...) {
    b.fail(std::string("unknown exception in ") + where);
  }
}

// Reads until the session ends; every message is checked by bench::on_message.
asio::awaitable<void> reader(bench& b, std::size_t i, session_ptr ws) {
  for (;;) {
    auto m = co_await ws->read();
    if (!m) {
      b.on_end(i, m.status());
      co_return;
    }
    b.on_message(i, m->text());
  }
}

// With K > 1 source addresses, opens the socket bound to 127.0.0.(1 + i % K); the port is
// chosen at connect() for the whole 4-tuple.
void bind_source(bench& b, tcp::socket& socket, std::uint64_t i, herald::error_code& ec) {
  if (b.cfg.source_ips <= 1) return;
  socket.open(tcp::v4(), ec);
  int one = 1;
  if (!ec && ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0)
    ec = herald::error_code(errno, asio::error::get_system_category());
  const asio::ip::address_v4 source(0x7F000001u + static_cast<std::uint32_t>(i % b.cfg.source_ips));
  if (!ec) socket.bind(tcp::endpoint(source, 0), ec);
}

// Connects session i, logs it in and starts its reader.
asio::awaitable<void> login_one(bench& b, std::size_t i) {
  const auto started = clock_type::now();
  auto ex = co_await asio::this_coro::executor;
  tcp::socket socket(ex);
  herald::error_code ec;
  bind_source(b, socket, i, ec);
  if (ec) {
    b.on_login_failure(i, "bind to a source address: " + ec.message());
    co_return;
  }
  co_await socket.async_connect(b.endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    b.on_login_failure(i, "connect: " + ec.message());
    co_return;
  }
  herald::close_status why;
  auto ws = co_await session::connect(std::move(socket), b.cfg.host, "/", b.options, &why);
  if (!ws) {
    b.on_login_failure(i, "websocket handshake: " + std::to_string(why.code) + " " + why.reason);
    co_return;
  }
  if (b.cfg.deflate && !ws->deflate_negotiated()) {
    b.on_login_failure(i, "the server declined permessage-deflate (--deflate)");
    co_return;
  }
  const std::string uid = b.uid_of(i);
  ws->send(uid);
  auto reply = co_await ws->read();
  if (!reply) {
    b.on_login_failure(i, "no login reply: " + std::to_string(reply.status().code) + " " + reply.status().reason);
    co_return;
  }
  const std::string expected = "login successful, your uid is " + uid;
  if (reply->text() != expected) {
    b.on_login_failure(i, "login reply '" + std::string(reply->text().substr(0, 100)) + "'");
    co_return;
  }
  b.login_latency.add(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - started).count());
  b.sessions[i] = ws;
  b.peers[i].logged_in = true;
  ++b.logged_in;
  asio::co_spawn(ex, reader(b, i, ws), [&b](std::exception_ptr e) { report_exception(b, "reader", e); });
  b.notify();
}

// One of cfg.handshakes workers: logs sessions in one after another, so that at most that
// many handshakes are in flight.
asio::awaitable<void> login_worker(bench& b) {
  while (b.next_login < b.total && !b.failing) {
    const std::size_t i = b.next_login++;
    co_await login_one(b, i);
  }
}

// One churn cycle k on worker slot w; any deviation fails the run.
asio::awaitable<void> churn_one(bench& b, churn_slot& slot, std::uint64_t k) {
  const auto started = clock_type::now();
  slot = {true, k, "connect", started};
  auto step = [&](const char* what) {
    slot.step = what;
    slot.since = clock_type::now();
  };
  std::string uid = "c";
  uid += std::to_string(k);
  auto ex = co_await asio::this_coro::executor;
  tcp::socket socket(ex);
  herald::error_code ec;
  bind_source(b, socket, k, ec);
  if (!ec) co_await socket.async_connect(b.endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return b.fail(uid + ": connect: " + ec.message());
  step("websocket handshake");
  herald::close_status why;
  auto ws = co_await session::connect(std::move(socket), b.cfg.host, "/", b.options, &why);
  if (!ws) co_return b.fail(uid + ": websocket handshake: " + std::to_string(why.code) + " " + why.reason);
  step("login reply");
  ws->send(uid);
  auto reply = co_await ws->read();
  if (!reply)
    co_return b.fail(uid + ": no login reply: " + std::to_string(reply.status().code) + " " + reply.status().reason);
  if (reply->text() != "login successful, your uid is " + uid)
    co_return b.fail(uid + ": login reply '" + std::string(reply->text().substr(0, 100)) + "'");

  // The control session sends this uid one message; it must be the first and only one here.
  step("its unicast from the control session");
  char head[min_payload_addressed + 1];
  const int n = std::snprintf(head, sizeof head, "%llu %lld %s ", static_cast<unsigned long long>(k),
                              static_cast<long long>(now_ns()), uid.c_str());
  std::string payload(head, static_cast<std::size_t>(n));
  payload.append(b.cfg.size - payload.size(), 'x');
  if (b.control->send(uid + ":" + payload) != herald::send_result::queued)
    co_return b.fail("the control session could not send to " + uid);
  auto m = co_await ws->read();
  if (!m)
    co_return b.fail(uid + ": ended before its unicast arrived: " + std::to_string(m.status().code) + " " +
                     m.status().reason);
  if (m->text() != payload) {
    b.error(uid + ": first message after login was '" + std::string(m->text().substr(0, 60)) + "', expected '" +
            payload.substr(0, 40) + "...'" +
            (m->text().substr(0, 6) == "ghost " ? " (a message to a uid that had left)" : ""));
    co_return b.fail("churn verification failed: a new session received a message not addressed to it");
  }

  // Leave: clean close handshake, or the TCP connection dropped without a close frame.
  if (k % 2 == 0) {
    step("clean close");
    const auto close_start = clock_type::now();
    ws->close(herald::ws::close_code::normal, "");
    auto end = co_await ws->read();
    if (end) co_return b.fail(uid + ": a message after its close: '" + std::string(end->text().substr(0, 60)) + "'");
    const auto close_time = clock_type::now() - close_start;
    if (close_time >= b.options->close_timeout - 1s)
      co_return b.fail(uid + ": the server did not answer the close frame (" +
                       std::to_string(seconds_between(close_start, clock_type::now())) + " s)");
    b.close_latency.add(std::chrono::duration_cast<std::chrono::nanoseconds>(close_time).count());
    ++b.churn_clean;
  } else {
    const bool reset = k % 4 == 3;  // RST: SO_LINGER with a zero timeout
    if (reset) ++b.churn_rst;
    else ++b.churn_fin;
    ws->drop(reset);
  }
  ws.reset();
  b.cycle_latency.add(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - started).count());
  ++b.cycles_done;
  // The uid has left; nobody may receive this.
  std::string ghost = uid;
  ghost += ":ghost ";
  ghost += std::to_string(k);
  if (b.control->send(ghost) != herald::send_result::queued) co_return b.fail("the control session could not send a ghost");
  ++b.ghosts_sent;
  slot.busy = false;
}

// One of cfg.window churn workers: cycles until the deadline or the cycle budget.
asio::awaitable<void> churn_worker(bench& b, std::size_t w) {
  while (!b.failing && b.churn_next < b.cfg.cycles && clock_type::now() < b.churn_deadline) {
    const std::uint64_t k = b.churn_next++;
    co_await churn_one(b, b.churn_slots[w], k);
  }
  --b.churn_running;
  b.notify();
}

// Sleeps on the wake timer until notified (or 100 ms, as a safety net).
asio::awaitable<void> wait_for_change(bench& b) {
  b.wake.expires_after(100ms);
  herald::error_code ec;
  co_await b.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> sleep_for(clock_type::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(asio::use_awaitable);
}

// Progress lines, the stall check and the failure exit.
asio::awaitable<void> monitor(bench& b) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  const auto begin = clock_type::now();
  auto last_print = begin;
  std::uint64_t last_deliveries = 0;
  auto last_progress = begin;
  for (;;) {
    t.expires_after(250ms);
    co_await t.async_wait(asio::use_awaitable);
    if (b.failing) {
      t.expires_after(1s);  // let simultaneous failures show up too
      co_await t.async_wait(asio::use_awaitable);
      b.exit_with_failure();
    }
    const auto now = clock_type::now();
    const std::uint64_t progress = b.deliveries + b.cycles_done;
    const bool flowing = b.ph == phase::broadcast || b.ph == phase::unicast || b.ph == phase::churn;
    if (progress != last_deliveries || !flowing) {
      last_deliveries = progress;
      last_progress = now;
    } else if (now - last_progress > std::chrono::seconds(b.cfg.stall_timeout_s)) {
      b.fail(b.ph == phase::churn ? "stall: no churn cycle completed for " + std::to_string(b.cfg.stall_timeout_s) + " s"
                                  : "stall: no message delivered for " + std::to_string(b.cfg.stall_timeout_s) + " s");
    }
    if (b.ph == phase::churn) {  // one cycle stuck while the others go on
      for (const auto& sl : b.churn_slots) {
        if (sl.busy && now - sl.since > std::chrono::seconds(b.cfg.stall_timeout_s)) {
          b.fail("stall: c" + std::to_string(sl.k) + " waited for " + sl.step + " for more than " +
                 std::to_string(b.cfg.stall_timeout_s) + " s");
          break;
        }
      }
    }
    if (now - last_print >= 5s) {
      last_print = now;
      if (b.ph == phase::login)
        std::printf("  ... %.0f s: %zu of %zu logged in\n", seconds_between(begin, now), b.logged_in, b.total);
      else if (b.ph == phase::broadcast)
        std::printf("  ... %.0f s: %zu of %zu broadcasts complete, %llu deliveries\n", seconds_between(begin, now),
                    b.completed, b.cfg.messages, static_cast<unsigned long long>(b.deliveries));
      else if (b.ph == phase::unicast)
        std::printf("  ... %.0f s: %llu of %zu unicasts delivered\n", seconds_between(begin, now),
                    static_cast<unsigned long long>(b.deliveries), b.cfg.messages);
      else if (b.ph == phase::churn)
        std::printf("  ... %.0f s: %llu churn cycles\n", seconds_between(begin, now),
                    static_cast<unsigned long long>(b.cycles_done));
      std::fflush(stdout);
    }
  }
}

[[noreturn]] void finish(int code) {
  std::fflush(stdout);
  std::_Exit(code);  // tearing 19 000 sessions down one by one measures nothing; the kernel closes them
}

asio::awaitable<void> run(bench& b) {
  const config& c = b.cfg;
  const long long rss_before = proc_status_bytes(c.server_pid, "VmRSS");
  if (rss_before < 0) {
    b.fail("cannot read /proc/" + std::to_string(c.server_pid) + "/status");
    co_return;
  }
  const long long client_rss_before = proc_status_bytes(::getpid(), "VmRSS");
  std::printf("load_client: scenario=%s sessions=%zu%s server_pid=%ld server_rss_before=%lld source_ips=%zu\n",
              c.scenario.c_str(), c.sessions,
              c.scenario == "broadcast" ? " (+1 sender)" : c.scenario == "churn" ? " (+1 control)" : "", c.server_pid,
              rss_before,
              c.source_ips);
  std::fflush(stdout);
  b.sys = std::make_unique<syscall_counter>(c.scenario == "hold" ? "off" : c.syscalls, c.server_pid);
  b.sys->prepare();  // before the login: perf's start-up is not in any measured phase

  // ---- login
  b.ph = phase::login;
  const auto login_cpu_start = cpu_snapshot::take(c.server_pid);
  const auto login_start = clock_type::now();
  const std::size_t workers = std::min(c.handshakes, b.total);
  for (std::size_t w = 0; w < workers; ++w)
    asio::co_spawn(b.io, login_worker(b), [&b](std::exception_ptr e) { report_exception(b, "login", e); });
  while (b.logged_in + b.login_failed < b.total && !b.failing) co_await wait_for_change(b);
  const auto login_end = clock_type::now();
  const auto login_cpu = cpu_use::between(login_cpu_start, cpu_snapshot::take(c.server_pid));
  if (b.failing) co_return;
  if (b.login_failed > 0) {
    b.fail(std::to_string(b.login_failed) + " of " + std::to_string(b.total) + " sessions failed to log in");
    co_return;
  }
  const double login_s = seconds_between(login_start, login_end);
  const double login_rate = static_cast<double>(b.total) / login_s;
  const double login_p50 = static_cast<double>(b.login_latency.quantile(0.50));
  const double login_p99 = static_cast<double>(b.login_latency.quantile(0.99));
  std::printf("login: %zu sessions in %.3f s = %.0f logins/s (connect+handshake+login each: p50 %s, p99 %s, max %s; "
              "%zu in flight)\n",
              b.total, login_s, login_rate, ms(login_p50).c_str(), ms(login_p99).c_str(),
              ms(static_cast<double>(b.login_latency.max())).c_str(), workers);
  std::printf("login: server CPU %.3f s = %.1f us per login; load client CPU %.3f s\n", login_cpu.server(),
              login_cpu.server() * 1e6 / static_cast<double>(b.total), login_cpu.client());
  print_machine("login", login_cpu);
  std::fflush(stdout);

  if (c.scenario == "hold") {
    b.ph = phase::hold;
    co_await sleep_for(2s);
    if (b.failing) co_return;
    const long long rss_after = proc_status_bytes(c.server_pid, "VmRSS");
    const long long hwm = proc_status_bytes(c.server_pid, "VmHWM");
    const long long client_rss = proc_status_bytes(::getpid(), "VmRSS");
    if (rss_after < 0) {
      b.fail("server process is gone");
      co_return;
    }
    const double per_session = static_cast<double>(rss_after - rss_before) / static_cast<double>(c.sessions);
    std::printf("hold: server VmRSS %lld -> %lld bytes (VmHWM %lld) with %zu idle logged-in sessions\n", rss_before,
                rss_after, hwm, c.sessions);
    std::printf("hold: server memory per idle session = %.0f bytes (user space only; kernel socket memory is extra)\n",
                per_session);
    std::printf("hold: load client VmRSS %lld -> %lld bytes\n", client_rss_before, client_rss);
    if (b.errors > 0) {
      b.fail("unexpected messages while holding");
      co_return;
    }
    std::printf("RESULT scenario=hold status=PASS sessions=%zu login_s=%.3f logins_per_s=%.0f login_p50_ms=%.3f "
                "login_p99_ms=%.3f login_server_cpu_us_per_login=%.1f server_rss_before=%lld server_rss_after=%lld "
                "server_bytes_per_session=%.0f login_other_cpu_s=%.2f login_client_cpu_s=%.3f login_machine_s=%.2f "
                "deflate=%d\n",
                c.sessions, login_s, login_rate, login_p50 / 1e6, login_p99 / 1e6,
                login_cpu.server() * 1e6 / static_cast<double>(b.total), rss_before, rss_after, per_session,
                login_cpu.others(), login_cpu.client(), login_cpu.machine_total, c.deflate ? 1 : 0);
    finish(0);
  }

  if (c.scenario == "unicast") {
    // ---- unicast: a closed loop, W in flight
    b.uni_got.assign(c.messages, 0);
    b.latency.reserve(c.messages);
    b.uni_frame.reserve(c.size + 32);
    b.sys->begin();
    const auto cpu_start = cpu_snapshot::take(c.server_pid);
    b.ph = phase::unicast;
    const auto start = clock_type::now();
    b.last_delivery = start;
    for (std::size_t w = 0; w < c.window && !b.failing; ++w) b.send_next_unicast();
    while (b.deliveries < c.messages && !b.failing) co_await wait_for_change(b);
    if (b.failing) co_return;
    const auto end = b.last_delivery;
    const auto cpu = cpu_use::between(cpu_start, cpu_snapshot::take(c.server_pid));
    const syscall_counts calls = b.sys->end();
    b.sys.reset();
    co_await sleep_for(200ms);  // anything extra (a duplicate) would arrive now
    b.ph = phase::done;
    if (b.failing) co_return;
    if (b.errors > 0) {
      b.fail("unicast verification failed: " + std::to_string(b.errors) + " errors");
      co_return;
    }
    const double secs = seconds_between(start, end);
    const auto n = static_cast<double>(b.deliveries);
    const double p50 = static_cast<double>(b.latency.quantile(0.50));
    const double p99 = static_cast<double>(b.latency.quantile(0.99));
    const double pmax = static_cast<double>(b.latency.max());
    std::printf("unicast: %zu messages of %zu bytes among %zu sessions in %.3f s = %.0f messages/s (window %zu, closed "
                "loop)\n",
                c.messages, c.size, c.sessions, secs, n / secs, c.window);
    std::printf("latency (send -> receive, %s of %llu): p50 %s, p99 %s, max %s, mean %s\n",
                b.latency.kept() == b.latency.count() ? "all" : "sample", static_cast<unsigned long long>(b.latency.count()),
                ms(p50).c_str(), ms(p99).c_str(), ms(pmax).c_str(), ms(b.latency.mean()).c_str());
    std::printf("server CPU: %.3f s (user %.3f, sys %.3f) = %.3f us per message (%.0f%% of one core)\n", cpu.server(),
                cpu.server_user, cpu.server_sys, cpu.server() * 1e6 / n, 100.0 * cpu.server() / secs);
    std::printf("load client CPU: %.3f s (user %.3f, sys %.3f) = %.0f%% of its one thread%s\n", cpu.client(),
                cpu.client_user, cpu.client_sys, 100.0 * cpu.client() / secs,
                cpu.client() / secs > 0.9 ? " -> the client was probably the bottleneck" : "");
    print_machine("the unicast phase", cpu);
    const std::string sys_fields = syscall_fields(calls, n, "message");
    std::printf("verify: all %zu messages arrived exactly once, each at the uid it was addressed to, intact\n",
                c.messages);
    std::printf("RESULT scenario=unicast status=PASS sessions=%zu messages=%zu size=%zu window=%zu login_s=%.3f "
                "logins_per_s=%.0f phase_s=%.3f delivered=%llu delivered_per_s=%.0f lat_p50_ms=%.3f lat_p99_ms=%.3f "
                "lat_max_ms=%.3f server_cpu_s=%.3f server_user_s=%.3f server_sys_s=%.3f server_cpu_us_per_message=%.3f "
                "server_cpu_pct=%.0f client_cpu_s=%.3f client_cpu_pct=%.0f login_other_cpu_s=%.2f other_cpu_s=%.2f "
                "machine_s=%.2f%s\n",
                c.sessions, c.messages, c.size, c.window, login_s, login_rate, secs,
                static_cast<unsigned long long>(b.deliveries), n / secs, p50 / 1e6, p99 / 1e6, pmax / 1e6, cpu.server(),
                cpu.server_user, cpu.server_sys, cpu.server() * 1e6 / n, 100.0 * cpu.server() / secs, cpu.client(),
                100.0 * cpu.client() / secs, login_cpu.others(), cpu.others(), cpu.machine_total, sys_fields.c_str());
    finish(0);
  }

  if (c.scenario == "churn") {
    // ---- churn: W workers connect, log in with new uids, get one unicast and leave
    b.control = b.sessions[c.sessions];
    b.churn_slots.assign(c.window, churn_slot{});
    co_await sleep_for(500ms);  // let the server settle after the logins before the first RSS
    if (b.failing) co_return;
    const long long rss_start = proc_status_bytes(c.server_pid, "VmRSS");
    b.sys->begin();
    const auto cpu_start = cpu_snapshot::take(c.server_pid);
    b.ph = phase::churn;
    const auto start = clock_type::now();
    b.churn_deadline = start + std::chrono::seconds(c.duration_s);
    b.churn_running = c.window;
    for (std::size_t w = 0; w < c.window; ++w)
      asio::co_spawn(b.io, churn_worker(b, w), [&b](std::exception_ptr e) { report_exception(b, "churn", e); });
    while (b.churn_running > 0 && !b.failing) co_await wait_for_change(b);
    if (b.failing) co_return;
    const auto end = clock_type::now();
    const auto cpu = cpu_use::between(cpu_start, cpu_snapshot::take(c.server_pid));
    const syscall_counts calls = b.sys->end();
    b.sys.reset();
    // Every ghost was sent before this marker on the same connection: once it is back, the
    // server has routed them all.
    b.expect_marker = true;
    b.control->send("control:churn-end-marker");
    while (!b.marker_received && !b.failing) co_await wait_for_change(b);
    co_await sleep_for(500ms);  // a misrouted ghost would arrive now; the server settles
    if (b.failing) co_return;
    const long long rss_end = proc_status_bytes(c.server_pid, "VmRSS");
    b.ph = phase::done;
    if (rss_end < 0) {
      b.fail("server process is gone");
      co_return;
    }
    if (b.errors > 0) {
      b.fail("churn verification failed: " + std::to_string(b.errors) + " errors");
      co_return;
    }
    const double secs = seconds_between(start, end);
    const auto n = static_cast<double>(b.cycles_done);
    const double p50 = static_cast<double>(b.cycle_latency.quantile(0.50));
    const double p99 = static_cast<double>(b.cycle_latency.quantile(0.99));
    const double pmax = static_cast<double>(b.cycle_latency.max());
    const double close_p50 = static_cast<double>(b.close_latency.quantile(0.50));
    const double close_p99 = static_cast<double>(b.close_latency.quantile(0.99));
    std::printf("churn: %llu cycles (connect, handshake, login, 1 unicast received, leave) in %.3f s = %.0f cycles/s "
                "(%zu workers; %llu clean closes, %llu FIN without close frame, %llu RST)\n",
                static_cast<unsigned long long>(b.cycles_done), secs, n / secs, c.window,
                static_cast<unsigned long long>(b.churn_clean), static_cast<unsigned long long>(b.churn_fin),
                static_cast<unsigned long long>(b.churn_rst));
    std::printf("cycle time: p50 %s, p99 %s, max %s; clean close handshake: p50 %s, p99 %s\n", ms(p50).c_str(),
                ms(p99).c_str(), ms(pmax).c_str(), ms(close_p50).c_str(), ms(close_p99).c_str());
    std::printf("server CPU: %.3f s (user %.3f, sys %.3f) = %.1f us per cycle (%.0f%% of one core)\n", cpu.server(),
                cpu.server_user, cpu.server_sys, cpu.server() * 1e6 / n, 100.0 * cpu.server() / secs);
    std::printf("server VmRSS: %lld at the start, %lld at the end (%+.1f bytes per cycle; %zu idle sessions + control "
                "throughout)\n",
                rss_start, rss_end, static_cast<double>(rss_end - rss_start) / n, c.sessions);
    std::printf("load client CPU: %.3f s (user %.3f, sys %.3f) = %.0f%% of its one thread%s\n", cpu.client(),
                cpu.client_user, cpu.client_sys, 100.0 * cpu.client() / secs,
                cpu.client() / secs > 0.9 ? " -> the client was probably the bottleneck" : "");
    print_machine("the churn phase", cpu);
    const std::string sys_fields = syscall_fields(calls, n, "cycle");
    std::printf("verify: every new uid got exactly its own message first; %llu ghosts to uids that had left reached "
                "nobody; the %zu idle sessions and the control session received nothing else\n",
                static_cast<unsigned long long>(b.ghosts_sent), c.sessions);
    std::printf("RESULT scenario=churn status=PASS sessions=%zu window=%zu size=%zu duration_s=%d login_s=%.3f "
                "logins_per_s=%.0f phase_s=%.3f cycles=%llu cycles_per_s=%.0f cycle_p50_ms=%.3f cycle_p99_ms=%.3f "
                "cycle_max_ms=%.3f clean=%llu fin=%llu rst=%llu ghosts=%llu server_cpu_s=%.3f server_user_s=%.3f "
                "server_sys_s=%.3f server_cpu_us_per_cycle=%.1f server_cpu_pct=%.0f server_rss_start=%lld "
                "server_rss_end=%lld server_rss_growth_per_cycle=%.1f client_cpu_s=%.3f client_cpu_pct=%.0f "
                "login_other_cpu_s=%.2f other_cpu_s=%.2f machine_s=%.2f%s\n",
                c.sessions, c.window, c.size, c.duration_s, login_s, login_rate, secs,
                static_cast<unsigned long long>(b.cycles_done), n / secs, p50 / 1e6, p99 / 1e6, pmax / 1e6,
                static_cast<unsigned long long>(b.churn_clean), static_cast<unsigned long long>(b.churn_fin),
                static_cast<unsigned long long>(b.churn_rst), static_cast<unsigned long long>(b.ghosts_sent),
                cpu.server(), cpu.server_user, cpu.server_sys, cpu.server() * 1e6 / n, 100.0 * cpu.server() / secs,
                rss_start, rss_end, static_cast<double>(rss_end - rss_start) / n, cpu.client(),
                100.0 * cpu.client() / secs, login_cpu.others(), cpu.others(), cpu.machine_total, sys_fields.c_str());
    finish(0);
  }

  // ---- broadcast
  const std::size_t sender_index = c.sessions;
  session_ptr sender = b.sessions[sender_index];
  b.seq_count.assign(c.messages, 0);
  b.latency.reserve(c.messages * b.total);
  std::string frame;
  frame.reserve(4 + c.size);
  if (c.payload == "json") b.sent_json.resize(c.messages);
  // WebSocket bytes received by all the sessions (frames with their headers) before the phase.
  auto wire_bytes = [&b] {
    std::uint64_t n = 0;
    for (const auto& s : b.sessions) n += s->stats().bytes_in;
    return n;
  };
  const std::uint64_t wire_start = wire_bytes();

  b.sys->begin();
  const auto phase_cpu_start = cpu_snapshot::take(c.server_pid);
  b.ph = phase::broadcast;
  const auto phase_start = clock_type::now();
  b.last_delivery = phase_start;
  for (std::size_t seq = 0; seq < c.messages && !b.failing; ++seq) {
    while (seq - b.completed >= c.window && !b.failing) co_await wait_for_change(b);
    if (b.failing) break;
    frame.assign("all:");
    if (c.payload == "json") {
      b.sent_json[seq] = json_payload(seq, static_cast<long long>(now_ns()), c.size);
      frame += b.sent_json[seq];
    } else {
      char head[min_payload + 1];
      const int n = std::snprintf(head, sizeof head, "%zu %lld ", seq, static_cast<long long>(now_ns()));
      frame.append(head, static_cast<std::size_t>(n));
      frame.append(c.size - static_cast<std::size_t>(n), 'x');
    }
    const auto r = sender->send(std::string_view(frame));
    if (r != herald::send_result::queued) {
      b.fail("the sender's send() of seq " + std::to_string(seq) + " returned " + std::to_string(static_cast<int>(r)));
      break;
    }
  }
  while (b.completed < c.messages && !b.failing) co_await wait_for_change(b);
  if (b.failing) co_return;
  const auto phase_end = b.last_delivery;
  const auto cpu = cpu_use::between(phase_cpu_start, cpu_snapshot::take(c.server_pid));
  const syscall_counts calls = b.sys->end();
  b.sys.reset();

  const std::uint64_t wire_end = wire_bytes();
  // Everything arrived; wait briefly for anything extra (duplicates) before judging.
  co_await sleep_for(200ms);
  b.ph = phase::done;
  if (b.failing) co_return;
  std::size_t wrong_count = 0;
  for (std::size_t i = 0; i < b.peers.size(); ++i) {
    if (b.peers[i].received != c.messages) {
      ++wrong_count;
      b.error(b.uid_of(i) + ": received " + std::to_string(b.peers[i].received) + " messages, expected " +
              std::to_string(c.messages));
    }
  }
  if (b.errors > 0 || wrong_count > 0) {
    b.fail("broadcast verification failed: " + std::to_string(b.errors) + " errors, " + std::to_string(wrong_count) +
           " sessions with the wrong number of messages");
    co_return;
  }

  const double secs = seconds_between(phase_start, phase_end);
  const auto total_deliveries = static_cast<double>(b.deliveries);
  const double rate = total_deliveries / secs;
  const double server_cpu = cpu.server();
  const double client_user = cpu.client_user;
  const double client_sys = cpu.client_sys;
  const double p50 = static_cast<double>(b.latency.quantile(0.50));
  const double p99 = static_cast<double>(b.latency.quantile(0.99));
  const double pmax = static_cast<double>(b.latency.max());
  const double mb_per_s = total_deliveries * static_cast<double>(c.size) / secs / 1e6;
  const double wire_per_delivery = static_cast<double>(wire_end - wire_start) / total_deliveries;
  std::printf("on the wire: %.1f bytes per delivery (WebSocket frames as received, headers included; payload %zu, %s%s)\n",
              wire_per_delivery, c.size, c.payload == "json" ? "JSON" : "'x' padding",
              c.deflate ? ", permessage-deflate" : ", no compression");
  std::printf("broadcast: %zu messages of %zu bytes x %zu sessions = %llu deliveries in %.3f s = %.0f deliveries/s "
              "(%.1f MB/s of payload; window %zu)\n",
              c.messages, c.size, b.total, static_cast<unsigned long long>(b.deliveries), secs, rate, mb_per_s,
              c.window);
  std::printf("latency (send -> receive, %s of %llu deliveries): p50 %s, p99 %s, max %s, mean %s\n",
              b.latency.kept() == b.latency.count() ? "all" : "sample",
              static_cast<unsigned long long>(b.latency.count()),
              ms(p50).c_str(), ms(p99).c_str(), ms(pmax).c_str(), ms(b.latency.mean()).c_str());
  std::printf("server CPU: %.3f s (user %.3f, sys %.3f) during the phase = %.3f us per delivery (%.0f%% of one core)\n",
              server_cpu, cpu.server_user, cpu.server_sys, server_cpu * 1e6 / total_deliveries,
              100.0 * server_cpu / secs);
  std::printf("load client CPU: %.3f s (user %.3f, sys %.3f) = %.0f%% of its one thread%s\n", client_user + client_sys,
              client_user, client_sys, 100.0 * (client_user + client_sys) / secs,
              (client_user + client_sys) / secs > 0.9 ? " -> the client was probably the bottleneck" : "");
  print_machine("the broadcast phase", cpu);
  const std::string sys_fields = syscall_fields(calls, total_deliveries, "delivery");
  std::printf("verify: all %zu sessions received all %zu messages exactly once, in order, intact\n", b.total,
              c.messages);
  std::printf("RESULT scenario=broadcast status=PASS sessions=%zu receivers=%zu messages=%zu size=%zu window=%zu "
              "login_s=%.3f logins_per_s=%.0f phase_s=%.3f deliveries=%llu deliveries_per_s=%.0f lat_p50_ms=%.3f "
              "lat_p99_ms=%.3f lat_max_ms=%.3f server_cpu_s=%.3f server_user_s=%.3f server_sys_s=%.3f "
              "server_cpu_us_per_delivery=%.3f server_cpu_pct=%.0f client_cpu_s=%.3f client_cpu_pct=%.0f "
              "login_other_cpu_s=%.2f other_cpu_s=%.2f machine_s=%.2f deflate=%d payload=%s wire_bytes_per_delivery=%.1f%s\n",
              c.sessions, b.total, c.messages, c.size, c.window, login_s, login_rate, secs,
              static_cast<unsigned long long>(b.deliveries), rate, p50 / 1e6, p99 / 1e6, pmax / 1e6, server_cpu,
              cpu.server_user, cpu.server_sys,
              server_cpu * 1e6 / total_deliveries, 100.0 * server_cpu / secs, client_user + client_sys,
              100.0 * (client_user + client_sys) / secs, login_cpu.others(), cpu.others(), cpu.machine_total,
              c.deflate ? 1 : 0, c.payload.c_str(), wire_per_delivery, sys_fields.c_str());
  finish(0);
}

}  // namespace

int main(int argc, char** argv) {
  bench b;
  b.cfg = parse_args(argc, argv);
  const config& c = b.cfg;
  b.total = c.sessions + (c.scenario == "broadcast" || c.scenario == "churn" ? 1 : 0);
  b.sessions.resize(b.total);
  b.peers.resize(b.total);

  herald::session_options so;
  so.max_message_size = std::max<std::size_t>(64 * 1024, c.size + 1024);
  so.idle_timeout = std::chrono::hours(1);  // the client never pings during a run
  so.handshake_timeout = 30s;
  so.close_timeout = 10s;  // churn fails a clean close that takes longer than 9 s
  so.send_queue_limit = 64 * 1024 * 1024;
#if HERALD_BENCH_DEFLATE
  if (c.deflate) herald::enable_deflate(so);
#endif
  b.options = std::make_shared<const herald::session_options>(so);

  herald::error_code ec;
  const auto address = asio::ip::make_address(c.host, ec);
  if (ec) usage("--host must be an IP address");
  b.endpoint = tcp::endpoint(address, c.port);
  if (b.cfg.source_ips == 0) b.cfg.source_ips = address.is_loopback() && address.is_v4() ? 16 : 1;

  // The global deadline: whatever is still running after --timeout seconds is a failure.
  asio::steady_timer deadline(b.io);
  deadline.expires_after(std::chrono::seconds(c.timeout_s));
  deadline.async_wait([&b](herald::error_code e) {
    if (e) return;
    b.fail("timeout: the run did not finish within --timeout " + std::to_string(b.cfg.timeout_s) + " s");
    b.exit_with_failure();
  });

  asio::co_spawn(b.io, monitor(b), [&b](std::exception_ptr e) {
    report_exception(b, "monitor", e);
    b.exit_with_failure();
  });
  asio::co_spawn(b.io, run(b), [&b](std::exception_ptr e) { report_exception(b, "run", e); });
  b.io.run();
  b.fail("the event loop ran out of work");
  b.exit_with_failure();
}
