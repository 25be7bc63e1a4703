// The HTTP push API (herald/http_api.hpp) on the single_thread registry, over real loopback
// sockets: routes (send, group, broadcast, online, presence), JSON answers,
// 401/404/405/411/413/400, keep-alive and pipelining, Expect: 100-continue, binary bodies,
// percent-encoded uids.
#include "test_support.hpp"

#include <herald/http_api.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace herald_test;

namespace {

struct http_answer {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

std::string lower(std::string s) {
  for (auto& c : s) c = herald::http::ascii_lower(c);
  return s;
}

// Reads one response (head + Content-Length body) from `c`; `pending` keeps what follows.
asio::awaitable<http_answer> read_answer(raw_client& c, std::string& pending) {
  while (pending.find("\r\n\r\n") == std::string::npos) pending += co_await c.read_some();
  const auto end = pending.find("\r\n\r\n");
  const std::string head = pending.substr(0, end);
  pending.erase(0, end + 4);
  http_answer a;
  a.status = std::stoi(head.substr(9, 3));
  std::size_t pos = head.find("\r\n");
  while (pos != std::string::npos) {
    const auto next = head.find("\r\n", pos + 2);
    const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    const auto colon = line.find(':');
    if (colon != std::string::npos) a.headers[lower(line.substr(0, colon))] = std::string(herald::http::trim(line.substr(colon + 1)));
    pos = next;
  }
  const std::size_t length = a.headers.count("content-length") ? std::stoul(a.headers["content-length"]) : 0;
  while (pending.size() < length) pending += co_await c.read_some();
  a.body = pending.substr(0, length);
  pending.erase(0, length);
  co_return a;
}

std::string post(const std::string& path, const std::string& body, const std::string& key = "k3y",
                 const std::string& extra = "") {
  std::string r = "POST " + path + " HTTP/1.1\r\nHost: x\r\n";
  if (!key.empty()) r += "Authorization: Bearer " + key + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
  return r;
}

std::string get(const std::string& path, const std::string& key = "k3y") {
  std::string r = "GET " + path + " HTTP/1.1\r\nHost: x\r\n";
  if (!key.empty()) r += "Authorization: Bearer " + key + "\r\n";
  return r + "\r\n";
}

struct api_fixture {
  asio::io_context io;
  test_server<> server{io};
  tcp::acceptor api{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};

  explicit api_fixture(decltype(herald::http_api_options::extra_routes) extra_routes = {}) {
    herald::http_api_options o;
    o.api_key = "k3y";
    o.max_body_size = 100;
    o.extra_routes = std::move(extra_routes);
    asio::co_spawn(io, herald::serve_http_api(api, server.users, o), asio::detached);
  }
  unsigned short port() const { return api.local_endpoint().port(); }
  void stop() {
    api.close();
    server.stop();
  }
};

}  // namespace

TEST_CASE("http api: POST /send/<uid> reaches every session of the uid and says how many") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto a1 = co_await login_client(f.server, "alice");
    auto a2 = co_await login_client(f.server, "alice");
    auto b = co_await login_client(f.server, "bob");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(post("/send/alice", "hello: with a colon"));
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "{\"delivered\": 2}\n");
    CHECK(a.headers["content-type"] == "application/json");
    CHECK(a.headers["connection"] == "keep-alive");
    CHECK(co_await next_text(*a1) == "hello: with a colon");
    CHECK(co_await next_text(*a2) == "hello: with a colon");
    // Nobody else: bob's next message is the broadcast below.
    co_await c.write(post("/broadcast", "to all"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "{\"delivered\": 3}\n");
    CHECK(co_await next_text(*b) == "to all");
    CHECK(co_await next_text(*a1) == "to all");
    CHECK(co_await next_text(*a2) == "to all");
    // A uid nobody holds.
    co_await c.write(post("/send/nobody", "x"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "{\"delivered\": 0}\n");
    f.stop();
  });
}

TEST_CASE("http api: GET /online/<uid>, percent-decoded") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto s = co_await login_client(f.server, "a b/é");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(get("/online/a%20b%2F%C3%A9"));
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "{\"online\": true}\n");
    co_await c.write(get("/online/carol?x=1"));
    a = co_await read_answer(c, pending);
    CHECK(a.body == "{\"online\": false}\n");
    co_await c.write(get("/online/bad%zz"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 400);
    co_await c.write(post("/send/a%20b%2f%c3%a9", "hi"));
    a = co_await read_answer(c, pending);
    CHECK(a.body == "{\"delivered\": 1}\n");
    CHECK(co_await next_text(*s) == "hi");
    f.stop();
  });
}

