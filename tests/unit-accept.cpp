// Accepting under resource exhaustion: an accept loop out of file descriptors backs off
// instead of spinning and serves the waiting connection once descriptors are free again;
// a session_limit answers 503 past its cap and frees its slots as sessions end.
#include "test_support.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

using namespace herald_test;
using herald::ws::opcode;

namespace {

const std::string upgrade_request =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// ---- the EMFILE child ----

// Exit statuses of the child, so the parent can say what went wrong.
enum child_status : int {
  child_ok = 0,
  child_setup_failed = 10,
  child_not_full = 11,         // /dev/null never ran out: RLIMIT_NOFILE not applied
  child_accepted_while_full = 12,
  child_spun = 13,             // more failed accepts than the backoff allows while out of descriptors
  child_not_served = 14,       // the pending connection was not served once descriptors were free
  child_exception = 15,
};

constexpr auto full_window = std::chrono::seconds(1);
constexpr auto backoff = std::chrono::milliseconds(100);

bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reads exactly n bytes within `timeout_ms` (poll-bounded); false on timeout, EOF or error.
bool read_exact(int fd, void* p, std::size_t n, int timeout_ms) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t got = ::read(fd, c, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    c += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

// Reads until `stop` appears (or timeout/EOF); returns what was read.
std::string read_until(int fd, std::string_view stop, int timeout_ms) {
  std::string out;
  char buf[1024];
  while (out.find(stop) == std::string::npos) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) break;
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got <= 0) break;
    out.append(buf, static_cast<std::size_t>(got));
  }
  return out;
}

struct child_report {
  long failed_accepts = 0;  // while out of descriptors
  long allowed = 0;         // what the backoff permits in the time that passed
  int fds_filled = 0;
};

// Runs in the forked child: out of descriptors, then not, with herald::accept_loop throughout.
int emfile_child(int to_parent, int from_parent) {
  try {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return child_setup_failed;
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return child_setup_failed;

    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const unsigned short port = acceptor.local_endpoint().port();

    int accepted = 0;
    bool served = false, ended = false;
    auto options = std::make_shared<const herald::session_options>();
    herald::accept_loop_options loop_options;
    loop_options.backoff = backoff;
    long failed_accepts = 0;
    bool only_emfile = true;
    loop_options.on_error = [&](const herald::error_code& ec) {
      ++failed_accepts;
      if (ec != asio::error::no_descriptors) only_emfile = false;
    };
    asio::co_spawn(io, herald::accept_loop(acceptor, [&](tcp::socket s) {
                     ++accepted;
                     asio::co_spawn(io, [&, s = std::move(s)]() mutable -> asio::awaitable<void> {
                       auto ws = co_await herald::accept_websocket(std::move(s), options);
                       if (!ws) co_return;
                       auto m = co_await ws->read();
                       if (m) {
                         ws->send(herald::message::text(m->data));
                         served = true;
                         while (co_await ws->read()) {
                         }
                       }
                       ended = true;
                     }, asio::detached);
                   }, loop_options), asio::detached);

    // Start the loop (its accept is now pending) and exercise, while descriptors are still
    // free, what its error path runs: under UBSan a first virtual call through a type checks
    // the vtable with a pipe(), which fails once the table is full (a false "invalid vptr").
    io.poll();
    {
      herald::error_code ec(EMFILE, asio::error::get_system_category());
      volatile bool warm = ec == asio::error::no_descriptors || herald::detail::is_system_file_table_full(ec) ||
                           ec == asio::error::no_buffer_space || ec == asio::error::no_memory ||
                           ec == asio::error::operation_aborted;
      (void)warm;
      bool waited = false;
      asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(std::chrono::milliseconds(1));
        herald::error_code wec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, wec));
        waited = true;
      }, asio::detached);
      while (!waited) io.run_one();
    }

    // Fill the descriptor table.
    std::vector<int> fillers;
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        fillers.push_back(fd);
        if (fillers.size() > 100000) return child_not_full;
        continue;
      }
      if (errno == EMFILE) break;
      return child_setup_failed;
    }

    // Tell the parent where to connect, then wait until its connection is in the backlog.
    if (!write_all(to_parent, &port, sizeof port)) return child_setup_failed;
    char go = 0;
    if (!read_exact(from_parent, &go, 1, 10000)) return child_setup_failed;

    // Out of descriptors with a connection pending: the loop must wait `backoff` between
    // attempts, not spin. Each retry follows a full backoff, so in any stretch of time T there
    // are at most 1 + T / backoff attempts, however slow or loaded the machine is.
    const auto start = std::chrono::steady_clock::now();
    io.run_for(full_window);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    child_report report{failed_accepts, 1 + static_cast<long>(elapsed / backoff), static_cast<int>(fillers.size())};
    write_all(to_parent, &report, sizeof report);
    if (accepted != 0) return child_accepted_while_full;
    if (failed_accepts == 0 || !only_emfile) return child_setup_failed;
    if (failed_accepts > report.allowed) return child_spun;

    // Descriptors back: the waiting connection is accepted and served.
    for (int fd : fillers) ::close(fd);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!ended && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(20));
    if (!served || accepted != 1) return child_not_served;
    return child_ok;
  } catch (...) {
    return child_exception;
  }
}

const char* describe(int status) {
  switch (status) {
    case child_ok: return "ok";
    case child_setup_failed: return "setup failed";
    case child_not_full: return "descriptor table never filled";
    case child_accepted_while_full: return "accepted while out of descriptors";
    case child_spun: return "accept loop spun (retried faster than its backoff while out of descriptors)";
    case child_not_served: return "pending connection not served after descriptors were freed";
    case child_exception: return "exception";
    default: return "unexpected status";
  }
}

