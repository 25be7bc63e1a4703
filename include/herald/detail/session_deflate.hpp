// What one ws_session does for permessage-deflate (RFC 7692), in both roles, kept out of the
// session so that it reads as a handful of hooks: answer or make the offer at the opening
// handshake, pick the frame for an outgoing message, inflate an incoming compressed one.
// Without zlib: the compression itself is session_options::deflate (herald/deflate.hpp).
//
// A session holds 16 bytes of it: three window and mode bytes and a unique_ptr that stays
// empty unless the peer was allowed context takeover (then it holds that peer's inflater from
// its first compressed message on). Compressing happens once per message for all receivers
// (message::deflated); inflating a peer that takes no context over uses the thread's inflater.
#ifndef HERALD_DETAIL_SESSION_DEFLATE_HPP
#define HERALD_DETAIL_SESSION_DEFLATE_HPP
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "../deflate_support.hpp"
#include "../http/request.hpp"
#include "../message.hpp"
#include "../options.hpp"
#include "../websocket/frame.hpp"
#include "../websocket/parser.hpp"
#include "../websocket/permessage_deflate.hpp"
#include "utf8.hpp"

namespace herald::detail {

// Why an incoming compressed message fails the session; `code` 0: it did not.
struct inflate_failure {
  std::uint16_t code = 0;
  const char* reason = "";
  explicit operator bool() const noexcept { return code != 0; }
};

class session_deflate {
 public:
  // Was permessage-deflate agreed on this connection?
  bool negotiated() const noexcept { return send_window_ != 0; }
  // Bytes of zlib state this session holds (only with a context-takeover peer).
  std::size_t memory() const noexcept { return inflater_ ? inflater_->memory() : 0; }

  // Server: answers the client's permessage-deflate offer, if any and if `o` allows it: the
  // answer's header goes into `response` (the 101, before its blank line) and the parser
  // accepts RSV1. Nothing happens without session_options::deflate.
  bool accept_offer(const session_options& o, const http::request& req, std::string& response, ws::parser& parser) {
    if (!o.deflate) return false;
    auto acc = ws::negotiate_deflate(req.header("Sec-WebSocket-Extensions"), o.deflate->config());
    if (!acc) return false;
    response.insert(response.size() - 2, acc->header);
    agree(acc->agreement, ws::role::server, parser);
    return true;
  }

  // Client: the Sec-WebSocket-Extensions value to offer (empty: none).
  static std::string offer(const session_options& o) {
    if (!o.deflate || !o.deflate->config().enabled) return {};
    return ws::deflate_offer(o.deflate->config());
  }

  // Client: checks the server's Sec-WebSocket-Extensions answer (empty when it had none)
  // against offer(o). False, with `why`, when the connection must fail (RFC 7692 section 7.1).
  bool accept_answer(const session_options& o, std::string_view answer, ws::parser& parser, std::string& why) {
    if (offer(o).empty()) {
      if (ws::parse_extensions(answer).empty()) return true;
      why = "server chose Sec-WebSocket-Extensions that were not requested";
      return false;
    }
    const auto a = ws::accept_deflate_response(answer, o.deflate->config(), why);
    if (a) agree(*a, ws::role::client, parser);
    return why.empty();
  }

  // The frame `m` goes out as to this peer: the message's compressed frame, built once and
  // shared by every deflate receiver, when it was negotiated and compressing pays (threshold,
  // size, the window this peer agreed to: message::deflated); `m` itself otherwise.
  message outgoing(message m, const session_options& o) const {
    if (!send_window_ || m.is_control()) return m;
    return m.deflated(*o.deflate, send_window_);
  }

  // Inflates a compressed message (ev.compressed) into `out` under o.max_message_size, which
  // counts the inflated bytes and is checked while inflating; text must then be UTF-8.
  inflate_failure inflate(const ws::event& ev, const session_options& o, std::string& out) {
    if (!send_window_ || !o.deflate) return {ws::close_code::protocol_error, "compressed message without permessage-deflate"};
    inflate_status st;
    if (!peer_takes_over_) {
      st = o.deflate->inflate(ev.payload, o.max_message_size, out);
    } else {
      if (!inflater_) inflater_ = o.deflate->make_inflater(peer_window_);
      st = inflater_ ? inflater_->inflate(ev.payload, o.max_message_size, out) : inflate_status::failed;
    }
    if (st != inflate_status::ok) return {close_code_of(st), reason_of(st)};
    if (ev.op == ws::opcode::text && !is_valid_utf8(out.data(), out.size()))
      return {ws::close_code::invalid_payload, "text message is not valid UTF-8"};
    return {};
  }

 private:
  void agree(const ws::deflate_agreement& a, ws::role self, ws::parser& parser) noexcept {
    send_window_ = a.send_window_bits(self);
    peer_window_ = a.peer_window_bits(self);
    peer_takes_over_ = !a.peer_no_context_takeover(self);
    parser.enable_compression();
  }

  std::unique_ptr<deflate_inflater> inflater_;  // a context-takeover peer's, from its first compressed message
  std::uint8_t send_window_ = 0;                // the window this peer inflates with (8..15); 0: not negotiated
  std::uint8_t peer_window_ = 0;                // the window the peer compresses with
  bool peer_takes_over_ = false;                // the peer keeps its window across messages
};

}  // namespace herald::detail

#endif  // HERALD_DETAIL_SESSION_DEFLATE_HPP
