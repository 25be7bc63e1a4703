// permessage-deflate (RFC 7692) negotiation, both roles, sans-I/O and without zlib: parsing a
// Sec-WebSocket-Extensions header, choosing an offer, writing the answer, checking a server's
// answer. The compression itself is in herald/deflate.hpp (optional, needs zlib).
//
// herald compresses a message once for all its receivers, so its own compressor never keeps
// an LZ77 window from one message to the next: a server always answers
// server_no_context_takeover (RFC 7692 section 7.1.1.1 lets it, even when the offer did not
// ask). By default it also answers client_no_context_takeover, which section 7.1.1.2 lets a
// server include whatever the offer said and which every client must support: then each
// compressed message from the peer inflates on its own, with one inflater per thread, and an
// idle session holds no zlib state at all.
//
// Window sizes: a receiver that agreed to a window of 2^w bytes can inflate any message whose
// uncompressed size is at most 2^w, whatever window the compressor had, because no
// back-reference reaches before the message's first byte. So herald accepts every
// server_max_window_bits from 8 to 15 (zlib cannot compress raw deflate with an 8-bit window,
// RFC-conforming 8 is still honoured) and, per receiver, sends a message's shared compressed
// frame only when it fits the window that receiver agreed to (message::deflated), the plain
// frame otherwise.
#ifndef HERALD_WEBSOCKET_PERMESSAGE_DEFLATE_HPP
#define HERALD_WEBSOCKET_PERMESSAGE_DEFLATE_HPP
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../http/request.hpp"
#include "frame.hpp"

namespace herald::ws {

// What this end accepts and prefers. Role-neutral: "peer" is the client for a server and the
// server for a client.
struct deflate_config {
  // Off: every offer is declined (as without zlib).
  bool enabled = true;
  // Let the peer keep its LZ77 window across messages (context takeover). Off by default: a
  // server answers client_no_context_takeover, a client offers server_no_context_takeover.
  // On: a peer that insists costs one inflater per session for the session's life (zlib's
  // inflate state, about 7 KiB, plus a 2^window window: ~39 KiB at 15 bits).
  bool allow_peer_context_takeover = false;
  // Window of herald's compressor, log2 of bytes (9..15; zlib's raw deflate has no 8).
  std::uint8_t window_bits = 15;
  // With allow_peer_context_takeover: the window asked of a peer that lets us choose
  // (client_max_window_bits without a value), bounding its session inflater (8..15).
  std::uint8_t peer_window_bits = 15;
  // Messages with fewer payload bytes go out uncompressed (RSV1 clear).
  std::size_t threshold = 256;
  // zlib's compression level (1..9) and memLevel (1..9).
  int level = 6;
  int mem_level = 8;

  // Why the configuration is unusable, or nullptr when it is fine.
  const char* check() const noexcept {
    if (window_bits < 9 || window_bits > 15) return "window_bits must be 9..15";
    if (peer_window_bits < 8 || peer_window_bits > 15) return "peer_window_bits must be 8..15";
    if (level < 1 || level > 9) return "level must be 1..9";
    if (mem_level < 1 || mem_level > 9) return "mem_level must be 1..9";
    return nullptr;
  }
};

// What both ends agreed to (RFC 7692 section 7.1), from the server's point of view as the RFC
// names it. A window is log2 of its size in bytes; 15 when the parameter was not negotiated.
struct deflate_agreement {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::uint8_t server_max_window_bits = 15;
  std::uint8_t client_max_window_bits = 15;

