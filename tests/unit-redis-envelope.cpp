// The payload format of the redis_cluster policy (herald/redis/envelope.hpp): what nodes
// publish, and how any payload (from a node, redis-cli, PHP...) is read back.
#include <doctest/doctest.h>

#include <herald/redis/envelope.hpp>

#include <string>

using herald::redis::unwrap;
using herald::redis::wrap;

TEST_CASE("an envelope carries the node id, the kind and the body unchanged") {
  const std::string body = "hello: \x1E with separators \x1E and colons";
  const auto text = wrap("node-1.a_B", false, body);
  CHECK(text == "\x1Enode-1.a_B\x1Et" + body);
  auto e = unwrap(text);
  CHECK(e.origin == "node-1.a_B");
  CHECK_FALSE(e.binary);
  CHECK(e.body == body);

  const std::string bin("\x00\xff\x01", 3);
  const auto wrapped_bin = wrap("n", true, bin);
  e = unwrap(wrapped_bin);
  CHECK(e.origin == "n");
  CHECK(e.binary);
  CHECK(e.body == bin);

  const auto wrapped_empty = wrap("n", false, "");
  e = unwrap(wrapped_empty);
  CHECK(e.origin == "n");
  CHECK(e.body.empty());
}

TEST_CASE("anything that is not an envelope is the message itself") {
  auto e = unwrap("plain text from redis-cli");
  CHECK(e.origin.empty());
  CHECK_FALSE(e.binary);
  CHECK(e.body == "plain text from redis-cli");

  e = unwrap("");
  CHECK(e.origin.empty());
  CHECK(e.body.empty());

  // Not UTF-8: goes out as a binary message rather than as a broken text frame.
  e = unwrap("\xff\xfe");
  CHECK(e.origin.empty());
  CHECK(e.binary);

  // Look-alikes: a bad node id, no second mark, an unknown kind, a truncated header.
  for (const std::string& p : {std::string("\x1Eno spaces\x1Etx"), std::string("\x1Enode-only"), std::string("\x1Enode\x1Ex!"),
                              std::string("\x1En\x1E"), std::string("\x1E\x1Et"), std::string("\x1E") + std::string(65, 'a') + "\x1Etx"}) {
    e = unwrap(p);
    CHECK(e.origin.empty());
    CHECK(e.body == p);
  }
  // A text envelope whose body is not UTF-8 is delivered as binary.
  const std::string bad_text("\x1En\x1Et\xff");
  e = unwrap(bad_text);
  CHECK(e.origin == "n");
  CHECK(e.binary);
}

TEST_CASE("node ids") {
  CHECK(herald::redis::valid_node_id("a"));
  CHECK(herald::redis::valid_node_id(std::string(64, 'z')));
  CHECK_FALSE(herald::redis::valid_node_id(""));
  CHECK_FALSE(herald::redis::valid_node_id(std::string(65, 'z')));
  CHECK_FALSE(herald::redis::valid_node_id("a:b"));
  CHECK_FALSE(herald::redis::valid_node_id("a b"));
}

TEST_CASE("a recorded message: epoch and offset between the node id and the kind") {
  const std::string R(1, '\x1E');  // the mark
  const std::string body = "hi " + R + " there";
  const std::string p = R + "node-1" + R + "h3f9c0a7be1d24c55" + R + "42" + R + "t" + body;
  auto e = unwrap(p);
  CHECK(e.origin == "node-1");
  CHECK(e.epoch == "3f9c0a7be1d24c55");
  CHECK(e.offset == 42);
  CHECK_FALSE(e.binary);
  CHECK(e.body == body);
  const std::string bin = R + "x" + R + "he" + R + "7" + R + "b\xff";  // e's views point into it
  e = unwrap(bin);
  CHECK(e.epoch == "e");
  CHECK(e.offset == 7);
  CHECK(e.binary);
  CHECK(e.body == "\xff");
  // Malformed: no offset, offset 0, not a number, no epoch, a bad epoch, no kind: the payload as it is.
  for (const std::string& bad : {R + "x" + R + "he" + R + R + "t", R + "x" + R + "he" + R + "0" + R + "ta",
                                 R + "x" + R + "he" + R + "1a" + R + "ta", R + "x" + R + "h" + R + "1" + R + "ta",
                                 R + "x" + R + "he p" + R + "1" + R + "ta", R + "x" + R + "he" + R + "1" + R}) {
    e = unwrap(bad);
    CHECK(e.origin.empty());
    CHECK(e.offset == 0);
    CHECK(e.epoch.empty());
    CHECK(e.body == bad);
  }
}
