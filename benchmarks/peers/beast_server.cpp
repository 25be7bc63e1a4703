// beast_server: the uid_push_server protocol on Boost.Beast 1.74 (Boost.Asio), one thread.
// A benchmark peer for herald, written the way Beast's own examples write a push server:
// one websocket::stream<beast::tcp_stream> per session, async_read into a flat_buffer, and
// the broadcast of the advanced chat example: the message is built once as a
// std::shared_ptr<const std::string>, every session queues the pointer and writes its queue
// one async_write at a time. One addition to the examples: TCP_NODELAY on every connection.
//
// Protocol (WebSocket, text or binary):
//   first message        your uid: 1 to 128 bytes, no ':', not "all" (else close 1008 with the reason)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> to every session of <uid>
//   all:<message>        <message> to every logged-in session, the sender included
//   anything else        -> "error: expected <uid>:<message>"
// The split is at the first ':'. Several sessions may log in as the same uid.
//
// Usage: beast_server [--address A (0.0.0.0)] [--port P (1234; 0 picks a free one)]
// Prints "beast_server listening on A:P" when ready; SIGINT/SIGTERM stop it with status 0.
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

class session;

// uid lookups with a std::string_view key, without building a std::string.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Who is logged in: every session, and the sessions of each uid.
class shared_state {
 public:
  void join(session* s, const std::string& uid) {
    sessions_.insert(s);
    by_uid_[uid].push_back(s);
  }
  void leave(session* s, const std::string& uid) {
    sessions_.erase(s);
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end()) return;
    auto& v = it->second;
    std::erase(v, s);
    if (v.empty()) by_uid_.erase(it);
  }
  void broadcast(std::string_view body, bool binary);
  void unicast(std::string_view uid, std::string_view body, bool binary);

 private:
  std::unordered_set<session*> sessions_;
  std::unordered_map<std::string, std::vector<session*>, string_hash, std::equal_to<>> by_uid_;
};

std::string_view check_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 128) return "uid must be 1 to 128 bytes";
  if (uid.find(':') != std::string_view::npos) return "uid must not contain ':'";
  if (uid == "all") return "uid 'all' is reserved";
  return {};
}

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket&& socket, shared_state& state) : ws_(std::move(socket)), state_(state) {}
  ~session() {
    if (joined_) state_.leave(this, uid_);
  }

  void run() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(1024 * 1024);
    ws_.async_accept(beast::bind_front_handler(&session::on_accept, shared_from_this()));
  }

  // Queues a message; the queue is written one async_write at a time.
  void send(std::shared_ptr<const std::string> const& m, bool binary) {
    queue_.push_back({m, binary});
    if (queue_.size() > 1) return;  // a write is already in progress
    do_write();
  }

 private:
  struct outgoing {
    std::shared_ptr<const std::string> data;
    bool binary;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return;
    do_read();
  }

  void do_read() { ws_.async_read(buffer_, beast::bind_front_handler(&session::on_read, shared_from_this())); }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return;  // closed or failed: the last shared_ptr goes and the destructor leaves
    const auto data = buffer_.cdata();
    const std::string_view text(static_cast<const char*>(data.data()), data.size());
    const bool binary = ws_.got_binary();
    if (!joined_) {
      const std::string_view why = check_uid(text);
      if (!why.empty()) {
        ws_.async_close(websocket::close_reason(websocket::close_code::policy_error, beast::string_view(why.data(), why.size())),
                        [self = shared_from_this()](beast::error_code) {});
        return;
      }
      uid_.assign(text);
      buffer_.consume(buffer_.size());
      joined_ = true;
      state_.join(this, uid_);
      send(std::make_shared<const std::string>("login successful, your uid is " + uid_), false);
      return do_read();
    }
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
      send(std::make_shared<const std::string>("error: expected <uid>:<message>"), false);
    } else {
      const std::string_view to = text.substr(0, colon);
      const std::string_view body = text.substr(colon + 1);
      if (to == "all") state_.broadcast(body, binary);
      else state_.unicast(to, body, binary);
    }
    buffer_.consume(buffer_.size());
    do_read();
  }

  void do_write() {
    ws_.text(!queue_.front().binary);
    ws_.async_write(net::buffer(*queue_.front().data), beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    queue_.erase(queue_.begin());
    if (!queue_.empty()) do_write();
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  shared_state& state_;
  std::vector<outgoing> queue_;
  std::string uid_;
  bool joined_ = false;
};

void shared_state::broadcast(std::string_view body, bool binary) {
  const auto m = std::make_shared<const std::string>(body);
  for (session* s : sessions_) s->send(m, binary);
}

void shared_state::unicast(std::string_view uid, std::string_view body, bool binary) {
  const auto it = by_uid_.find(uid);
  if (it == by_uid_.end()) return;
  const auto m = std::make_shared<const std::string>(body);
  for (session* s : it->second) s->send(m, binary);
}

// Accepts connections until the acceptor closes; waits a little after an error such as
// "too many open files" instead of spinning.
class listener : public std::enable_shared_from_this<listener> {
 public:
  listener(net::io_context& io, tcp::acceptor& acceptor, shared_state& state)
      : io_(io), acceptor_(acceptor), state_(state), retry_(io) {}
  void run() { do_accept(); }

 private:
  void do_accept() { acceptor_.async_accept(io_, beast::bind_front_handler(&listener::on_accept, shared_from_this())); }
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (ec) {
      retry_.expires_after(std::chrono::milliseconds(10));
      retry_.async_wait([self = shared_from_this()](beast::error_code e) {
        if (!e) self->do_accept();
      });
      return;
    }
    // Nagle off, as herald and ws do by default: otherwise a small frame written while an
    // earlier one waits for a delayed ACK sits for 40 ms (Beast leaves this to the application).
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<session>(std::move(socket), state_)->run();
    do_accept();
  }

  net::io_context& io_;
  tcp::acceptor& acceptor_;
  shared_state& state_;
  net::steady_timer retry_;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "beast_server: %s\nusage: beast_server [--address A] [--port P]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "0.0.0.0";
  unsigned short port = 1234;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage("missing value");
    if (a == "--address") address = argv[++i];
    else if (a == "--port") port = static_cast<unsigned short>(std::atoi(argv[++i]));
    else usage("unknown option");
  }
  shared_state state;  // outlives the io_context, whose destructor destroys the sessions
  net::io_context io{1};
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(net::ip::make_address(address), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  std::make_shared<listener>(io, acceptor, state)->run();
  std::cout << "beast_server listening on " << acceptor.local_endpoint() << " (Boost " << BOOST_VERSION / 100000 << "."
            << BOOST_VERSION / 100 % 1000 << ", 1 thread)" << std::endl;

  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    beast::error_code ec;
    acceptor.close(ec);
    io.stop();
  });
  io.run();
  std::cout << "beast_server stopped" << std::endl;
  return 0;
}
