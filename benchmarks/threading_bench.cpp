// threading_bench: measures the two design choices of registry<Session, multi_thread>
// (issue 5: "choose by measurement") against their alternatives, in one process.
//
//   threading_bench [--reps R (7)] [--sessions S (4000)] [--broadcasts B (8)] [--size BYTES (128)]
//                   [--unicasts U (32000)] [--ops OPS (1000000)] [--uids K (100000)]
//                   [--lookups PERCENT (90)] [--only executor|index] [--time-limit SECONDS (170)]
//                   [--threads LIST (1,2): the thread counts to measure, e.g. 1,2,8,16 on a bigger machine]
//
// 1. Executor model, with S sessions on real loopback TCP connections (dealt out to the
//    threads in turn, as accept_loop deals sockets out to lanes):
//      a)  one io_context per thread ("lane"); each session belongs to one (herald's choice);
//      b)  one io_context run by N threads, a strand per session, entered with asio::dispatch
//          (runs the handler at once when the strand is idle: the best case for strands);
//      b') the same, entered with asio::post (always queued).
//    broadcast  B rounds; each round is one job per lane (a) or per partition of the sessions
//               (b, b') that hands one prebuilt herald::message to each of its sessions: a
//               plain call in (a), through the session's strand in (b, b'). The round starts on
//               the first thread, which does its own part there and posts the others, like
//               registry::broadcast called from a session.
//    unicast    N senders, U sends in all, 32 per job (a job stands for one round of incoming
//               messages). With 2 threads every send goes to a session of the other lane: in (a)
//               posted to that lane's io_context (as ws_session::send does), in (b, b') through
//               the target's strand from wherever the sender runs. With 1 thread, (a) calls.
//    A delivery queues the frame in the session's small queue and writes the queue with one
//    non-blocking sendmsg ("write"), or only queues it ("queue-only": the executor's cost
//    without the kernel's; these runs do 64 times the rounds and sends, to last long enough).
//    The peers are drained and every byte counted between runs, outside the measured phase.
//
//    The model, not herald's ws_session, because ws_session cannot run on (b) as written: its
//    write corking keeps the corked sessions in a thread_local list and flushes them from a job
//    posted to one session's executor, which a multi-threaded io_context may run on another
//    thread (the list there is a different one). (b) would need a different write path.
//
// 2. uid index, N lanes (io_context per thread) both, K uids, OPS operations split over the
//    lanes: PERCENT% unicast (look a random uid up and deliver to its session, posting to the
//    session's lane when it lives elsewhere), the rest a login or logout (toggle) of a random uid
//    whose session lives on the calling lane.
//      a) sharded: 64 shards of {std::mutex, unordered_map}, the layout of herald's registry
//                  (and a1: the same with one shard, every thread on one mutex: the worst case);
//      b) routed:  each lane owns the uids that hash to it (no lock); others post the operation
//                  to the owner, which posts the delivery on to the session's lane, and a
//                  login's verdict back to the session's lane.
//    A delivery here only counts (no socket): the socket write is the same in both and is
//    measured in part 1.
//
// Every run: wall time from the first post until the last operation has finished, this
// process's CPU (getrusage) minus the main thread's (it only waits), and what OTHER processes
// took of the machine meanwhile (/proc/stat busy minus /proc/self/stat). R repetitions; within
// each, the alternatives run back to back in an order rotated from one repetition to the next,
// so that noise from other processes hits them alike.
// Every wait is bounded; a run that does not finish, or bytes that do not add up, print FAIL
// and the tool exits 1.
#include <herald.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using herald::message;
using strand_type = asio::strand<asio::io_context::executor_type>;

constexpr int max_threads = 64;  // worker threads in one run

struct config {
  int reps = 7;
  std::size_t sessions = 4000;
  std::size_t broadcasts = 8;
  std::size_t size = 128;
  std::size_t unicasts = 32000;
  std::size_t ops = 1000000;
  std::size_t uids = 100000;
  int lookups = 90;
  std::string only;
  int time_limit_s = 170;
  std::vector<int> threads{1, 2};  // thread counts to measure
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "threading_bench: %s\n"
               "usage: threading_bench [--reps R (7)] [--sessions S (4000)] [--broadcasts B (8)] [--size BYTES (128)]\n"
               "                       [--unicasts U (32000)] [--ops OPS (1000000)] [--uids K (100000)]\n"
               "                       [--lookups PERCENT (90)] [--only executor|index] [--time-limit SECONDS (170)]\n"
               "                       [--threads LIST (1,2; each 1..64)]\n",
               why);
  std::exit(2);
}

std::size_t to_size(const std::string& s) {
  std::size_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) usage(("not a number: " + s).c_str());
  return v;
}

