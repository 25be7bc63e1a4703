// permessage-deflate negotiation (RFC 7692 section 7.1): the Sec-WebSocket-Extensions syntax,
// the server's choice and answer for the offers real clients make, and the client's check of
// a server's answer. No zlib needed.
#include <doctest/doctest.h>

#include <herald/websocket/permessage_deflate.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace herald::ws;

namespace {

// The answer's header value, without the name and the CRLF.
std::string answer_of(const deflate_acceptance& a) {
  const std::string_view h = a.header;
  const std::string_view prefix = "Sec-WebSocket-Extensions: ";
  REQUIRE(h.substr(0, prefix.size()) == prefix);
  REQUIRE(h.size() >= prefix.size() + 2);
  REQUIRE(h.substr(h.size() - 2) == "\r\n");
  return std::string(h.substr(prefix.size(), h.size() - prefix.size() - 2));
}

struct expected_agreement {
  bool server_no_context_takeover;
  bool client_no_context_takeover;
  int server_max_window_bits;
  int client_max_window_bits;
};

void check_agreement(const deflate_agreement& a, expected_agreement e) {
  CHECK(a.server_no_context_takeover == e.server_no_context_takeover);
  CHECK(a.client_no_context_takeover == e.client_no_context_takeover);
  CHECK(int(a.server_max_window_bits) == e.server_max_window_bits);
  CHECK(int(a.client_max_window_bits) == e.client_max_window_bits);
}

std::optional<deflate_params> offer_params(std::string_view header) {
  const auto list = parse_extensions(header);
  REQUIRE(list.size() == 1);
  return read_deflate_params(list[0], role::client);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Header syntax

TEST_CASE("extensions: names, parameters, values, whitespace and empty elements") {
  const auto l = parse_extensions(
      "permessage-deflate; client_max_window_bits,x-webkit-deflate-frame , ,\tfoo ;a=1; b = \"two\" ;c");
  REQUIRE(l.size() == 3);
  CHECK(l[0].valid);
  CHECK(l[0].name == "permessage-deflate");
  REQUIRE(l[0].params.size() == 1);
  CHECK(l[0].params[0].name == "client_max_window_bits");
  CHECK_FALSE(l[0].params[0].has_value);
  CHECK(l[1].name == "x-webkit-deflate-frame");
  CHECK(l[1].params.empty());
  CHECK(l[2].name == "foo");
  REQUIRE(l[2].params.size() == 3);
  CHECK(l[2].params[0].name == "a");
  CHECK(l[2].params[0].value == "1");
  CHECK(l[2].params[1].name == "b");
  CHECK(l[2].params[1].value == "two");
  CHECK(l[2].params[1].has_value);
  CHECK(l[2].params[2].name == "c");
  CHECK_FALSE(l[2].params[2].has_value);

  CHECK(parse_extensions("").empty());
  CHECK(parse_extensions("  ,, , ").empty());
}

TEST_CASE("extensions: quoted values are unescaped") {
  const auto l = parse_extensions(R"(e; a="1\5"; b="x\"y"; c="";d="a,b;c")");
  REQUIRE(l.size() == 1);
  REQUIRE(l[0].valid);
  REQUIRE(l[0].params.size() == 4);
  CHECK(l[0].params[0].value == "15");
  CHECK(l[0].params[1].value == "x\"y");
  CHECK(l[0].params[2].value == "");
  CHECK(l[0].params[2].has_value);
  CHECK(l[0].params[3].value == "a,b;c");
}

TEST_CASE("extensions: a broken element is marked invalid and the next one still counts") {
  for (std::string_view bad : {"x;", "x; =1", "x;a=", "x;a=\"open", "x a", "x;a=b c", "=x", "x;a=@", "x;a=\"\x01\"",
                               "x;;a", "x;a==b"}) {
    CAPTURE(bad);
    const std::string header = std::string(bad) + ", permessage-deflate";
    const auto l = parse_extensions(header);
    REQUIRE_FALSE(l.empty());
    CHECK_FALSE(l[0].valid);
    // An unterminated quote swallows the rest of the header; otherwise the next element is read.
    if (bad.find('"') == std::string_view::npos || bad.find("\"\x01") != std::string_view::npos) {
      REQUIRE(l.size() == 2);
      CHECK(l[1].valid);
      CHECK(l[1].name == "permessage-deflate");
    }
  }
  // A comma inside a broken element's quoted string does not end the element.
  const auto l = parse_extensions("x;a=\"p,q\" junk, permessage-deflate");
  REQUIRE(l.size() == 2);
  CHECK_FALSE(l[0].valid);
  CHECK(l[1].name == "permessage-deflate");
}

// ---------------------------------------------------------------------------------------
// permessage-deflate parameters

TEST_CASE("permessage-deflate: parameters of an offer") {
  auto p = offer_params("permessage-deflate");
  REQUIRE(p);
  CHECK_FALSE(p->server_no_context_takeover);
  CHECK_FALSE(p->client_no_context_takeover);
  CHECK(p->server_max_window_bits == 0);
  CHECK_FALSE(p->has_client_max_window_bits);

  p = offer_params(
      "Permessage-Deflate; SERVER_NO_CONTEXT_TAKEOVER; client_no_context_takeover; server_max_window_bits=10; "
      "client_max_window_bits=\"9\"");
  REQUIRE(p);
  CHECK(p->server_no_context_takeover);
  CHECK(p->client_no_context_takeover);
  CHECK(p->server_max_window_bits == 10);
  CHECK(p->has_client_max_window_bits);
  CHECK(p->client_max_window_bits == 9);

  p = offer_params("permessage-deflate; client_max_window_bits");
  REQUIRE(p);
  CHECK(p->has_client_max_window_bits);
  CHECK(p->client_max_window_bits == 0);

  for (int bits = 8; bits <= 15; ++bits) {
    CAPTURE(bits);
    const auto q = offer_params("permessage-deflate; server_max_window_bits=" + std::to_string(bits) +
                                "; client_max_window_bits=" + std::to_string(bits));
    REQUIRE(q);
    CHECK(int(q->server_max_window_bits) == bits);
    CHECK(int(q->client_max_window_bits) == bits);
  }
}

TEST_CASE("permessage-deflate: an offer with an unknown, repeated or invalid parameter is unusable") {
  for (std::string_view bad : {
           "permessage-deflate; foo",
           "permessage-deflate; foo=1",
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
           "permessage-deflate; server_no_context_takeover=1",
           "permessage-deflate; client_no_context_takeover=\"\"",
           "permessage-deflate; server_max_window_bits",
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=08",
           "permessage-deflate; server_max_window_bits=+9",
           "permessage-deflate; server_max_window_bits=-9",
           "permessage-deflate; server_max_window_bits=9.0",
           "permessage-deflate; server_max_window_bits=\"1 0\"",
           "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
           "permessage-deflate; client_max_window_bits=0",
           "permessage-deflate; client_max_window_bits=abc",
           "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
           "permessage-deflate; client_max_window_bits=\"\"",
           "permessage-deflate; client_max_window_bits=\"@\"",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(offer_params(bad));
    CHECK_FALSE(negotiate_deflate(bad, {}));
  }
  // Not this extension at all.
  const auto l = parse_extensions("permessage-deflatex; server_no_context_takeover");
  REQUIRE(l.size() == 1);
  CHECK_FALSE(read_deflate_params(l[0], role::client));
}

TEST_CASE("permessage-deflate: client_max_window_bits needs a value in a server's answer") {
  const auto l = parse_extensions("permessage-deflate; client_max_window_bits");
  REQUIRE(l.size() == 1);
  CHECK(read_deflate_params(l[0], role::client));
  CHECK_FALSE(read_deflate_params(l[0], role::server));
}

// ---------------------------------------------------------------------------------------
// Server: what real clients offer, and what herald answers

TEST_CASE("negotiate: the offers of browsers, Node ws and Python websockets") {
  struct row {
    const char* who;
    std::string_view offer;
    std::string_view answer;
    expected_agreement agreed;
  };
  const std::string_view both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
  const row table[] = {
      // Chromium, Firefox, Node ws (perMessageDeflate: true) and Python websockets
      // (compression="deflate") all offer this by default.
      {"browsers, Node ws, Python websockets", "permessage-deflate; client_max_window_bits", both, {true, true, 15, 15}},
      {"Safari and old clients", "permessage-deflate", both, {true, true, 15, 15}},
      {"Python websockets with its documented low-memory settings",
       "permessage-deflate; server_max_window_bits=11; client_max_window_bits=11",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11",
       {true, true, 11, 11}},
      {"Node ws with serverNoContextTakeover and clientNoContextTakeover",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits", both,
       {true, true, 15, 15}},
      // Accepting an offer's server_max_window_bits means answering it, even at 15.
      {"the largest window named", "permessage-deflate; server_max_window_bits=15",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
       {true, true, 15, 15}},
  };
  for (const auto& r : table) {
    CAPTURE(r.who);
    const auto a = negotiate_deflate(r.offer, {});  // defaults: window 15, no client context takeover
    REQUIRE(a);
    CHECK(answer_of(*a) == r.answer);
    check_agreement(a->agreement, r.agreed);
  }
}

TEST_CASE("negotiate: server_max_window_bits 8 is accepted as offered (herald never compresses beyond it)") {
  const auto a = negotiate_deflate("permessage-deflate; server_max_window_bits=8", {});
  REQUIRE(a);
  CHECK(answer_of(*a) ==
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8");
  CHECK(a->agreement.send_window_bits(role::server) == 8);
  // A message is sent compressed to that client only if it is at most 256 bytes long.
  CHECK(window_needed(256, 15) == 8);
  CHECK(window_needed(257, 15) == 9);
}

TEST_CASE("negotiate: the server's own window") {
  deflate_config config;
  config.window_bits = 12;
  // Unasked, the server may say it uses a smaller window (section 7.1.2.1).
  auto a = negotiate_deflate("permessage-deflate; client_max_window_bits", config);
  REQUIRE(a);
  CHECK(answer_of(*a) ==
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12");
  check_agreement(a->agreement, {true, true, 12, 15});
  // Asked for a larger one, it answers its own (same or smaller than the offer).
  a = negotiate_deflate("permessage-deflate; server_max_window_bits=14", config);
  REQUIRE(a);
  CHECK(a->agreement.server_max_window_bits == 12);
  // Asked for a smaller one, it answers that.
  a = negotiate_deflate("permessage-deflate; server_max_window_bits=10", config);
  REQUIRE(a);
  CHECK(a->agreement.server_max_window_bits == 10);
}

TEST_CASE("negotiate: the first usable offer wins, in the client's order") {
  auto a = negotiate_deflate(
      "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=16, "
      "permessage-deflate; server_max_window_bits=10; bogus, permessage-deflate; server_max_window_bits=12, "
      "permessage-deflate",
      {});
  REQUIRE(a);
  CHECK(a->agreement.server_max_window_bits == 12);

  // Autobahn 13.7's shape: several valid offers; the first is taken.
  a = negotiate_deflate(
      "permessage-deflate; client_no_context_takeover; client_max_window_bits=8, "
      "permessage-deflate; client_no_context_takeover, permessage-deflate",
      {});
  REQUIRE(a);
  check_agreement(a->agreement, {true, true, 15, 8});
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover; client_no_context_takeover");

  // A broken element does not hide a later offer.
  a = negotiate_deflate("foo; a=\"x, permessage-deflate", {});
  CHECK_FALSE(a);  // the unterminated quote runs to the end
  a = negotiate_deflate("foo; =x, permessage-deflate", {});
  CHECK(a);
}

TEST_CASE("negotiate: declined offers leave the connection without the extension") {
  CHECK_FALSE(negotiate_deflate("", {}));
  CHECK_FALSE(negotiate_deflate("x-webkit-deflate-frame", {}));
  CHECK_FALSE(negotiate_deflate("permessage-deflate; server_max_window_bits=7, permessage-deflate; x=1", {}));
  deflate_config off;
  off.enabled = false;
  CHECK_FALSE(negotiate_deflate("permessage-deflate", off));
  deflate_config broken;
  broken.window_bits = 8;  // zlib cannot compress raw deflate with 8 bits
  CHECK(broken.check() != nullptr);
  CHECK_FALSE(negotiate_deflate("permessage-deflate", broken));
}

TEST_CASE("negotiate: when the client may keep its context") {
  deflate_config config;
  config.allow_peer_context_takeover = true;
  // The browser offer: no client_no_context_takeover answered, the client keeps its window.
  auto a = negotiate_deflate("permessage-deflate; client_max_window_bits", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover");
  check_agreement(a->agreement, {true, false, 15, 15});
  CHECK_FALSE(a->agreement.peer_no_context_takeover(role::server));
  CHECK(a->agreement.peer_window_bits(role::server) == 15);

  // A client that gives it up anyway is answered so (and needs no inflater of its own).
  a = negotiate_deflate("permessage-deflate; client_no_context_takeover", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  CHECK(a->agreement.peer_no_context_takeover(role::server));

  // A peer window limit is answered when the offer lets the server choose...
  config.peer_window_bits = 10;
  a = negotiate_deflate("permessage-deflate; client_max_window_bits", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
  CHECK(a->agreement.peer_window_bits(role::server) == 10);
  // ... or offers a larger one...
  a = negotiate_deflate("permessage-deflate; client_max_window_bits=12", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
  // ... not when the offer's is already smaller (it binds the client unanswered)...
  a = negotiate_deflate("permessage-deflate; client_max_window_bits=9", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover");
  CHECK(a->agreement.client_max_window_bits == 9);
  // ... and never when the offer has no client_max_window_bits (section 7.1.2.2).
  a = negotiate_deflate("permessage-deflate", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover");
  CHECK(a->agreement.client_max_window_bits == 15);
}

TEST_CASE("negotiate: without client context takeover the client's window is not limited") {
  deflate_config config;
  config.peer_window_bits = 9;  // only matters for a client that keeps its context
  const auto a = negotiate_deflate("permessage-deflate; client_max_window_bits", config);
  REQUIRE(a);
  CHECK(answer_of(*a) == "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

// ---------------------------------------------------------------------------------------
// Client: offer and answer

TEST_CASE("client: the offer") {
  CHECK(deflate_offer({}) ==
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits");
  deflate_config takeover;
  takeover.allow_peer_context_takeover = true;
  CHECK(deflate_offer(takeover) == "permessage-deflate; client_no_context_takeover; client_max_window_bits");
  takeover.peer_window_bits = 11;
  CHECK(deflate_offer(takeover) ==
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits");
  // Every offer herald makes is one herald accepts.
  CHECK(negotiate_deflate(deflate_offer({}), {}));
  CHECK(negotiate_deflate(deflate_offer(takeover), {}));
}

TEST_CASE("client: answers that are accepted") {
  std::string why;
  auto a = accept_deflate_response("permessage-deflate; server_no_context_takeover", {}, why);
  REQUIRE(a);
  CHECK(why.empty());
  check_agreement(*a, {true, true, 15, 15});
  CHECK(a->peer_no_context_takeover(role::client));
  CHECK(a->send_window_bits(role::client) == 15);

  a = accept_deflate_response(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
      "client_max_window_bits=10",
      {}, why);
  REQUIRE(a);
  check_agreement(*a, {true, true, 9, 10});
  CHECK(a->send_window_bits(role::client) == 10);
  CHECK(a->peer_window_bits(role::client) == 9);

  // The server declined: no extension, no error.
  CHECK_FALSE(accept_deflate_response("", {}, why));
  CHECK(why.empty());

  // With context takeover allowed, a server that keeps its window is fine.
  deflate_config takeover;
  takeover.allow_peer_context_takeover = true;
  a = accept_deflate_response("permessage-deflate", takeover, why);
  REQUIRE(a);
  CHECK_FALSE(a->peer_no_context_takeover(role::client));
  takeover.peer_window_bits = 11;
  a = accept_deflate_response("permessage-deflate; server_max_window_bits=10", takeover, why);
  REQUIRE(a);
  CHECK(a->peer_window_bits(role::client) == 10);
}

TEST_CASE("client: answers that fail the connection") {
  deflate_config takeover;
  takeover.allow_peer_context_takeover = true;
  takeover.peer_window_bits = 11;
  struct bad_answer {
    std::string_view answer;
    const deflate_config* config;
  };
  const deflate_config plain;
  for (const auto& bad : {
           bad_answer{"permessage-deflate", &plain},  // server_no_context_takeover was asked for
           bad_answer{"permessage-deflate; client_no_context_takeover", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover; client_max_window_bits", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover; client_max_window_bits=16", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover; server_max_window_bits=7", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover; foo", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover", &plain},
           bad_answer{"x-webkit-deflate-frame", &plain},
           bad_answer{"permessage-deflate; server_no_context_takeover; a=\"", &plain},
           bad_answer{"permessage-deflate", &takeover},                            // server_max_window_bits=11 not answered
           bad_answer{"permessage-deflate; server_max_window_bits=12", &takeover},  // larger than asked
       }) {
    CAPTURE(bad.answer);
    std::string why;
    CHECK_FALSE(accept_deflate_response(bad.answer, *bad.config, why));
    CHECK_FALSE(why.empty());
  }
  deflate_config off;
  off.enabled = false;
  std::string why;
  CHECK_FALSE(accept_deflate_response("permessage-deflate; server_no_context_takeover", off, why));
  CHECK_FALSE(why.empty());
}

TEST_CASE("client and server agree on the same parameters") {
  for (bool takeover : {false, true}) {
    for (int client_window : {9, 12, 15}) {
      for (int server_window : {9, 12, 15}) {
        CAPTURE(takeover);
        CAPTURE(client_window);
        CAPTURE(server_window);
        deflate_config client;
        client.allow_peer_context_takeover = takeover;
        client.peer_window_bits = static_cast<std::uint8_t>(client_window);
        deflate_config server;
        server.allow_peer_context_takeover = takeover;
        server.window_bits = static_cast<std::uint8_t>(server_window);
        server.peer_window_bits = static_cast<std::uint8_t>(client_window);
        const auto s = negotiate_deflate(deflate_offer(client), server);
        REQUIRE(s);
        std::string why;
        const auto c = accept_deflate_response(answer_of(*s), client, why);
        REQUIRE(c);
        CHECK(why.empty());
        CHECK(c->server_no_context_takeover == s->agreement.server_no_context_takeover);
        CHECK(c->client_no_context_takeover);
        CHECK(c->server_max_window_bits == s->agreement.server_max_window_bits);
        CHECK(c->client_max_window_bits == s->agreement.client_max_window_bits);
        // What the server sends fits what the client inflates, and the other way round.
        CHECK(s->agreement.send_window_bits(role::server) <= c->peer_window_bits(role::client));
        CHECK(c->send_window_bits(role::client) <= s->agreement.peer_window_bits(role::server));
      }
    }
  }
}

TEST_CASE("window_needed: the smallest receiver window for a message") {
  CHECK(window_needed(0, 15) == 8);
  CHECK(window_needed(1, 15) == 8);
  CHECK(window_needed(256, 15) == 8);
  CHECK(window_needed(257, 15) == 9);
  CHECK(window_needed(512, 15) == 9);
  CHECK(window_needed(4096, 15) == 12);
  CHECK(window_needed(4097, 15) == 13);
  CHECK(window_needed(32768, 15) == 15);
  CHECK(window_needed(1 << 20, 15) == 15);
  CHECK(window_needed(1 << 20, 12) == 12);
  CHECK(window_needed(300, 9) == 9);
  CHECK(window_needed(100, 9) == 8);
}