  // The largest window this end may compress with: pass it to message::deflated.
  std::uint8_t send_window_bits(role self) const noexcept {
    return self == role::server ? server_max_window_bits : client_max_window_bits;
  }
  // Does every compressed message from the peer start from an empty window? Then one
  // inflater per thread serves all sessions; otherwise each session needs its own.
  bool peer_no_context_takeover(role self) const noexcept {
    return self == role::server ? client_no_context_takeover : server_no_context_takeover;
  }
  // The window the peer compresses with at most (the size of a session inflater's window).
  std::uint8_t peer_window_bits(role self) const noexcept {
    return self == role::server ? client_max_window_bits : server_max_window_bits;
  }
};

// The smallest window (log2, 8..15) that inflates a message of `size` bytes compressed with a
// window of 2^`window_bits`: distances reach back neither beyond the window nor before the
// message's start, so 2^w >= min(size, 2^window_bits) is enough.
constexpr std::uint8_t window_needed(std::size_t size, std::uint8_t window_bits) noexcept {
  std::uint8_t w = 8;
  while (w < window_bits && (std::size_t(1) << w) < size) ++w;
  return w;
}

// ---- Sec-WebSocket-Extensions syntax (RFC 6455 section 9.1, RFC 7230 section 3.2.6) ----

struct extension_param {
  std::string name;
  std::string value;  // unquoted; empty when there is none
  bool has_value = false;
};

// One element of the list: `name *( ";" param )`. `valid` is false when the element's syntax
// is broken; the parser then skips to the next comma outside a quoted string.
struct extension {
  std::string name;
  std::vector<extension_param> params;
  bool valid = true;
};

namespace detail_pmd {
constexpr bool is_tchar(char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}
constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

class cursor {
 public:
  explicit cursor(std::string_view s) noexcept : s_(s) {}
  bool done() const noexcept { return i_ >= s_.size(); }
  char peek() const noexcept { return s_[i_]; }
  void skip() noexcept { ++i_; }
  void skip_ows() noexcept {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool token(std::string& out) {
    const std::size_t start = i_;
    while (i_ < s_.size() && is_tchar(s_[i_])) ++i_;
    out.assign(s_.substr(start, i_ - start));
    return i_ > start;
  }
  // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, unescaped into `out`.
  bool quoted(std::string& out) {
    out.clear();
    ++i_;  // the opening quote
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        const auto e = static_cast<unsigned char>(s_[i_++]);
        if (e != '\t' && (e < 0x20 || e == 0x7F)) return false;
        out += static_cast<char>(e);
      } else if (c == '\t' || (c >= 0x20 && c != 0x7F)) {
        out += static_cast<char>(c);
      } else {
        return false;
      }
    }
    return false;  // unterminated
  }
  std::size_t position() const noexcept { return i_; }
  // After a syntax error in the element that began at `start`: on to the next comma that is
  // not inside a quoted string.
  void recover(std::size_t start) noexcept {
    i_ = start;
    bool in_quotes = false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (in_quotes && c == '\\') {
        if (i_ < s_.size()) ++i_;
      } else if (c == '"') {
        in_quotes = !in_quotes;
      } else if (c == ',' && !in_quotes) {
        return;
      }
    }
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

// One element after its name: parameters up to the next comma or the end.
inline bool parse_params(cursor& c, extension& e) {
  for (;;) {
    c.skip_ows();
    if (c.done()) return true;
    if (c.peek() == ',') {
      c.skip();
      return true;
    }
    if (c.peek() != ';') return false;
    c.skip();
    c.skip_ows();
    extension_param p;
    if (!c.token(p.name)) return false;
    c.skip_ows();
    if (!c.done() && c.peek() == '=') {
      c.skip();
      c.skip_ows();
      p.has_value = true;
      if (c.done()) return false;
      if (c.peek() == '"') {
        if (!c.quoted(p.value)) return false;
      } else if (!c.token(p.value)) {
        return false;
      }
    }
    e.params.push_back(std::move(p));
  }
}
}  // namespace detail_pmd

// Every element of a Sec-WebSocket-Extensions value (several header lines joined with ", "),
// in order. Empty elements (", ,") are skipped as RFC 7230 section 7 asks of recipients.
inline std::vector<extension> parse_extensions(std::string_view header) {
  std::vector<extension> out;
  detail_pmd::cursor c(header);
  for (;;) {
    c.skip_ows();
    if (c.done()) break;
    if (c.peek() == ',') {
      c.skip();
      continue;
    }
    extension e;
    const std::size_t start = c.position();
    if (!c.token(e.name) || !detail_pmd::parse_params(c, e)) {
      e.valid = false;
      c.recover(start);
    }
    out.push_back(std::move(e));
  }
  return out;
}

// The parameters of one permessage-deflate offer or answer.
struct deflate_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::uint8_t server_max_window_bits = 0;  // 0: absent
  bool has_client_max_window_bits = false;
  std::uint8_t client_max_window_bits = 0;  // 0 with has_client_max_window_bits: no value (offers only)
};

