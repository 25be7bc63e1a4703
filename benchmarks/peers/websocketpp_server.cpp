// websocketpp_server: the uid_push_server protocol on websocketpp 0.8 (asio transport without
// TLS, Boost.Asio), one thread. A benchmark peer for herald, written the way websocketpp's
// examples write a broadcast server: handlers for open/message/close, a set of connections,
// and connection::send(payload, opcode) to each receiver. One addition to the examples:
// TCP_NODELAY on every connection.
//
// Protocol (WebSocket, text or binary):
//   first message        your uid: 1 to 128 bytes, no ':', not "all" (else close 1008 with the reason)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> to every session of <uid>
//   all:<message>        <message> to every logged-in session, the sender included
//   anything else        -> "error: expected <uid>:<message>"
// The split is at the first ':'. Several sessions may log in as the same uid.
//
// Built as C++17: websocketpp 0.8.2's headers do not compile as C++20 (template-ids on
// constructors and destructors).
//
// Usage: websocketpp_server [--address A (0.0.0.0)] [--port P (1234; 0 picks a free one)]
// Prints "websocketpp_server listening on A:P" when ready; SIGINT/SIGTERM stop it with status 0.
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {

// What each connection remembers: websocketpp lets the config add a base class to connection.
struct uid_data {
  std::string uid;
  bool logged_in = false;
};

struct push_config : websocketpp::config::asio {
  typedef push_config type;
  typedef uid_data connection_base;
};

using server = websocketpp::server<push_config>;
using connection_ptr = server::connection_ptr;
using websocketpp::connection_hdl;

std::string_view check_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 128) return "uid must be 1 to 128 bytes";
  if (uid.find(':') != std::string_view::npos) return "uid must not contain ':'";
  if (uid == "all") return "uid 'all' is reserved";
  return {};
}

class push_server {
 public:
  push_server() {
    s_.clear_access_channels(websocketpp::log::alevel::all);
    s_.clear_error_channels(websocketpp::log::elevel::all);
    s_.init_asio();
    s_.set_reuse_addr(true);
    s_.set_listen_backlog(4096);
    s_.set_max_message_size(1024 * 1024);
    // Nagle off, as herald and ws do by default: otherwise a small frame written while an
    // earlier one waits for a delayed ACK sits for 40 ms (websocketpp leaves this to the application).
    // (tcp_pre_init runs after accept; socket_init runs before, on a socket not yet open.)
    s_.set_tcp_pre_init_handler([this](connection_hdl h) {
      boost::system::error_code ec;
      s_.get_con_from_hdl(h)->get_socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
    });
    s_.set_message_handler([this](connection_hdl h, server::message_ptr m) { on_message(h, m); });
    s_.set_close_handler([this](connection_hdl h) { on_close(h); });
  }

  int run(const std::string& address, unsigned short port) {
    s_.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(address), port));
    s_.start_accept();
    websocketpp::lib::asio::error_code ec;
    std::cout << "websocketpp_server listening on " << s_.get_local_endpoint(ec) << " (websocketpp "
              << websocketpp::major_version << "." << websocketpp::minor_version << "." << websocketpp::patch_version
              << ", 1 thread)" << std::endl;
    boost::asio::signal_set signals(s_.get_io_service(), SIGINT, SIGTERM);
    signals.async_wait([this](const boost::system::error_code&, int) {
      websocketpp::lib::error_code e;
      s_.stop_listening(e);
      s_.stop();
    });
    s_.run();
    std::cout << "websocketpp_server stopped" << std::endl;
    return 0;
  }

 private:
  void on_message(connection_hdl h, server::message_ptr msg) {
    connection_ptr con = s_.get_con_from_hdl(h);
    const std::string& text = msg->get_payload();
    const auto op = msg->get_opcode();
    if (!con->logged_in) {
      const std::string_view why = check_uid(text);
      if (!why.empty()) {
        con->close(websocketpp::close::status::policy_violation, std::string(why));
        return;
      }
      con->uid = text;
      con->logged_in = true;
      online_.insert(con);
      by_uid_[con->uid].push_back(con);
      con->send("login successful, your uid is " + con->uid, websocketpp::frame::opcode::text);
      return;
    }
    const auto colon = text.find(':');
    if (colon == std::string::npos) {
      con->send(std::string("error: expected <uid>:<message>"), websocketpp::frame::opcode::text);
      return;
    }
    const std::string to = text.substr(0, colon);  // short uids fit the small-string buffer
    const std::string body = text.substr(colon + 1);
    if (to == "all") {
      for (const auto& c : online_) c->send(body, op);
    } else if (const auto it = by_uid_.find(to); it != by_uid_.end()) {
      for (const auto& c : it->second) c->send(body, op);
    }
  }

  void on_close(connection_hdl h) {
    connection_ptr con = s_.get_con_from_hdl(h);
    if (!con->logged_in) return;
    con->logged_in = false;
    online_.erase(con);
    if (auto it = by_uid_.find(con->uid); it != by_uid_.end()) {
      auto& v = it->second;
      v.erase(std::remove(v.begin(), v.end(), con), v.end());
      if (it->second.empty()) by_uid_.erase(it);
    }
  }

  server s_;
  std::unordered_set<connection_ptr> online_;
  std::unordered_map<std::string, std::vector<connection_ptr>> by_uid_;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "websocketpp_server: %s\nusage: websocketpp_server [--address A] [--port P]\n", why);
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
  push_server s;
  return s.run(address, port);
}