TEST_CASE("http api: GET /presence counts uids and sessions; POST /group/<name> answers how many it reached") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto a1 = co_await login_client(f.server, "alice");
    auto a2 = co_await login_client(f.server, "alice");
    auto b = co_await login_client(f.server, "bob");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(get("/presence"));
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "{\"uids\": 2, \"sessions\": 3}\n");
    co_await c.write(post("/group/no%20one", "x"));  // nobody joined: reaches no one
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "{\"delivered\": 0}\n");
    co_await c.write(get("/group/x"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 405);
    CHECK(a.headers["allow"] == "POST");
    co_await c.write(post("/presence", ""));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 405);
    CHECK(a.headers["allow"] == "GET");
    co_await c.write(post("/group/bad%zz", "x"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 400);
    CHECK(a.body.find("group") != std::string::npos);
    b->close();
    CHECK(!(co_await b->read()));
    REQUIRE(co_await eventually([&] { return f.server.users.session_count() == 2; }));
    co_await c.write(get("/presence"));
    a = co_await read_answer(c, pending);
    CHECK(a.body == "{\"uids\": 1, \"sessions\": 2}\n");
    f.stop();
  });
}

TEST_CASE("http api: 401 without the key, 404 and 405 otherwise, and the connection stays usable") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await login_client(f.server, "alice");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(post("/send/alice", "no key", ""));
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 401);
    CHECK(a.headers["www-authenticate"].find("Bearer") == 0);
    co_await c.write(post("/send/alice", "wrong key", "k3z"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 401);
    co_await c.write(post("/send/alice", "longer key", "k3yy"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 401);
    co_await c.write("POST /send/alice HTTP/1.1\r\nAuthorization: Basic azN5\r\nContent-Length: 1\r\n\r\nx");
    a = co_await read_answer(c, pending);
    CHECK(a.status == 401);
    co_await c.write(post("/nope", "x"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 404);
    co_await c.write(post("/send/", "x"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 404);
    co_await c.write(get("/send/alice"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 405);
    CHECK(a.headers["allow"] == "POST");
    co_await c.write(post("/online/alice", ""));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 405);
    CHECK(a.headers["allow"] == "GET");
    // Still the same connection, and nothing reached alice.
    co_await c.write(post("/send/alice", "finally"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(co_await next_text(*alice) == "finally");
    f.stop();
  });
}

TEST_CASE("http api: extra_routes answers what the built-in endpoints do not take, after the key") {
  std::vector<std::string> asked;  // method, target and body of each call
  api_fixture f([&](const herald::http::request& req, std::string_view body) -> std::optional<herald::http_api_answer> {
    asked.push_back(std::string(req.method) + " " + std::string(req.target) + " " + std::string(body));
    if (req.target == "/metrics") {
      if (req.method != "GET") return herald::http_api_answer{405, "text/plain", "only GET\n", "Allow: GET\r\n"};
      return herald::http_api_answer{200, "text/plain; version=0.0.4", "herald_sessions 1\n", ""};
    }
    return std::nullopt;
  });
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await login_client(f.server, "alice");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(get("/metrics"));
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.headers["content-type"] == "text/plain; version=0.0.4");
    CHECK(a.headers["connection"] == "keep-alive");
    CHECK(a.body == "herald_sessions 1\n");
    co_await c.write(post("/metrics", "abc"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 405);
    CHECK(a.headers["allow"] == "GET");
    CHECK(a.body == "only GET\n");
    co_await c.write(get("/metrics", ""));  // no key: never asked
    a = co_await read_answer(c, pending);
    CHECK(a.status == 401);
    co_await c.write(get("/elsewhere"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 404);
    CHECK(a.headers["content-type"] == "application/json");
    co_await c.write(get("/send/alice"));  // a built-in endpoint keeps its 405
    a = co_await read_answer(c, pending);
    CHECK(a.status == 405);
    co_await c.write(post("/send/alice", "still works"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(co_await next_text(*alice) == "still works");
    f.stop();
  });
  CHECK(asked == std::vector<std::string>{"GET /metrics ", "POST /metrics abc", "GET /elsewhere "});
}

TEST_CASE("http api: 413 over the size limit closes; the limit itself is fine") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto alice = co_await login_client(f.server, "alice");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(post("/send/alice", std::string(100, 'x')));
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(co_await next_text(*alice) == std::string(100, 'x'));
    co_await c.write(post("/send/alice", std::string(101, 'y')));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 413);
    CHECK(a.headers["connection"] == "close");
    const std::string rest = co_await c.read_all();
    CHECK(pending.empty());
    CHECK(rest.empty());
    // Announced only (the client waits for 100-continue): 413 at once.
    auto d = co_await raw_client::connect(f.port());
    pending.clear();
    co_await d.write("POST /send/alice HTTP/1.1\r\nAuthorization: Bearer k3y\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n");
    a = co_await read_answer(d, pending);
    CHECK(a.status == 413);
    f.stop();
  });
}

