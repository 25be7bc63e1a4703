// floor_server: uid_push_server's protocol with about as little work as a Linux server can
// do, the "floor" that herald's benchmark suite measures every server against (issue 13).
// One C++ file, libc/POSIX/Linux only (its own SHA-1 and base64 for the handshake).
//
// What makes it a floor:
//   - one thread, one level-triggered epoll set; one accept4 or one recv per readiness (what
//     is left in the kernel is reported again by the next epoll_wait), into one shared buffer;
//   - a 48-byte struct per connection in an array indexed by fd; while a connection is idle
//     it owns no buffer: the partial-input and unsent-output buffers exist only while needed
//     (a frame or HTTP head split across reads, a fragmented message, a full socket);
//   - output is batched per loop iteration: every frame made in the iteration is stored once
//     (a broadcast once, not once per receiver), and after the events are handled each
//     receiver gets ONE send (or writev) with everything queued for it in that iteration;
//   - EPOLLOUT is armed only while a socket is full, so an idle connection costs no epoll_ctl.
//
// Protocol (WebSocket, text or binary), as benchmarks/peers/*_server and uid_push_server:
//   first message        your uid: 1 to 128 bytes, no ':', not "all", "join", "leave" or
//                        "group" (else close 1008 with the reason, as uid_protocol.hpp)
//                        -> "login successful, your uid is <uid>"
//   <uid>:<message>      <message> to every session of <uid>
//   all:<message>        <message> to every logged-in session, the sender included
//   anything else        -> "error: expected <uid>:<message>"
// The split is at the first ':'. Several sessions may log in as the same uid. Messages keep
// their opcode (text/binary); text must be UTF-8 (else 1007); messages up to 64 KiB
// (herald's default; else 1009); ping -> pong; a close frame is echoed, then the TCP
// connection is closed. A bad upgrade request gets 400 (426 for a wrong version, 431 for a
// head over 8 KiB).
//
// Usage: floor_server [--address A (0.0.0.0)] [--port P (1234; 0 picks a free one)]
// Prints "floor_server listening on A:P" when ready; SIGINT/SIGTERM stop it with status 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_message = 64 * 1024;         // herald's default session_options::max_message_size
constexpr std::size_t max_head = 8192;                 // HTTP request head of the upgrade
constexpr std::size_t max_unsent = 16 * 1024 * 1024;   // a receiver this far behind is dropped
constexpr std::size_t read_size = 64 * 1024;           // the one shared receive buffer
constexpr int max_events = 1024;

// ---------------------------------------------------------------- SHA-1 and base64

std::uint32_t rotl(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void sha1_block(std::uint32_t h[5], const unsigned char* p) {
  std::uint32_t w[80];
  for (int i = 0; i < 16; ++i)
    w[i] = std::uint32_t{p[4 * i]} << 24 | std::uint32_t{p[4 * i + 1]} << 16 | std::uint32_t{p[4 * i + 2]} << 8 |
           std::uint32_t{p[4 * i + 3]};
  for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; ++i) {
    std::uint32_t f, k;
    if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
    else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
    else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
    else f = b ^ c ^ d, k = 0xCA62C1D6;
    const std::uint32_t t = rotl(a, 5) + f + e + k + w[i];
    e = d, d = c, c = rotl(b, 30), b = a, a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void sha1(const unsigned char* data, std::size_t n, unsigned char out[20]) {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) sha1_block(h, data + i);
  // The tail: the rest, a 1 bit, zeros, the length in bits (big-endian) in the last 8 bytes.
  unsigned char tail[128] = {};
  const std::size_t rest = n - i;
  std::memcpy(tail, data + i, rest);
  tail[rest] = 0x80;
  const std::size_t blocks = rest + 9 <= 64 ? 1 : 2;
  const std::uint64_t bits = std::uint64_t{n} * 8;
  for (std::size_t b = 0; b < 8; ++b) tail[blocks * 64 - 1 - b] = static_cast<unsigned char>(bits >> (8 * b));
  for (std::size_t b = 0; b < blocks; ++b) sha1_block(h, tail + 64 * b);
  for (int j = 0; j < 5; ++j)
    for (int b = 0; b < 4; ++b) out[4 * j + b] = static_cast<unsigned char>(h[j] >> (24 - 8 * b));
}

constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const unsigned char* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    const std::uint32_t v = std::uint32_t{p[i]} << 16 | (i + 1 < n ? std::uint32_t{p[i + 1]} << 8 : 0u) |
                            (i + 2 < n ? std::uint32_t{p[i + 2]} : 0u);
    out += b64_alphabet[v >> 18 & 63];
    out += b64_alphabet[v >> 12 & 63];
    out += i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
    out += i + 2 < n ? b64_alphabet[v & 63] : '=';
  }
  return out;
}