namespace detail_pmd {
// "8" to "15", no sign, no leading zero (RFC 7692 sections 7.1.2.1 and 7.1.2.2).
inline std::uint8_t window_bits_value(std::string_view v) noexcept {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return static_cast<std::uint8_t>(v[0] - '0');
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return static_cast<std::uint8_t>(10 + v[1] - '0');
  return 0;
}
}  // namespace detail_pmd

// Reads a permessage-deflate element's parameters. nullopt when the element is not
// permessage-deflate, is malformed, or has a parameter that is unknown, repeated or has an
// invalid value (RFC 7692 section 7.1: a server declines such an offer, a client fails the
// connection on such an answer). `from` is who sent it: client_max_window_bits may lack its
// value only in a client's offer. A quoted value counts as its unquoted text, which must be a
// token (RFC 6455 section 9.1).
inline std::optional<deflate_params> read_deflate_params(const extension& e, role from) {
  if (!e.valid || !http::iequals(e.name, "permessage-deflate")) return std::nullopt;
  deflate_params d;
  bool seen_server_window = false;
  for (const auto& p : e.params) {
    if (p.has_value && !detail_pmd::is_token(p.value)) return std::nullopt;
    if (http::iequals(p.name, "server_no_context_takeover")) {
      if (d.server_no_context_takeover || p.has_value) return std::nullopt;
      d.server_no_context_takeover = true;
    } else if (http::iequals(p.name, "client_no_context_takeover")) {
      if (d.client_no_context_takeover || p.has_value) return std::nullopt;
      d.client_no_context_takeover = true;
    } else if (http::iequals(p.name, "server_max_window_bits")) {
      if (seen_server_window || !p.has_value) return std::nullopt;
      seen_server_window = true;
      d.server_max_window_bits = detail_pmd::window_bits_value(p.value);
      if (d.server_max_window_bits == 0) return std::nullopt;
    } else if (http::iequals(p.name, "client_max_window_bits")) {
      if (d.has_client_max_window_bits) return std::nullopt;
      d.has_client_max_window_bits = true;
      if (p.has_value) {
        d.client_max_window_bits = detail_pmd::window_bits_value(p.value);
        if (d.client_max_window_bits == 0) return std::nullopt;
      } else if (from == role::server) {
        return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
  }
  return d;
}

// ---- server role ----

struct deflate_acceptance {
  deflate_agreement agreement;
  // The whole header line for the 101 response: "Sec-WebSocket-Extensions: ...\r\n".
  std::string header;
};

namespace detail_pmd {
inline void append_param(std::string& s, std::string_view name, unsigned value = 0) {
  s += "; ";
  s += name;
  if (value) {
    s += '=';
    s += std::to_string(value);
  }
}
}  // namespace detail_pmd

// Server: picks the first permessage-deflate offer of the client's list (its order of
// preference) that is well formed, and answers it. nullopt: no such offer, or the extension
// is disabled; the connection goes on without compression.
//
//   server_no_context_takeover  always answered: herald's compressor never keeps a window.
//   client_no_context_takeover  answered when offered, and always unless the config allows
//                               the peer context takeover (section 7.1.1.2 lets a server add it).
//   server_max_window_bits=w    answered min(w, window_bits); herald then sends a message's
//                               compressed frame only to receivers whose window it fits.
//                               Not offered: answered window_bits when that is below 15
//                               (section 7.1.2.1 lets a server say so unasked).
//   client_max_window_bits      never answered unless offered (section 7.1.2.2). With context
//                               takeover allowed and a peer window limit below the offer (or
//                               the offer without a value), answered with that limit.
inline std::optional<deflate_acceptance> negotiate_deflate(std::string_view offers, const deflate_config& config) {
  if (!config.enabled || config.check()) return std::nullopt;
  for (const auto& e : parse_extensions(offers)) {
    const auto offer = read_deflate_params(e, role::client);
    if (!offer) continue;
    deflate_acceptance out;
    auto& a = out.agreement;
    a.server_no_context_takeover = true;
    a.client_no_context_takeover = offer->client_no_context_takeover || !config.allow_peer_context_takeover;
    std::string& h = out.header;
    h = "Sec-WebSocket-Extensions: permessage-deflate";
    detail_pmd::append_param(h, "server_no_context_takeover");
    if (a.client_no_context_takeover) detail_pmd::append_param(h, "client_no_context_takeover");
    if (offer->server_max_window_bits) {
      a.server_max_window_bits = std::min(offer->server_max_window_bits, config.window_bits);
      detail_pmd::append_param(h, "server_max_window_bits", a.server_max_window_bits);
    } else if (config.window_bits < 15) {
      a.server_max_window_bits = config.window_bits;
      detail_pmd::append_param(h, "server_max_window_bits", a.server_max_window_bits);
    }
    if (offer->has_client_max_window_bits) {
      // The offer's value (if any) binds the client even when not answered.
      const std::uint8_t offered = offer->client_max_window_bits ? offer->client_max_window_bits : 15;
      a.client_max_window_bits = offered;
      if (!a.client_no_context_takeover && config.peer_window_bits < offered) {
        a.client_max_window_bits = config.peer_window_bits;
        detail_pmd::append_param(h, "client_max_window_bits", a.client_max_window_bits);
      }
    }
    h += "\r\n";
    return out;
  }
  return std::nullopt;
}

// ---- client role ----

// Client: the Sec-WebSocket-Extensions value to offer (without the header name). herald's
// compressor never takes over context, so the offer says client_no_context_takeover, and it
// accepts any client_max_window_bits; unless the config allows the server context takeover,
// it asks for server_no_context_takeover so that one inflater per thread serves every session.
inline std::string deflate_offer(const deflate_config& config) {
  std::string s = "permessage-deflate";
  if (!config.allow_peer_context_takeover) detail_pmd::append_param(s, "server_no_context_takeover");
  detail_pmd::append_param(s, "client_no_context_takeover");
  if (config.allow_peer_context_takeover && config.peer_window_bits < 15)
    detail_pmd::append_param(s, "server_max_window_bits", config.peer_window_bits);
  detail_pmd::append_param(s, "client_max_window_bits");
  return s;
}

// Client: checks the server's Sec-WebSocket-Extensions answer to deflate_offer(config).
// Returns the agreement; nullopt with `why` empty when the server declined (no extension in
// its answer); nullopt with `why` set when the answer must fail the connection (RFC 7692
// section 7.1: an extension or parameter we did not offer, a repeated parameter, an invalid
// value, or a configuration we did not allow).
inline std::optional<deflate_agreement> accept_deflate_response(std::string_view answer, const deflate_config& config,
                                                                std::string& why) {
  why.clear();
  const auto list = parse_extensions(answer);
  if (list.empty()) return std::nullopt;
  if (!config.enabled) {
    why = "server chose an extension that was not offered";
    return std::nullopt;
  }
  if (list.size() != 1 || !list[0].valid || !http::iequals(list[0].name, "permessage-deflate")) {
    why = "server answered with extensions that were not offered";
    return std::nullopt;
  }
  const auto p = read_deflate_params(list[0], role::server);
  if (!p) {
    why = "server's permessage-deflate parameters are malformed, unknown or repeated";
    return std::nullopt;
  }
  if (!config.allow_peer_context_takeover && !p->server_no_context_takeover) {
    why = "server did not accept server_no_context_takeover";
    return std::nullopt;
  }
  const std::uint8_t asked_server_window =
      config.allow_peer_context_takeover && config.peer_window_bits < 15 ? config.peer_window_bits : 0;
  if (asked_server_window && (!p->server_max_window_bits || p->server_max_window_bits > asked_server_window)) {
    why = "server did not accept server_max_window_bits";
    return std::nullopt;
  }
  deflate_agreement a;
  a.server_no_context_takeover = p->server_no_context_takeover;
  a.client_no_context_takeover = true;  // offered: herald never takes over context
  if (p->server_max_window_bits) a.server_max_window_bits = p->server_max_window_bits;
  if (p->has_client_max_window_bits) a.client_max_window_bits = p->client_max_window_bits;
  return a;
}

}  // namespace herald::ws

#endif  // HERALD_WEBSOCKET_PERMESSAGE_DEFLATE_HPP