TEST_CASE("http api: keep-alive, pipelining, HTTP/1.0 and Connection: close") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto bob = co_await login_client(f.server, "bob");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write(post("/send/bob", "one") + get("/online/bob") + post("/send/bob", "two"));
    auto a = co_await read_answer(c, pending);
    CHECK(a.body == "{\"delivered\": 1}\n");
    a = co_await read_answer(c, pending);
    CHECK(a.body == "{\"online\": true}\n");
    a = co_await read_answer(c, pending);
    CHECK(a.body == "{\"delivered\": 1}\n");
    CHECK(co_await next_text(*bob) == "one");
    CHECK(co_await next_text(*bob) == "two");
    co_await c.write(post("/send/bob", "three", "k3y", "Connection: close\r\n"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(a.headers["connection"] == "close");
    CHECK((co_await c.read_all()).empty());
    CHECK(co_await next_text(*bob) == "three");

    auto d = co_await raw_client::connect(f.port());
    pending.clear();
    co_await d.write("GET /online/bob HTTP/1.0\r\nAuthorization: Bearer k3y\r\n\r\n");
    a = co_await read_answer(d, pending);
    CHECK(a.status == 200);
    CHECK(a.headers["connection"] == "close");
    f.stop();
  });
}

TEST_CASE("http api: Expect 100-continue, chunked (411), non-UTF-8 text (400), binary bodies, bad requests") {
  api_fixture f;
  run(f.io, [&]() -> asio::awaitable<void> {
    auto bob = co_await login_client(f.server, "bob");
    auto c = co_await raw_client::connect(f.port());
    std::string pending;
    co_await c.write("POST /send/bob HTTP/1.1\r\nAuthorization: Bearer k3y\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    auto a = co_await read_answer(c, pending);
    CHECK(a.status == 100);
    co_await c.write("later");
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    CHECK(co_await next_text(*bob) == "later");

    co_await c.write(post("/send/bob", "\xff\xfe"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 400);
    co_await c.write(post("/send/bob", std::string("\xff\x00\x01", 3), "k3y", "Content-Type: application/octet-stream\r\n"));
    a = co_await read_answer(c, pending);
    CHECK(a.status == 200);
    auto m = co_await bob->read();
    REQUIRE(m);
    CHECK(m->binary);
    CHECK(m->data == std::string("\xff\x00\x01", 3));

    co_await c.write("POST /send/bob HTTP/1.1\r\nAuthorization: Bearer k3y\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    a = co_await read_answer(c, pending);
    CHECK(a.status == 411);
    CHECK((co_await c.read_all()).empty());

    auto d = co_await raw_client::connect(f.port());
    pending.clear();
    co_await d.write("POST /send/bob HTTP/1.1\r\nAuthorization: Bearer k3y\r\nContent-Length: 1x\r\n\r\n");
    a = co_await read_answer(d, pending);
    CHECK(a.status == 400);
    auto e = co_await raw_client::connect(f.port());
    pending.clear();
    co_await e.write("NOT HTTP AT ALL\r\n\r\n");
    a = co_await read_answer(e, pending);
    CHECK(a.status == 400);
    auto g = co_await raw_client::connect(f.port());
    pending.clear();
    co_await g.write("GET /online/bob HTTP/2.0\r\n\r\n");
    a = co_await read_answer(g, pending);
    CHECK(a.status == 505);
    f.stop();
  });
}