std::string masked_text(std::string_view payload) { return raw_client::frame(opcode::text, payload); }

}  // namespace

TEST_CASE("accept loop out of file descriptors backs off, then serves the waiting connection") {
  int to_parent[2], from_parent[2];
  REQUIRE(::pipe2(to_parent, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(from_parent, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(to_parent[0]);
    ::close(from_parent[1]);
    const int status = emfile_child(to_parent[1], from_parent[0]);
    ::_exit(status);  // no atexit handlers: the test framework's state belongs to the parent
  }
  ::close(to_parent[1]);
  ::close(from_parent[0]);

  unsigned short port = 0;
  const bool got_port = read_exact(to_parent[0], &port, sizeof port, 10000);
  int client = -1;
  std::string response, echo, close_reply;
  child_report report;
  bool got_report = false;
  if (got_port) {
    // The kernel completes the TCP handshake into the backlog although the child cannot accept.
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    CHECK(write_all(client, upgrade_request.data(), upgrade_request.size()));
    const char go = 'g';
    write_all(from_parent[1], &go, 1);

    got_report = read_exact(to_parent[0], &report, sizeof report, 15000);
    response = read_until(client, "\r\n\r\n", 10000);
    if (response.rfind("HTTP/1.1 101", 0) == 0) {
      const std::string f = masked_text("served after EMFILE");
      write_all(client, f.data(), f.size());
      echo = read_until(client, "served after EMFILE", 5000);
      const std::string c = raw_client::frame(opcode::close, std::string("\x03\xE8", 2));
      write_all(client, c.data(), c.size());
      close_reply = read_until(client, std::string("\x88\x02\x03\xE8", 4), 5000);
    }
  }

  // Bounded wait for the child.
  int wstatus = 0;
  pid_t done = 0;
  for (int i = 0; i < 3000 && done == 0; ++i) {
    done = ::waitpid(pid, &wstatus, WNOHANG);
    if (done == 0) ::usleep(10000);
  }
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &wstatus, 0);
  }
  if (client >= 0) ::close(client);
  ::close(to_parent[0]);
  ::close(from_parent[1]);

  REQUIRE(got_port);
  REQUIRE_MESSAGE(done == pid, "the child did not finish within 30 s");
  REQUIRE(WIFEXITED(wstatus));
  const int status = WEXITSTATUS(wstatus);
  REQUIRE(got_report);
  MESSAGE("child filled " << report.fds_filled << " descriptors; failed accepts while out of them: "
                          << report.failed_accepts << " (the backoff allows " << report.allowed << ")");
  CHECK_MESSAGE(status == child_ok, "child: " << std::string(describe(status)));
  CHECK(report.fds_filled > 0);
  CHECK_MESSAGE(response.rfind("HTTP/1.1 101", 0) == 0, response);
  CHECK(echo.find("served after EMFILE") != std::string::npos);
  CHECK(close_reply.find(std::string("\x88\x02\x03\xE8", 4)) != std::string::npos);
}

TEST_CASE("session_limit: past the cap the upgrade is answered 503; a freed slot is reused") {
  asio::io_context io;
  test_server server(io);
  auto limit = std::make_shared<herald::session_limit>(3);
  server.options->limit = limit;
  run(io, [&]() -> asio::awaitable<void> {
    std::vector<session_ptr> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(co_await login_client(server, "c" + std::to_string(i)));
    CHECK(limit->live() == 3);

    // The fourth gets 503 before any WebSocket state exists, with Retry-After.
    auto fourth = co_await raw_client::connect(server.port());
    co_await fourth.write(upgrade_request);
    const std::string answer = co_await fourth.read_all();
    CHECK_MESSAGE(answer.rfind("HTTP/1.1 503 ", 0) == 0, answer);
    CHECK(answer.find("Retry-After: 5\r\n") != std::string::npos);
    CHECK(answer.find("too many sessions") != std::string::npos);
    CHECK(limit->live() == 3);  // the refusal held no slot

    // A malformed request is judged before the cap: 400, not 503.
    auto bad = co_await raw_client::connect(server.port());
    co_await bad.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string bad_answer = co_await bad.read_all();
    CHECK_MESSAGE(bad_answer.rfind("HTTP/1.1 400 ", 0) == 0, bad_answer);

    // The three are unaffected.
    CHECK(server.users.broadcast("still three") == 3);
    for (auto& c : clients) CHECK(co_await next_text(*c) == "still three");

    // One leaves cleanly, one vanishes: both slots come back.
    clients[0]->close();
    CHECK(!(co_await clients[0]->read()));
    REQUIRE(co_await eventually([&] { return limit->live() == 2; }));
    auto fifth = co_await login_client(server, "c3");
    CHECK(limit->live() == 3);
    clients[1]->drop();
    REQUIRE(co_await eventually([&] { return limit->live() == 2; }));
    auto sixth = co_await login_client(server, "c4");
    CHECK(limit->live() == 3);

    // And the cap holds again.
    auto seventh = co_await raw_client::connect(server.port());
    co_await seventh.write(upgrade_request);
    const std::string again = co_await seventh.read_all();
    CHECK_MESSAGE(again.rfind("HTTP/1.1 503 ", 0) == 0, again);
    CHECK(server.users.unicast("c3", "for the fifth") == 1);
    CHECK(co_await next_text(*fifth) == "for the fifth");
    CHECK(server.users.unicast("c4", "for the sixth") == 1);
    CHECK(co_await next_text(*sixth) == "for the sixth");
  });
}