config parse(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    const std::string v = argv[++i];
    if (a == "--reps") c.reps = static_cast<int>(to_size(v));
    else if (a == "--sessions") c.sessions = to_size(v);
    else if (a == "--broadcasts") c.broadcasts = to_size(v);
    else if (a == "--size") c.size = to_size(v);
    else if (a == "--unicasts") c.unicasts = to_size(v);
    else if (a == "--ops") c.ops = to_size(v);
    else if (a == "--uids") c.uids = to_size(v);
    else if (a == "--lookups") c.lookups = static_cast<int>(to_size(v));
    else if (a == "--only") c.only = v;
    else if (a == "--time-limit") c.time_limit_s = static_cast<int>(to_size(v));
    else if (a == "--threads") {
      c.threads.clear();
      std::size_t from = 0;
      while (from <= v.size()) {
        const std::size_t comma = std::min(v.find(',', from), v.size());
        c.threads.push_back(static_cast<int>(to_size(v.substr(from, comma - from))));
        from = comma + 1;
      }
    }
    else usage(("unknown option " + a).c_str());
  }
  if (c.reps < 1 || c.reps > 50) usage("--reps must be 1..50");
  if (c.sessions < 2 || c.sessions > 9000) usage("--sessions must be 2..9000 (two descriptors each; 20,000 per process)");
  if (c.broadcasts < 1 || c.broadcasts > 1000) usage("--broadcasts must be 1..1000");
  if (c.size < 1 || c.size > 4096) usage("--size must be 1..4096");
  if (c.broadcasts * (c.size + 4) > 64 * 1024) usage("--broadcasts x --size must stay under 64 KiB (the peer's receive window)");
  if (c.unicasts < 2 || c.unicasts > 10000000) usage("--unicasts must be 2..10,000,000");
  if (c.ops < 2 || c.ops > 20000000) usage("--ops must be 2..20,000,000");
  if (c.uids < 2 || c.uids > 10000000) usage("--uids must be 2..10,000,000");
  if (c.lookups < 0 || c.lookups > 100) usage("--lookups must be 0..100");
  if (!c.only.empty() && c.only != "executor" && c.only != "index") usage("--only executor|index");
  for (int t : c.threads)
    if (t < 1 || t > max_threads) usage("--threads: each count must be 1..64");
  if (c.sessions < static_cast<std::size_t>(*std::max_element(c.threads.begin(), c.threads.end())))
    usage("--sessions must be at least the largest thread count");
  if (c.uids < 1000 * static_cast<std::size_t>(*std::max_element(c.threads.begin(), c.threads.end())))
    usage("--uids must be at least 1000 per thread");
  return c;
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "FAIL %s\n", why.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------- measuring

// Voluntary context switches: a worker that switches voluntarily had run out of work and went
// to sleep, so another thread had to wake it (a futex call on both sides).
long rusage_sleeps(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return ru.ru_nvcsw;
}

double rusage_us(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// Machine-wide busy and total jiffies (/proc/stat, all CPUs) and this process's own
// (/proc/self/stat), so that busy - own = what other processes used.
struct load_sample {
  long long busy = 0, total = 0, self = 0;
};

load_sample sample_load() {
  load_sample s;
  {
    std::ifstream f("/proc/stat");
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    s.busy = user + nice + system + irq + softirq + steal;
    s.total = s.busy + idle + iowait;
  }
  {
    std::ifstream f("/proc/self/stat");
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may hold spaces) start after the last ')'.
    std::istringstream rest(all.substr(all.rfind(')') + 2));
    std::string field;
    long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::atoll(field.c_str());
      if (i == 15) stime = std::atoll(field.c_str());
    }
    s.self = utime + stime;
  }
  return s;
}

double others_pct(const load_sample& a, const load_sample& b) {
  const long long total = b.total - a.total;
  if (total <= 0) return 0;
  const long long others = (b.busy - a.busy) - (b.self - a.self);
  return 100.0 * static_cast<double>(std::max(0LL, others)) / static_cast<double>(total);
}

struct run_result {
  double wall_s = 0;
  double cpu_us = 0;  // the workers' CPU: the process's minus the (waiting) main thread's
  double others = 0;  // % of the whole machine used by other processes meanwhile
  long sleeps = 0;     // the workers' voluntary context switches
  std::uint64_t ops = 0;
  double cpu_per_op_us() const { return cpu_us / static_cast<double>(ops); }
  double ops_per_s() const { return static_cast<double>(ops) / wall_s; }
};

class measurement {
 public:
  void begin() {
    load0_ = sample_load();
    self0_ = rusage_us(RUSAGE_SELF);
    main0_ = rusage_us(RUSAGE_THREAD);
    sleeps0_ = rusage_sleeps(RUSAGE_SELF);
    main_sleeps0_ = rusage_sleeps(RUSAGE_THREAD);
    t0_ = clock_type::now();
  }
  run_result end(std::uint64_t ops) {
    run_result r;
    r.wall_s = std::chrono::duration<double>(clock_type::now() - t0_).count();
    const double main_us = rusage_us(RUSAGE_THREAD) - main0_;
    r.cpu_us = rusage_us(RUSAGE_SELF) - self0_ - main_us;
    r.others = others_pct(load0_, sample_load());
    r.sleeps = (rusage_sleeps(RUSAGE_SELF) - sleeps0_) - (rusage_sleeps(RUSAGE_THREAD) - main_sleeps0_);
    r.ops = ops;
    return r;
  }

 private:
  load_sample load0_;
  double self0_ = 0, main0_ = 0;
  long sleeps0_ = 0, main_sleeps0_ = 0;
  clock_type::time_point t0_;
};

// ---------------------------------------------------------------- completion counting

// One counter per worker thread on its own cache line, written only by that thread (a plain
// load + store, no locked instruction), so counting adds no cross-core traffic to either
// alternative. The main thread sums them while it waits.
struct alignas(64) counter_slot {
  std::atomic<std::uint64_t> n{0};
};
std::array<counter_slot, max_threads> slots;
thread_local counter_slot* my_slot = nullptr;