// Sec-WebSocket-Key must be 16 bytes in base64: 22 alphabet characters and "==".
bool valid_key(std::string_view k) {
  if (k.size() != 24 || k.substr(22) != "==") return false;
  for (std::size_t i = 0; i < 22; ++i)
    if (std::strchr(b64_alphabet, k[i]) == nullptr || k[i] == '\0') return false;
  return true;
}

std::string accept_key(std::string_view key) {
  std::string s(key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455's GUID
  unsigned char digest[20];
  sha1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return base64(digest, 20);
}

// ---------------------------------------------------------------- small helpers

bool valid_utf8(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {  // ASCII, 8 bytes at a time
      std::uint64_t v;
      std::memcpy(&v, s + i, 8);
      if ((v & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1Fu;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0Fu;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07u;
    else return false;
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

void unmask(char* p, std::size_t n, const char key[4]) {
  std::uint32_t k32;
  std::memcpy(&k32, key, 4);
  const std::uint64_t k64 = std::uint64_t{k32} << 32 | k32;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Is `token` one of the comma-separated values of a header (case-insensitive)?
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::uint32_t fnv1a(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// The same rule as examples/uid_protocol.hpp's check_uid; empty when the uid is fine.
std::string check_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 128) return "uid must be 1 to 128 bytes";
  if (uid.find(':') != std::string_view::npos) return "uid must not contain ':'";
  for (const std::string_view reserved : {"all", "join", "leave", "group"})
    if (uid == reserved) return "uid '" + std::string(uid) + "' is reserved";
  return {};
}

// ---------------------------------------------------------------- uids

// One logged-in uid: its name is stored right after the struct (one malloc per uid), and its
// sessions form a chain through conn::uid_next, so a uid costs no container of its own.
struct uid_rec {
  std::uint32_t hash;
  std::int32_t first;  // fd of one session with this uid
  std::uint32_t len;
  std::string_view name() const { return {reinterpret_cast<const char*>(this + 1), len}; }
};

// uid -> uid_rec*: open addressing with linear probing, at most half full, an 8-byte slot
// per uid (a node-based std::unordered_map would cost about 60 bytes more per idle session).
class uid_table {
 public:
  uid_table() : slots_(1024, nullptr) {}

  uid_rec* find(std::string_view name, std::uint32_t hash) const {
    for (std::size_t i = hash & mask(); slots_[i] != nullptr; i = (i + 1) & mask())
      if (slots_[i]->hash == hash && slots_[i]->name() == name) return slots_[i];
    return nullptr;
  }

  uid_rec* add(std::string_view name, std::uint32_t hash) {
    if (2 * (count_ + 1) > slots_.size()) grow();
    auto* r = static_cast<uid_rec*>(std::malloc(sizeof(uid_rec) + name.size()));
    if (r == nullptr) std::abort();
    r->hash = hash;
    r->first = -1;
    r->len = static_cast<std::uint32_t>(name.size());
    std::memcpy(r + 1, name.data(), name.size());
    place(r);
    ++count_;
    return r;
  }

  // Removes r and frees it; the entries after it move back so that no probe chain breaks.
  void remove(uid_rec* r) {
    std::size_t i = r->hash & mask();
    while (slots_[i] != r) i = (i + 1) & mask();
    slots_[i] = nullptr;
    for (std::size_t j = (i + 1) & mask(); slots_[j] != nullptr; j = (j + 1) & mask()) {
      const std::size_t home = slots_[j]->hash & mask();
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        slots_[j] = nullptr;
        i = j;
      }
    }
    --count_;
    std::free(r);
  }

 private:
  std::size_t mask() const { return slots_.size() - 1; }
  void place(uid_rec* r) {
    std::size_t i = r->hash & mask();
    while (slots_[i] != nullptr) i = (i + 1) & mask();
    slots_[i] = r;
  }
  void grow() {
    std::vector<uid_rec*> old(slots_.size() * 2, nullptr);
    old.swap(slots_);
    for (uid_rec* r : old)
      if (r != nullptr) place(r);
  }

  std::vector<uid_rec*> slots_;
  std::size_t count_ = 0;
};

// ---------------------------------------------------------------- connections

enum class state : std::uint8_t {
  free = 0,   // no connection on this fd (a slot never used is all zeros)
  handshake,  // waiting for the HTTP upgrade request
  login,      // upgraded, waiting for the uid
  open,       // logged in
  closing,    // a close frame was sent or is being answered; data frames are ignored
  dead,       // closed at the end of this loop iteration (after the flush)
};

struct input {  // only while a frame or HTTP head is split across reads, or a message is fragmented
  std::string raw;            // received bytes not yet parsed
  std::string fragments;      // the data of a fragmented message so far
  std::uint8_t frag_opcode = 0;  // 1 text, 2 binary while a fragmented message is open
};

struct output {  // only while the socket is full
  std::string data;
  std::size_t sent = 0;
};

constexpr std::uint8_t want_out = 1;      // EPOLLOUT is armed
constexpr std::uint8_t close_after = 2;   // close the connection once its output has gone

struct conn {
  input* in = nullptr;
  output* out = nullptr;
  uid_rec* uid = nullptr;
  std::int32_t fd = -1;
  std::int32_t uid_next = -1;    // next session of the same uid (fd), -1 at the end
  std::uint32_t online_pos = 0;  // index in server::online_ while logged in
  std::int32_t queued = -1;      // newest of this iteration's deliveries to it (index), -1 if none
  state st = state::free;
  std::uint8_t flags = 0;
};
static_assert(sizeof(conn) == 48, "the floor's connection is 48 bytes");

// ---------------------------------------------------------------- the server

volatile sig_atomic_t stop_requested = 0;
extern "C" void on_signal(int) { stop_requested = 1; }

class server {
 public:
  // One conn per possible fd in one calloc'ed array: the kernel maps zero pages only when they
  // are touched, so RSS grows with the connections (85 to a 4 KiB page), not with the limit;
  // an untouched slot reads as state::free.
  server(int listen_fd, int epoll_fd, std::size_t max_fds)
      : lfd_(listen_fd),
        ep_(epoll_fd),
        rbuf_(new char[read_size]),
        conns_(static_cast<conn*>(std::calloc(max_fds, sizeof(conn)))),
        max_fds_(max_fds) {
    if (conns_ == nullptr) std::abort();
  }
  ~server() { std::free(conns_); }
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Runs until SIGINT/SIGTERM; `unblocked` is the signal mask during epoll_pwait (the stop
  // signals are blocked everywhere else, so none can slip in between the check and the wait).
  void run(const sigset_t& unblocked) {
    epoll_event events[max_events];
    while (!stop_requested) {
      const int n = ::epoll_pwait(ep_, events, max_events, -1, &unblocked);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("floor_server: epoll_pwait");
        std::exit(1);
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == lfd_) {
          accept_one();
          continue;
        }
        const state st = at(fd).st;
        if (st == state::free || st == state::dead) continue;
        if (events[i].events & EPOLLOUT) on_writable(fd);
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(fd);
      }
      flush();
      bury();
    }
  }

 private:
  struct delivery {     // one frame of this iteration to one connection
    std::uint32_t off;  // in arena_
    std::uint32_t len;
    std::uint32_t event;  // the order in which the frames were made
    std::int32_t prev;    // the previous delivery to the same connection, -1 if none
    bool login;           // the connection logged in with this reply (earlier broadcasts are not its)
  };
  struct bframe {  // one broadcast of this iteration, in bcast_
    std::uint32_t off, len, event;
  };

  conn& at(int fd) { return conns_[static_cast<std::size_t>(fd)]; }

  // ---- accept: one per readiness; a backlog is reported again by the next epoll_wait
  void accept_one() {
    const int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE leaves the connection in the backlog and would spin; the suite's limits avoid it.
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        std::perror("floor_server: accept4");
      return;
    }
    if (static_cast<std::size_t>(fd) >= max_fds_) {  // only if RLIMIT_NOFILE was raised since the start
      ::close(fd);
      return;
    }
    const int one = 1;  // Nagle off, as herald and the other peers
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn& c = at(fd);
    c = conn{};
    c.fd = fd;
    c.st = state::handshake;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      c.st = state::free;
      ::close(fd);
    }
  }

  // ---- input: one recv into the shared buffer; only a remainder is copied to the connection
  void on_readable(int fd) {
    const ssize_t r = ::recv(fd, rbuf_.get(), read_size, 0);
    if (r <= 0) {
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      kill(fd);  // FIN, RST or an error
      return;
    }
    const auto n = static_cast<std::size_t>(r);
    conn& c = at(fd);
    if (c.in != nullptr && !c.in->raw.empty()) {
      c.in->raw.append(rbuf_.get(), n);
      const std::size_t used = consume(fd, c.in->raw.data(), c.in->raw.size());
      c.in->raw.erase(0, used);
    } else {
      const std::size_t used = consume(fd, rbuf_.get(), n);
      if (used < n) {
        if (c.in == nullptr) c.in = new input;
        c.in->raw.assign(rbuf_.get() + used, n - used);
      }
    }
    if (c.in != nullptr && c.in->raw.empty() && c.in->frag_opcode == 0) {
      delete c.in;  // idle again: no buffer
      c.in = nullptr;
    }
  }

  // Handles every complete HTTP head or frame in [p, p + n); returns the bytes used.
  std::size_t consume(int fd, char* p, std::size_t n) {
    std::size_t used = 0;
    if (at(fd).st == state::handshake) {
      used = handshake(fd, p, n);
      if (used == 0) return 0;
    }
    while (used < n) {
      const conn& c = at(fd);
      if (c.st == state::dead || (c.flags & close_after)) return n;  // the rest does not matter
      const std::size_t k = frame(fd, p + used, n - used);
      if (k == 0) break;
      used += k;
    }
    return used;
  }

  // The upgrade request; returns the bytes of the head, or 0 while it is incomplete.
  std::size_t handshake(int fd, char* p, std::size_t n) {
    const std::string_view data(p, n);
    const auto end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (n >= max_head) refuse(fd, 431, "Request Header Fields Too Large", "request head too large");
      return n >= max_head ? n : 0;
    }
    std::string_view head = data.substr(0, end + 2);
    const auto eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    std::string_view upgrade, connection, key, version;
    bool host = false;
    while (!head.empty()) {
      const auto e = head.find("\r\n");
      const std::string_view h = head.substr(0, e);
      head.remove_prefix(e + 2);
      const auto colon = h.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = h.substr(0, colon), value = trim(h.substr(colon + 1));
      if (iequals(name, "host")) host = true;
      else if (iequals(name, "upgrade")) upgrade = value;
      else if (iequals(name, "connection")) connection = value;
      else if (iequals(name, "sec-websocket-key")) key = value;
      else if (iequals(name, "sec-websocket-version")) version = value;
    }
    const char* why = nullptr;
    const auto sp = line.rfind(' ');
    const std::string_view proto = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (line.substr(0, 4) != "GET ") why = "a WebSocket handshake must be a GET request";
    else if (proto.size() != 8 || proto.substr(0, 7) != "HTTP/1." || proto[7] < '1' || proto[7] > '9')
      why = "a WebSocket handshake needs HTTP/1.1";
    else if (!host) why = "missing Host header";
    else if (!has_token(upgrade, "websocket")) why = "missing or wrong Upgrade header (expected websocket)";
    else if (!has_token(connection, "upgrade")) why = "missing or wrong Connection header (expected Upgrade)";
    else if (!valid_key(key)) why = "Sec-WebSocket-Key must be 16 bytes in base64";
    if (why != nullptr) {
      refuse(fd, 400, "Bad Request", why);
      return n;
    }
    if (version != "13") {
      refuse(fd, 426, "Upgrade Required", "only WebSocket version 13 is supported");
      return n;
    }
    const std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
        accept_key(key) + "\r\n\r\n";
    deliver(fd, store(arena_, response), false);
    at(fd).st = state::login;
    return end + 4;
  }

  void refuse(int fd, int status, const char* text, const char* why) {
    char head[256];
    const int h = std::snprintf(head, sizeof head,
                                "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s"
                                "Connection: close\r\n\r\n",
                                status, text, std::strlen(why), status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
    std::string response(head, static_cast<std::size_t>(h));
    response += why;
    deliver(fd, store(arena_, response), false);
    conn& c = at(fd);
    c.st = state::closing;
    c.flags |= close_after;
  }

  // One frame at p; returns its size, or 0 while it is incomplete.
  std::size_t frame(int fd, char* p, std::size_t n) {
    if (n < 2) return 0;
    const auto b0 = static_cast<unsigned char>(p[0]), b1 = static_cast<unsigned char>(p[1]);
    const bool fin = b0 & 0x80;
    const std::uint8_t op = b0 & 0x0F;
    if (b0 & 0x70) return fail(fd, 1002, "reserved bits set", n);
    if (!(b1 & 0x80)) return fail(fd, 1002, "client frames must be masked", n);
    std::uint64_t len = b1 & 0x7F;
    std::size_t head = 2;
    if (len == 126) {
      if (n < 4) return 0;
      len = std::uint64_t{static_cast<unsigned char>(p[2])} << 8 | static_cast<unsigned char>(p[3]);
      head = 4;
    } else if (len == 127) {
      if (n < 10) return 0;
      len = 0;
      for (int i = 2; i < 10; ++i) len = len << 8 | static_cast<unsigned char>(p[i]);
      head = 10;
    }
    if (op >= 8 && (!fin || len > 125)) return fail(fd, 1002, "bad control frame", n);
    if (len > max_message) return fail(fd, 1009, "message too big", n);
    if (n < head + 4 + len) return 0;
    char* payload = p + head + 4;
    unmask(payload, len, p + head);
    on_frame(fd, fin, op, payload, len);
    return head + 4 + len;
  }

  void on_frame(int fd, bool fin, std::uint8_t op, char* payload, std::size_t len) {
    conn& c = at(fd);
    if (op == 0x8) {  // close
      if (c.st == state::closing) {  // the answer to ours
        kill(fd);
        return;
      }
      if (len == 1) {
        fail(fd, 1002, "bad close frame", 0);
        return;
      }
      // Echo the status code (not the reason), then close once it has gone.
      deliver(fd, store_frame(arena_, 0x8, payload, std::min<std::size_t>(len, 2)), false);
      c.st = state::closing;
      c.flags |= close_after;
      return;
    }
    if (c.st == state::closing) return;  // after our close frame only the answer matters
    if (op == 0x9) {
      deliver(fd, store_frame(arena_, 0xA, payload, len), false);
      return;
    }
    if (op == 0xA) return;
    if (op == 0x0) {
      if (c.in == nullptr || c.in->frag_opcode == 0) {
        fail(fd, 1002, "continuation without a message", 0);
        return;
      }
      if (c.in->fragments.size() + len > max_message) {
        fail(fd, 1009, "message too big", 0);
        return;
      }
      c.in->fragments.append(payload, len);
      if (!fin) return;
      const std::uint8_t opcode = c.in->frag_opcode;
      c.in->frag_opcode = 0;
      std::string whole;
      whole.swap(c.in->fragments);
      on_message(fd, opcode, whole.data(), whole.size());
      return;
    }
    if (op != 0x1 && op != 0x2) {
      fail(fd, 1002, "unknown opcode", 0);
      return;
    }
    if (c.in != nullptr && c.in->frag_opcode != 0) {
      fail(fd, 1002, "a new message inside a fragmented one", 0);
      return;
    }
    if (fin) {
      on_message(fd, op, payload, len);
      return;
    }
    if (c.in == nullptr) c.in = new input;  // the first fragment: now the connection holds a buffer
    c.in->frag_opcode = op;
    c.in->fragments.assign(payload, len);
  }

  // Sends close `code` with `why` and drops the connection once it has gone; returns `skip`.
  std::size_t fail(int fd, std::uint16_t code, std::string_view why, std::size_t skip) {
    close_with(fd, code, why);
    at(fd).flags |= close_after;
    return skip;
  }

  void close_with(int fd, std::uint16_t code, std::string_view why) {
    std::string payload;
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xFF);
    payload += why;
    deliver(fd, store_frame(arena_, 0x8, payload.data(), payload.size()), false);
    at(fd).st = state::closing;
  }

  // One whole message (text checked for UTF-8).
  void on_message(int fd, std::uint8_t op, const char* p, std::size_t len) {
    if (op == 0x1 && !valid_utf8(reinterpret_cast<const unsigned char*>(p), len)) {
      fail(fd, 1007, "text is not UTF-8", 0);
      return;
    }
    conn& c = at(fd);
    const std::string_view text(p, len);
    if (c.st == state::login) {
      const std::string why = check_uid(text);
      if (!why.empty()) {
        close_with(fd, 1008, why);  // then waits for the client's close frame
        return;
      }
      log_in(fd, text);
      return;
    }
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
      reply(fd, "error: expected <uid>:<message>", false);
      return;
    }
    const std::string_view to = text.substr(0, colon), body = text.substr(colon + 1);
    if (to == "all") {
      // Stored once; flush() sends it to every session with what else it gets this iteration.
      const frame_ref f = store_frame(bcast_, op, body.data(), body.size());
      bframes_.push_back({f.off, f.len, f.event});
      return;
    }
    const uid_rec* r = uids_.find(to, fnv1a(to));
    if (r == nullptr) return;
    const frame_ref f = store_frame(arena_, op, body.data(), body.size());  // once for all its sessions
    for (int s = r->first; s >= 0; s = at(s).uid_next)
      if (at(s).st == state::open) deliver(s, f, false);
  }

  void log_in(int fd, std::string_view name) {
    const std::uint32_t h = fnv1a(name);
    uid_rec* r = uids_.find(name, h);
    if (r == nullptr) r = uids_.add(name, h);
    conn& c = at(fd);
    c.uid = r;
    c.uid_next = r->first;
    r->first = fd;
    c.online_pos = static_cast<std::uint32_t>(online_.size());
    online_.push_back(fd);
    c.st = state::open;
    std::string text = "login successful, your uid is ";
    text += name;
    reply(fd, text, true);
  }

  void log_out(conn& c) {
    uid_rec* r = c.uid;
    if (r == nullptr) return;
    int* link = &r->first;
    while (*link != c.fd) link = &at(*link).uid_next;
    *link = c.uid_next;
    if (r->first < 0) uids_.remove(r);
    c.uid = nullptr;
    const int last = online_.back();  // swap-remove from the online list
    online_[c.online_pos] = last;
    at(last).online_pos = c.online_pos;
    online_.pop_back();
  }

  void reply(int fd, std::string_view text, bool login) {
    deliver(fd, store_frame(arena_, 0x1, text.data(), text.size()), login);
  }

  // ---- this iteration's frames
  struct frame_ref {
    std::uint32_t off, len, event;
  };

  frame_ref store(std::string& arena, std::string_view bytes) {
    const frame_ref f{static_cast<std::uint32_t>(arena.size()), static_cast<std::uint32_t>(bytes.size()), event_++};
    arena += bytes;
    return f;
  }

  // A server frame (unmasked) with `op` and the payload.
  frame_ref store_frame(std::string& arena, std::uint8_t op, const char* p, std::size_t len) {
    char head[10];
    std::size_t h = 2;
    head[0] = static_cast<char>(0x80 | op);
    if (len < 126) {
      head[1] = static_cast<char>(len);
    } else if (len < 65536) {
      head[1] = 126;
      head[2] = static_cast<char>(len >> 8);
      head[3] = static_cast<char>(len & 0xFF);
      h = 4;
    } else {
      head[1] = 127;
      for (int i = 0; i < 8; ++i) head[2 + i] = static_cast<char>(std::uint64_t{len} >> (56 - 8 * i));
      h = 10;
    }
    const frame_ref f{static_cast<std::uint32_t>(arena.size()), static_cast<std::uint32_t>(h + len), event_++};
    arena.append(head, h);
    arena.append(p, len);
    return f;
  }

  void deliver(int fd, const frame_ref& f, bool login) {
    conn& c = at(fd);
    if (c.queued < 0) dirty_.push_back(fd);
    deliveries_.push_back({f.off, f.len, f.event, c.queued, login});
    c.queued = static_cast<std::int32_t>(deliveries_.size() - 1);
  }

  // ---- the end of an iteration: one send per receiver with all it got in this iteration
  void flush() {
    const bool broadcasts = !bframes_.empty();
    for (const int fd : dirty_) {  // those that no broadcast reaches
      const conn& c = at(fd);
      if (c.st == state::dead || (broadcasts && c.st == state::open)) continue;
      gather(fd);
      transmit(fd);
    }
    if (broadcasts) {
      for (std::size_t i = 0; i < online_.size(); ++i) {
        const int fd = online_[i];
        const conn& c = at(fd);
        if (c.st != state::open) continue;
        if (c.queued < 0) {  // the common case: the broadcasts alone, one contiguous block
          iov_.assign(1, iovec{bcast_.data(), bcast_.size()});
        } else {
          gather(fd);
        }
        transmit(fd);
      }
    }
    for (const int fd : dirty_) at(fd).queued = -1;
    dirty_.clear();
    deliveries_.clear();
    bframes_.clear();
    arena_.clear();
    bcast_.clear();
    event_ = 0;
  }

  // iov_ = the connection's deliveries and (if it is logged in) the broadcasts made after it
  // logged in, in the order they were made; adjacent broadcasts make one piece.
  void gather(int fd) {
    mine_.clear();
    for (int d = at(fd).queued; d >= 0; d = deliveries_[static_cast<std::size_t>(d)].prev)
      mine_.push_back(&deliveries_[static_cast<std::size_t>(d)]);
    std::reverse(mine_.begin(), mine_.end());
    std::uint32_t since = 0;
    for (const delivery* d : mine_)
      if (d->login) since = d->event;
    iov_.clear();
    const bool gets_broadcasts = at(fd).st == state::open;
    std::size_t b = 0;
    const char* last_end = nullptr;  // end of the previous broadcast piece, to extend it
    auto add_broadcasts_before = [&](std::uint32_t event) {
      for (; gets_broadcasts && b < bframes_.size() && bframes_[b].event < event; ++b) {
        if (bframes_[b].event < since) continue;
        char* start = bcast_.data() + bframes_[b].off;
        if (start == last_end) iov_.back().iov_len += bframes_[b].len;
        else iov_.push_back({start, bframes_[b].len});
        last_end = start + bframes_[b].len;
      }
    };
    for (const delivery* d : mine_) {
      add_broadcasts_before(d->event);
      iov_.push_back({arena_.data() + d->off, d->len});
      last_end = nullptr;
    }
    add_broadcasts_before(UINT32_MAX);
  }

  // Sends iov_ to fd with one syscall; what the socket does not take waits in conn::out.
  void transmit(int fd) {
    conn& c = at(fd);
    std::size_t total = 0;
    for (const iovec& v : iov_) total += v.iov_len;
    std::size_t sent = 0;
    if (c.out == nullptr) {  // else the socket is full: keep the order, append behind
      ssize_t r;
      if (iov_.size() == 1) {
        r = ::send(fd, iov_[0].iov_base, iov_[0].iov_len, MSG_NOSIGNAL);
      } else if (iov_.size() <= IOV_MAX) {
        r = ::writev(fd, iov_.data(), static_cast<int>(iov_.size()));
      } else {
        r = 0;  // more pieces than one writev takes (never in the suite): all of it to conn::out
      }
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          kill(fd);
          return;
        }
        r = 0;
      }
      sent = static_cast<std::size_t>(r);
      if (sent == total) {
        if (c.flags & close_after) kill(fd);
        return;
      }
      c.out = new output;
      arm_out(fd, true);
    }
    for (const iovec& v : iov_) {  // the unsent rest
      if (sent >= v.iov_len) {
        sent -= v.iov_len;
        continue;
      }
      c.out->data.append(static_cast<const char*>(v.iov_base) + sent, v.iov_len - sent);
      sent = 0;
    }
    if (c.out->data.size() - c.out->sent > max_unsent) kill(fd);  // a receiver that stopped reading
  }

  void on_writable(int fd) {
    conn& c = at(fd);
    output* o = c.out;
    if (o == nullptr) {
      arm_out(fd, false);
      return;
    }
    const ssize_t r = ::send(fd, o->data.data() + o->sent, o->data.size() - o->sent, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) kill(fd);
      return;
    }
    o->sent += static_cast<std::size_t>(r);
    if (o->sent < o->data.size()) return;
    delete o;
    c.out = nullptr;
    arm_out(fd, false);
    if (c.flags & close_after) kill(fd);
  }

  void arm_out(int fd, bool on) {
    conn& c = at(fd);
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
    c.flags = static_cast<std::uint8_t>(on ? c.flags | want_out : c.flags & ~want_out);
  }

  // ---- the end of a connection: marked now, closed after the flush (so that no fd is
  // reused while this iteration's deliveries still name it)
  void kill(int fd) {
    conn& c = at(fd);
    if (c.st == state::dead || c.st == state::free) return;
    c.st = state::dead;
    dying_.push_back(fd);
  }

  void bury() {
    for (const int fd : dying_) {
      conn& c = at(fd);
      log_out(c);
      delete c.in;
      delete c.out;
      ::close(fd);  // also leaves the epoll set: no epoll_ctl(DEL)
      c = conn{};
    }
    dying_.clear();
  }

  int lfd_, ep_;
  std::unique_ptr<char[]> rbuf_;
  conn* conns_;  // by fd
  std::size_t max_fds_;
  uid_table uids_;
  std::vector<int> online_;  // logged-in connections (fds)
  // This iteration: unicast and control frames, broadcast frames, who gets what.
  std::string arena_, bcast_;
  std::vector<bframe> bframes_;
  std::vector<delivery> deliveries_;
  std::vector<int> dirty_, dying_;
  std::uint32_t event_ = 0;
  std::vector<const delivery*> mine_;
  std::vector<iovec> iov_;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "floor_server: %s\nusage: floor_server [--address A] [--port P]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* address = "0.0.0.0";
  int port = 1234;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) usage("missing value");
    if (a == "--address") address = argv[++i];
    else if (a == "--port") port = std::atoi(argv[++i]);
    else usage("unknown option");
  }
  if (port < 0 || port > 65535) usage("--port takes 0 to 65535");
  if (accept_key("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {  // RFC 6455's example
    std::fprintf(stderr, "floor_server: SHA-1/base64 self-test failed\n");
    return 1;
  }

  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, address, &sa.sin_addr) != 1) usage("--address must be an IPv4 address");
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 4096) != 0) {
    std::perror("floor_server: listen");
    return 1;
  }
  socklen_t sl = sizeof sa;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &sl);

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
    std::perror("floor_server: epoll");
    return 1;
  }

  // SIGINT/SIGTERM are blocked except inside epoll_pwait, where they end the wait.
  struct sigaction act {};
  act.sa_handler = on_signal;
  sigemptyset(&act.sa_mask);
  ::sigaction(SIGINT, &act, nullptr);
  ::sigaction(SIGTERM, &act, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // writev has no MSG_NOSIGNAL
  sigset_t stops, unblocked;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &stops, &unblocked);
  sigdelset(&unblocked, SIGINT);
  sigdelset(&unblocked, SIGTERM);

  char ip[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
  std::printf("floor_server listening on %s:%u (1 thread, level-triggered epoll)\n", ip, ntohs(sa.sin_port));
  std::fflush(stdout);

  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  const std::size_t max_fds = std::min<rlim_t>(nofile.rlim_cur, rlim_t{1} << 20);  // RLIM_INFINITY is the largest
  server s(lfd, ep, max_fds);
  s.run(unblocked);
  std::printf("floor_server stopped\n");
  return 0;
}