inline void done1() {
  auto& n = my_slot->n;
  n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

std::uint64_t done_total() {
  std::uint64_t t = 0;
  for (auto& s : slots) t += s.n.load(std::memory_order_acquire);  // what a lane did before counting is visible after
  return t;
}

void reset_counts() {
  for (auto& s : slots) s.n.store(0, std::memory_order_relaxed);
}

// Polls every 500 us (about 0.1% of a core, and not counted as the workers' CPU).
bool wait_done(std::uint64_t target, std::chrono::seconds limit) {
  const auto until = clock_type::now() + limit;
  while (done_total() < target) {
    if (clock_type::now() > until) return false;
    std::this_thread::sleep_for(500us);
  }
  return true;
}

// ---------------------------------------------------------------- threads

// lanes: n io_contexts (concurrency hint 1, as herald's examples make them), a thread each.
// shared: one io_context (default hint: it is run by several threads) run by n threads.
class pool {
 public:
  enum kind { lanes, shared };
  pool(kind k, int n) {
    const int contexts = k == lanes ? n : 1;
    for (int i = 0; i < contexts; ++i) {
      ctx.push_back(k == lanes ? std::make_unique<asio::io_context>(1) : std::make_unique<asio::io_context>());
      guards_.push_back(asio::make_work_guard(*ctx.back()));
    }
    std::atomic<int> started{0};
    for (int i = 0; i < n; ++i) {
      asio::io_context* c = ctx[k == lanes ? static_cast<std::size_t>(i) : 0].get();
      threads_.emplace_back([c, i, &started] {
        my_slot = &slots[static_cast<std::size_t>(i)];
        started.fetch_add(1);
        c->run();
      });
    }
    // Thread start-up stays out of the measured phase.
    const auto until = clock_type::now() + 10s;
    while (started.load() < n) {
      if (clock_type::now() > until) die("worker threads did not start");
      std::this_thread::yield();
    }
  }
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;
  ~pool() { stop(); }
  void stop() {
    guards_.clear();
    for (auto& c : ctx) c->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  asio::io_context& operator[](std::size_t i) { return *ctx[i]; }

  std::vector<std::unique_ptr<asio::io_context>> ctx;

 private:
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------- 1. executor model

struct connection {
  int server = -1;  // the session's end, non-blocking, TCP_NODELAY like herald's sessions
  int peer = -1;    // the client's end, drained between runs
};

std::vector<connection> connect_pairs(std::size_t n) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 1024) != 0 || ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    die(std::string("loopback listener: ") + std::strerror(errno));
  std::vector<connection> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    connection c;
    c.peer = ::socket(AF_INET, SOCK_STREAM, 0);
    if (c.peer < 0 || ::connect(c.peer, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      die(std::string("connect to 127.0.0.1: ") + std::strerror(errno));
    c.server = ::accept(listener, nullptr, nullptr);
    if (c.server < 0) die(std::string("accept: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(c.server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(c.server, F_SETFL, ::fcntl(c.server, F_GETFL) | O_NONBLOCK);
    ::fcntl(c.peer, F_SETFL, ::fcntl(c.peer, F_GETFL) | O_NONBLOCK);
    out.push_back(c);
  }
  ::close(listener);
  return out;
}

// Reads everything the peers have; returns the bytes.
std::uint64_t drain(const std::vector<connection>& conns) {
  std::uint64_t total = 0;
  std::array<char, 65536> buf;
  for (auto& c : conns) {
    for (;;) {
      const ssize_t n = ::recv(c.peer, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      total += static_cast<std::uint64_t>(n);
    }
  }
  return total;
}

// One session of the model: a small queue of shared frames and a non-blocking socket.
struct model_session {
  int fd = -1;
  std::size_t lane = 0;
  std::vector<message> queue;
  std::size_t offset = 0;  // bytes of queue.front() already written
  std::uint64_t written = 0;
  std::uint64_t blocked = 0;  // writes that met a full socket (should stay 0)
  std::optional<strand_type> strand;

  void deliver(message m, bool write) {
    queue.push_back(std::move(m));
    if (write) flush();
    else if (queue.size() >= 16) queue.clear();  // queue-only: keep it small
    done1();
  }

  // Like ws_session::flush: one gathered, non-blocking write of everything queued.
  void flush() {
    std::array<iovec, 64> iov;
    std::size_t count = 0;
    for (std::size_t i = 0; i < queue.size() && count < iov.size(); ++i) {
      auto f = queue[i].frame();
      const std::size_t skip = i == 0 ? offset : 0;
      iov[count++] = {const_cast<std::uint8_t*>(f.data() + skip), f.size() - skip};
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      ++blocked;
      return;
    }
    written += static_cast<std::uint64_t>(n);
    std::size_t left = static_cast<std::size_t>(n), done = 0;
    while (done < queue.size()) {
      const std::size_t rest = queue[done].frame_size() - (done == 0 ? offset : 0);
      if (left < rest) break;
      left -= rest;
      ++done;
    }
    offset = (done == 0 ? offset : 0) + left;
    if (done < queue.size()) ++blocked;
    queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(done));
  }
};

using session_list = std::vector<model_session*>;

// b) gets both ways into a strand: dispatch runs the handler at once when the strand is idle
// (the caller is a thread of the same io_context), post always queues it.
enum class model { lanes, strand_dispatch, strand_post };
const char* model_name(model m) {
  switch (m) {
    case model::lanes: return "a) io_context per thread";
    case model::strand_dispatch: return "b) 1 ctx, strand dispatch";
    default: return "b') 1 ctx, strand post";
  }
}
const model models[] = {model::lanes, model::strand_dispatch, model::strand_post};

struct executor_fixture {
  std::vector<connection> conns;
  std::vector<model_session> sessions;
  std::uint64_t checked_bytes = 0;

  explicit executor_fixture(std::size_t n) : conns(connect_pairs(n)), sessions(n) {
    for (std::size_t i = 0; i < n; ++i) sessions[i].fd = conns[i].server;
  }
  ~executor_fixture() {
    for (auto& c : conns) {
      ::close(c.server);
      ::close(c.peer);
    }
  }

  // Sessions are dealt out in turn, as accept_loop deals sockets out to lanes.
  std::vector<session_list> parts(std::size_t n) {
    std::vector<session_list> out(n);
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      sessions[i].lane = i % n;
      out[i % n].push_back(&sessions[i]);
    }
    return out;
  }

  // After a run: every byte written must have reached a peer.
  void check(const char* what) {
    std::uint64_t written = 0, blocked = 0;
    for (auto& s : sessions) {
      written += s.written;
      blocked += s.blocked;
      s.written = 0;
      s.blocked = 0;
      s.queue.clear();
      s.offset = 0;
      s.strand.reset();
    }
    // The last bytes may still be on their way through loopback: drain until they add up.
    std::uint64_t got = 0;
    const auto until = clock_type::now() + 5s;
    while (got < written && clock_type::now() < until) {
      got += drain(conns);
      if (got < written) std::this_thread::sleep_for(1ms);
    }
    got += drain(conns);
    if (blocked != 0) die(std::string(what) + ": " + std::to_string(blocked) + " writes met a full socket");
    if (got != written) die(std::string(what) + ": peers got " + std::to_string(got) + " bytes of " + std::to_string(written));
    checked_bytes += got;
  }
};

void fan_out(const session_list& part, const message& m, bool write) {
  for (auto* s : part) s->deliver(m, write);
}

// (a) One broadcast per round, started on lane 0 like registry::broadcast called from a
// session there: its own lane inline, one job posted to each other lane.
struct lanes_broadcast {
  pool* p;
  const std::vector<session_list>* parts;
  const std::vector<message>* frames;
  std::size_t round, rounds;
  bool write;
  void operator()() {
    const message& m = (*frames)[round % frames->size()];
    fan_out((*parts)[0], m, write);
    for (std::size_t i = 1; i < parts->size(); ++i)
      asio::post((*p)[i], [part = &(*parts)[i], m, w = write] { fan_out(*part, m, w); });
    if (++round < rounds) asio::post((*p)[0], *this);
  }
};

// (b) The same rounds on the shared io_context: one job per partition, each handing the
// frame to every session through the session's strand.
void fan_out_strands(const session_list& part, const message& m, bool write, bool post) {
  for (auto* s : part) {
    auto h = [s, m, write]() mutable { s->deliver(std::move(m), write); };
    if (post) asio::post(*s->strand, std::move(h));
    else asio::dispatch(*s->strand, std::move(h));
  }
}

struct strands_broadcast {
  pool* p;
  const std::vector<session_list>* parts;
  const std::vector<message>* frames;
  std::size_t round, rounds;
  bool write, post;
  void operator()() {
    const message& m = (*frames)[round % frames->size()];
    fan_out_strands((*parts)[0], m, write, post);
    for (std::size_t i = 1; i < parts->size(); ++i)
      asio::post((*p)[0], [part = &(*parts)[i], m, w = write, po = post] { fan_out_strands(*part, m, w, po); });
    if (++round < rounds) asio::post((*p)[0], *this);
  }
};

// Queue-only runs cost 1/100 of a written one or less: they do this many times the rounds
// and sends, to last long enough to measure.
constexpr std::size_t queue_only_factor = 64;

std::vector<message> make_frames(std::size_t count, std::size_t size) {
  std::vector<message> out;
  for (std::size_t i = 0; i < count; ++i) {
    std::string payload = std::to_string(i) + " ";
    payload.resize(size, 'x');
    out.push_back(message::text(payload));
  }
  return out;
}

run_result run_broadcast(executor_fixture& fx, model md, int threads, const config& cfg, bool write) {
  const auto frames = make_frames(cfg.broadcasts, cfg.size);
  const std::size_t rounds = cfg.broadcasts * (write ? 1 : queue_only_factor);
  pool p(md == model::lanes ? pool::lanes : pool::shared, threads);
  auto parts = fx.parts(static_cast<std::size_t>(threads));
  if (md != model::lanes)
    for (auto& s : fx.sessions) s.strand.emplace(asio::make_strand(p[0]));
  reset_counts();
  const std::uint64_t target = fx.sessions.size() * rounds;
  measurement m;
  m.begin();
  if (md == model::lanes) asio::post(p[0], lanes_broadcast{&p, &parts, &frames, 0, rounds, write});
  else asio::post(p[0], strands_broadcast{&p, &parts, &frames, 0, rounds, write, md == model::strand_post});
  const bool ok = wait_done(target, 60s);
  auto r = m.end(target);
  p.stop();
  if (!ok) die(std::string("broadcast ") + model_name(md) + ": " + std::to_string(done_total()) + " of " +
               std::to_string(target) + " deliveries within 60 s");
  if (write) fx.check("broadcast");
  else fx.check("broadcast (queue-only)");
  return r;
}

// Cross-thread unicast: sender i sends to targets[i], 32 per job (a job stands for one round
// of incoming messages), the next 32 in a job it posts to itself.
constexpr std::size_t unicast_batch = 32;

struct lanes_sender {
  pool* p;
  const std::vector<model_session*>* targets;
  const std::vector<message>* frames;
  std::size_t lane, next;
  bool write;
  void operator()() {
    const std::size_t end = std::min(next + unicast_batch, targets->size());
    for (; next < end; ++next) {
      model_session* t = (*targets)[next];
      const message& m = (*frames)[next % frames->size()];
      // As ws_session::send: inline on the session's own thread, else posted to it.
      if (t->lane == lane) t->deliver(m, write);
      else asio::post((*p)[t->lane], [t, m, w = write]() mutable { t->deliver(std::move(m), w); });
    }
    if (next < targets->size()) asio::post((*p)[lane], *this);
  }
};

struct strands_sender {
  pool* p;
  const std::vector<model_session*>* targets;
  const std::vector<message>* frames;
  std::size_t next;
  bool write, post;
  void operator()() {
    const std::size_t end = std::min(next + unicast_batch, targets->size());
    for (; next < end; ++next) {
      model_session* t = (*targets)[next];
      auto h = [t, m = (*frames)[next % frames->size()], w = write]() mutable { t->deliver(std::move(m), w); };
      if (post) asio::post(*t->strand, std::move(h));
      else asio::dispatch(*t->strand, std::move(h));
    }
    if (next < targets->size()) asio::post((*p)[0], *this);
  }
};

run_result run_unicast(executor_fixture& fx, model md, int threads, const config& cfg, bool write) {
  const std::size_t n = static_cast<std::size_t>(threads);
  pool p(md == model::lanes ? pool::lanes : pool::shared, threads);
  auto parts = fx.parts(n);
  if (md != model::lanes)
    for (auto& s : fx.sessions) s.strand.emplace(asio::make_strand(p[0]));
  // Sender i targets sessions of lane i+1 (mod n): with 2 threads every send crosses threads.
  // Same seed for both models, so both send the same sequence.
  const std::size_t sends = cfg.unicasts * (write ? 1 : queue_only_factor);
  std::vector<std::vector<model_session*>> targets(n);
  std::vector<std::vector<message>> frames(n);
  std::mt19937 rng(12345);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& to = parts[(i + 1) % n];
    std::uniform_int_distribution<std::size_t> pick(0, to.size() - 1);
    for (std::size_t k = 0; k < sends / n; ++k) targets[i].push_back(to[pick(rng)]);
    frames[i] = make_frames(16, cfg.size);  // each sender encodes its own messages
  }
  reset_counts();
  const std::uint64_t target = (sends / n) * n;
  measurement m;
  m.begin();
  for (std::size_t i = 0; i < n; ++i) {
    if (md == model::lanes) asio::post(p[i], lanes_sender{&p, &targets[i], &frames[i], i, 0, write});
    else asio::post(p[0], strands_sender{&p, &targets[i], &frames[i], 0, write, md == model::strand_post});
  }
  const bool ok = wait_done(target, 60s);
  auto r = m.end(target);
  p.stop();
  if (!ok) die(std::string("unicast ") + model_name(md) + ": " + std::to_string(done_total()) + " of " +
               std::to_string(target) + " deliveries within 60 s");
  fx.check("unicast");
  return r;
}

// ---------------------------------------------------------------- 2. uid index

struct idx_session {
  std::size_t lane = 0;
  std::uint32_t uid = 0;
  bool bound = false;  // logged in, as its own lane sees it
  std::uint64_t delivered = 0;
};

using uid_map = std::unordered_map<std::string, std::vector<idx_session*>, herald::detail::transparent_hash, std::equal_to<>>;

// one_lock is (a) with a single shard: every operation of every thread meets on one mutex, an
// upper bound on what lock contention can cost (for guessing at machines with more threads).
enum class index_kind { sharded, routed, one_lock };
const char* index_name(index_kind k) {
  switch (k) {
    case index_kind::sharded: return "a) 64 locked shards";
    case index_kind::routed: return "b) per-thread, routed";
    default: return "a1) 1 locked shard";
  }
}
const index_kind index_kinds[] = {index_kind::sharded, index_kind::routed, index_kind::one_lock};

struct op {
  enum kind : std::uint8_t { unicast, toggle } what;
  std::uint32_t uid;
};

// Shared by both designs: the uids, where each uid's session lives, every lane's operations.
struct index_workload {
  std::vector<std::string> uids;
  std::vector<std::vector<op>> ops;  // per lane
  std::size_t lanes;

  // The lane a uid's session lives on (the accepting thread): unrelated to the uid's hash.
  static std::size_t home(std::uint32_t uid, std::size_t lanes) { return (uid * 2654435761u >> 8) % lanes; }

  index_workload(const config& cfg, std::size_t n) : lanes(n) {
    for (std::size_t k = 0; k < cfg.uids; ++k) {
      // Appended, not "u" + to_string(k): g++ 12 warns falsely (-Wrestrict) about the latter.
      std::string uid = "u";
      uid += std::to_string(k);
      uids.push_back(std::move(uid));
    }
    std::vector<std::vector<std::uint32_t>> homed(n);
    for (std::uint32_t k = 0; k < cfg.uids; ++k) homed[home(k, n)].push_back(k);
    std::mt19937 rng(4242);
    std::uniform_int_distribution<std::uint32_t> any(0, static_cast<std::uint32_t>(cfg.uids - 1));
    std::uniform_int_distribution<int> percent(0, 99);
    ops.resize(n);
    for (std::size_t l = 0; l < n; ++l) {
      std::uniform_int_distribution<std::size_t> mine(0, homed[l].size() - 1);
      for (std::size_t i = 0; i < cfg.ops / n; ++i) {
        if (percent(rng) < cfg.lookups) ops[l].push_back({op::unicast, any(rng)});
        else ops[l].push_back({op::toggle, homed[l][mine(rng)]});
      }
    }
  }
  std::size_t total() const { return ops[0].size() * ops.size(); }
};

// herald's shard: a mutex and the uid map (and the groups map, unused here, to keep its size).
struct shard {
  std::mutex mutex;
  uid_map uids;
  uid_map groups;
};

// A lane's own map in (b), on its own cache lines.
struct alignas(64) owned_map {
  uid_map uids;
};

struct index_run {
  pool* p;
  const index_workload* w;
  std::vector<idx_session>* sessions;
  std::vector<shard>* shards;      // (a)
  std::vector<owned_map>* owned;   // (b)
  std::vector<message>* frames;    // one per lane: each lane encodes its own

  std::size_t owner(std::string_view uid) const { return herald::detail::transparent_hash{}(uid) % w->lanes; }
  shard& shard_of(std::string_view uid) const { return (*shards)[herald::detail::transparent_hash{}(uid) % shards->size()]; }

  // Delivery from lane `here`: inline on the session's own lane, else posted there.
  void send(idx_session* s, const message& m, std::size_t here) const {
    if (s->lane == here) {
      ++s->delivered;
      done1();
    } else {
      asio::post((*p)[s->lane], [s, m] {
        ++s->delivered;
        done1();
      });
    }
  }

  static void insert(uid_map& map, std::string_view uid, idx_session* s) {
    auto it = map.find(uid);
    if (it == map.end()) it = map.emplace(std::string(uid), std::vector<idx_session*>{}).first;
    it->second.push_back(s);
  }
  static void erase(uid_map& map, std::string_view uid, idx_session* s) {
    auto it = map.find(uid);
    if (it == map.end()) return;
    auto& list = it->second;
    for (auto& e : list)
      if (e == s) {
        e = list.back();
        list.pop_back();
        break;
      }
    if (list.empty()) map.erase(it);
  }

  // (b): on the owner's lane.
  void lookup_owned(std::size_t o, std::string_view uid, const message& m) const {
    auto& map = (*owned)[o].uids;
    auto it = map.find(uid);
    if (it == map.end()) {
      done1();
      return;
    }
    for (auto* s : it->second) send(s, m, o);
  }

  void run_op(const op& o, std::size_t here, index_kind k) const {
    const std::string_view uid = w->uids[o.uid];
    const message& m = (*frames)[here];
    if (o.what == op::unicast) {
      if (k != index_kind::routed) {
        // As registry<multi_thread>::unicast: deliver (or post) under the shard's lock.
        auto& sh = shard_of(uid);
        std::lock_guard lock(sh.mutex);
        auto it = sh.uids.find(uid);
        if (it == sh.uids.end()) {
          done1();
          return;
        }
        for (auto* s : it->second) send(s, m, here);
      } else {
        const std::size_t owner_lane = owner(uid);
        if (owner_lane == here) lookup_owned(here, uid, m);
        else asio::post((*p)[owner_lane], [self = this, u = std::string(uid), m, owner_lane] { self->lookup_owned(owner_lane, u, m); });
      }
      return;
    }
    idx_session* s = &(*sessions)[o.uid];
    const bool login = !s->bound;
    s->bound = login;  // posts from one lane to another run in order, so a later toggle is safe
    if (k != index_kind::routed) {
      auto& sh = shard_of(uid);
      std::lock_guard lock(sh.mutex);
      if (login) insert(sh.uids, uid, s);
      else erase(sh.uids, uid, s);
      done1();
      return;
    }
    const std::size_t owner_lane = owner(uid);
    if (owner_lane == here) {
      if (login) insert((*owned)[here].uids, uid, s);
      else erase((*owned)[here].uids, uid, s);
      done1();
    } else if (login) {
      // The verdict goes back to the session's lane (login awaits it there).
      asio::post((*p)[owner_lane], [self = this, u = std::string(uid), s, owner_lane] {
        insert((*self->owned)[owner_lane].uids, u, s);
        asio::post((*self->p)[s->lane], [] { done1(); });
      });
    } else {
      asio::post((*p)[owner_lane], [self = this, u = std::string(uid), s, owner_lane] {
        erase((*self->owned)[owner_lane].uids, u, s);
        done1();
      });
    }
  }
};

// A lane works through its operations 64 per job (a job stands for one round of events).
struct index_driver {
  const index_run* run;
  std::size_t lane, next;
  index_kind kind;
  void operator()() {
    const auto& ops = run->w->ops[lane];
    const std::size_t end = std::min(next + 64, ops.size());
    for (; next < end; ++next) run->run_op(ops[next], lane, kind);
    if (next < ops.size()) asio::post((*run->p)[lane], *this);
  }
};

run_result run_index(const index_workload& w, index_kind k, int threads) {
  const std::size_t n = static_cast<std::size_t>(threads);
  pool p(pool::lanes, threads);
  std::vector<idx_session> sessions(w.uids.size());
  for (std::uint32_t u = 0; u < sessions.size(); ++u) {
    sessions[u].uid = u;
    sessions[u].lane = index_workload::home(u, n);
  }
  std::vector<shard> shards(k == index_kind::one_lock ? 1 : 64);
  std::vector<owned_map> owned(n);
  std::vector<message> frames;
  for (std::size_t i = 0; i < n; ++i) frames.push_back(message::text("lane " + std::to_string(i) + " says hello"));
  index_run run{&p, &w, &sessions, &shards, &owned, &frames};

  // Everyone logged in to start with, each entry made on the thread that would make it.
  reset_counts();
  for (std::size_t l = 0; l < n; ++l) {
    asio::post(p[l], [&, l] {
      for (auto& s : sessions) {
        const std::string_view uid = w.uids[s.uid];
        if (k != index_kind::routed ? s.lane == l : run.owner(uid) == l) {
          s.bound = true;
          if (k != index_kind::routed) {
            auto& sh = run.shard_of(uid);
            std::lock_guard lock(sh.mutex);
            index_run::insert(sh.uids, uid, &s);
          } else {
            index_run::insert(owned[l].uids, uid, &s);
          }
          done1();
        }
      }
    });
  }
  if (!wait_done(sessions.size(), 60s)) die("uid index: initial logins did not finish within 60 s");
  reset_counts();

  const std::uint64_t target = w.total();
  measurement m;
  m.begin();
  for (std::size_t l = 0; l < n; ++l) asio::post(p[l], index_driver{&run, l, 0, k});
  const bool ok = wait_done(target, 60s);
  auto r = m.end(target);
  p.stop();
  if (!ok) die(std::string("uid index ") + index_name(k) + ": " + std::to_string(done_total()) + " of " +
               std::to_string(target) + " operations within 60 s");
  return r;
}

// ---------------------------------------------------------------- reporting

struct stats {
  double median = 0, min = 0, max = 0;
};

stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  stats s;
  s.min = v.front();
  s.max = v.back();
  const std::size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return s;
}

struct series {
  std::string table, row;  // which table, which row in it
  int threads = 0;
  std::vector<run_result> runs;
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// "median [min-max]"
std::string cell(const stats& s, const char* f) { return fmt(f, s.median) + " [" + fmt(f, s.min) + "-" + fmt(f, s.max) + "]"; }

void print_table(const std::string& title, const std::vector<series*>& rows, const char* rate_name, bool ns) {
  std::printf("\n%s\n", title.c_str());
  std::printf("%-7s %-27s %-22s %-30s %-18s %-17s %-16s %s\n", "threads", "alternative", ns ? "CPU ns/op" : "CPU us/delivery",
              rate_name, ns ? "wall ns/op" : "", "cores used", "sleeps/1000 ops", "others %");
  const char* cpu_fmt = ns ? "%.0f" : "%.3f";
  for (auto* s : rows) {
    std::vector<double> cpu, rate, wall, cores, sleeps, others;
    for (auto& r : s->runs) {
      cpu.push_back(ns ? r.cpu_per_op_us() * 1000 : r.cpu_per_op_us());
      rate.push_back(r.ops_per_s());
      wall.push_back(r.wall_s * 1e9 / static_cast<double>(r.ops));
      cores.push_back(r.cpu_us / (r.wall_s * 1e6));
      sleeps.push_back(1000.0 * static_cast<double>(r.sleeps) / static_cast<double>(r.ops));
      others.push_back(r.others);
    }
    std::printf("%-7d %-27s %-22s %-30s %-18s %-17s %-16s %s\n", s->threads, s->row.c_str(), cell(summarize(cpu), cpu_fmt).c_str(),
                cell(summarize(rate), "%.0f").c_str(), ns ? cell(summarize(wall), "%.0f").c_str() : "",
                cell(summarize(cores), "%.2f").c_str(), cell(summarize(sleeps), "%.1f").c_str(), cell(summarize(others), "%.0f").c_str());
  }
  // Each alternative against a) (the first row of its thread count): the ratio of each pair of
  // runs made back to back in one repetition, so that both saw about the same load.
  const series* base = nullptr;
  for (auto* s : rows) {
    if (!base || base->threads != s->threads) {
      base = s;
      continue;
    }
    std::vector<double> cpu, rate;
    for (std::size_t i = 0; i < s->runs.size() && i < base->runs.size(); ++i) {
      cpu.push_back(s->runs[i].cpu_per_op_us() / base->runs[i].cpu_per_op_us());
      rate.push_back(s->runs[i].ops_per_s() / base->runs[i].ops_per_s());
    }
    const std::string label = s->row.substr(0, s->row.find(')') + 1);
    std::printf("  %d thread(s), %s / a), paired by repetition: CPU per op x%s, throughput x%s\n", s->threads, label.c_str(),
                cell(summarize(cpu), "%.2f").c_str(), cell(summarize(rate), "%.2f").c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse(argc, argv);
  std::printf("threading_bench: %u hardware threads; reps %d; executor: %zu sessions, %zu broadcasts of %zu-byte payloads, "
              "%zu unicasts; index: %zu ops over %zu uids, %d%% unicast\n",
              std::thread::hardware_concurrency(), cfg.reps, cfg.sessions, cfg.broadcasts, cfg.size, cfg.unicasts, cfg.ops,
              cfg.uids, cfg.lookups);
  {
    std::ifstream f("/proc/loadavg");
    std::string line;
    std::getline(f, line);
    std::printf("load average at start: %s\n", line.c_str());
  }
  const auto started = clock_type::now();
  const load_sample load_start = sample_load();
  const bool do_executor = cfg.only.empty() || cfg.only == "executor";
  const bool do_index = cfg.only.empty() || cfg.only == "index";

  std::unique_ptr<executor_fixture> fx;
  if (do_executor) fx = std::make_unique<executor_fixture>(cfg.sessions);
  std::map<int, std::unique_ptr<index_workload>> workloads;
  if (do_index)
    for (int n : cfg.threads) workloads[n] = std::make_unique<index_workload>(cfg, static_cast<std::size_t>(n));

  // Every series, in the order of the tables.
  std::map<std::string, series> all;
  std::vector<std::string> order;
  auto record = [&](const std::string& table, const std::string& row, int threads, const run_result& r) {
    const std::string key = table + "|" + std::to_string(threads) + "|" + row;
    auto [it, fresh] = all.try_emplace(key);
    if (fresh) {
      it->second.table = table;
      it->second.row = row;
      it->second.threads = threads;
      order.push_back(key);
    }
    it->second.runs.push_back(r);
    std::printf("  %-34s %d thr  %-28s cpu %8.3f us/op  %10.0f op/s  others %3.0f%%\n", table.c_str(), threads, row.c_str(),
                r.cpu_per_op_us(), r.ops_per_s(), r.others);
    std::fflush(stdout);
  };

  const char* bw = "broadcast, write";
  const char* bq = "broadcast, queue-only";
  const char* uw = "unicast across threads, write";
  const char* uq = "unicast across threads, queue-only";
  const char* ix = "uid index";
  int reps_done = 0;
  double longest_rep_s = 0;
  for (int rep = 0; rep < cfg.reps; ++rep) {
    const double elapsed = std::chrono::duration<double>(clock_type::now() - started).count();
    if (rep > 0 && elapsed + longest_rep_s > cfg.time_limit_s) {
      std::printf("time limit (%d s): stopping after %d repetitions\n", cfg.time_limit_s, rep);
      break;
    }
    const auto rep_start = clock_type::now();
    std::printf("repetition %d of %d\n", rep + 1, cfg.reps);
    // The alternatives back to back, their order rotated from one repetition to the next
    // (a b b', b b' a, b' a b, ...; likewise a b a1 for the index), so none always goes first.
    for (int threads : cfg.threads) {
      if (do_executor) {
        for (auto [table, write, broadcast] : {std::tuple(bw, true, true), std::tuple(bq, false, true),
                                               std::tuple(uw, true, false), std::tuple(uq, false, false)}) {
          for (int i = 0; i < 3; ++i) {
            const model md = models[(i + rep) % 3];
            record(table, model_name(md), threads,
                   broadcast ? run_broadcast(*fx, md, threads, cfg, write) : run_unicast(*fx, md, threads, cfg, write));
          }
        }
      }
      if (do_index) {
        for (int i = 0; i < 3; ++i) {
          const index_kind k = index_kinds[(i + rep) % 3];
          record(ix, index_name(k), threads, run_index(*workloads[threads], k, threads));
        }
      }
    }
    ++reps_done;
    longest_rep_s = std::max(longest_rep_s, std::chrono::duration<double>(clock_type::now() - rep_start).count());
  }
  const double total_s = std::chrono::duration<double>(clock_type::now() - started).count();
  const double others_all = others_pct(load_start, sample_load());

  // Rows in a fixed order: per table, threads 1 then 2, a) then b).
  auto rows_of = [&](const std::string& table) {
    std::vector<series*> rows;
    for (int threads : cfg.threads)
      for (const char* row : {model_name(model::lanes), model_name(model::strand_dispatch), model_name(model::strand_post),
                              index_name(index_kind::sharded), index_name(index_kind::routed), index_name(index_kind::one_lock)}) {
        auto it = all.find(table + "|" + std::to_string(threads) + "|" + std::string(row));
        if (it != all.end()) rows.push_back(&it->second);
      }
    return rows;
  };
  std::printf("\n==== results: median [min-max] of %d repetitions. \"cores used\": the workers' CPU time / wall time (how much\n"
              "they ran at once); \"sleeps\": the workers' voluntary context switches (ran out of work, woken by another\n"
              "thread); \"others %%\": share of the whole machine (%u CPUs) that OTHER processes used during the run\n",
              reps_done, std::thread::hardware_concurrency());
  if (do_executor) {
    const std::string shape = " (" + std::to_string(cfg.sessions) + " sessions on loopback TCP, " +
                              std::to_string(cfg.size) + "-byte payloads)";
    print_table(std::string("1a. ") + bw + ": " + std::to_string(cfg.broadcasts) + " broadcasts" + shape, rows_of(bw), "deliveries/s", false);
    print_table(std::string("1b. ") + bq + ": the executor's own cost, no socket write", rows_of(bq), "deliveries/s", false);
    print_table(std::string("1c. ") + uw + ": " + std::to_string(cfg.unicasts) + " sends" + shape +
                    "; 1 thread: same-thread sends", rows_of(uw), "deliveries/s", false);
    print_table(std::string("1d. ") + uq + ": no socket write", rows_of(uq), "deliveries/s", false);
    std::printf("  (every byte written reached its peer: %llu bytes checked)\n", static_cast<unsigned long long>(fx->checked_bytes));
  }
  if (do_index)
    print_table(std::string("2. ") + ix + ": " + std::to_string(workloads.begin()->second->total()) + " ops over " + std::to_string(cfg.uids) +
                    " uids, " + std::to_string(cfg.lookups) + "% unicast (lookup + deliver), the rest login/logout",
                rows_of(ix), "ops/s", true);
  std::printf("\nwhole run: %.0f s; other processes used %.0f%% of the machine meanwhile\n", total_s, others_all);
  if (others_all > 10) std::printf("warning: the machine was shared (over 10%% used by others): compare a) with b) run by run\n");
  return 0;
}
