// A hand-written WebSocket client for the packaging consumers (echo_roundtrip.ipp and the
// single-header consumer include it): it speaks just enough RFC 6455 to upgrade, send short
// masked frames and read the server's unmasked ones, so each consumer needs nothing but herald
// and Asio. Included by .cpp files only, in namespace consumer.
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace consumer {

// A masked client frame with a payload under 126 bytes.
inline std::string client_frame(unsigned opcode, std::string_view payload) {
  const std::array<unsigned char, 4> mask{0x12, 0x34, 0x56, 0x78};
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  f += static_cast<char>(0x80 | payload.size());
  for (auto m : mask) f += static_cast<char>(m);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

// Reads exactly n bytes: first from `pending` (bytes read past the handshake), then the socket.
inline asio::awaitable<std::string> read_exactly(asio::ip::tcp::socket& s, std::string& pending, std::size_t n) {
  while (pending.size() < n) {
    std::array<char, 512> chunk;
    const std::size_t got = co_await s.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    pending.append(chunk.data(), got);
  }
  std::string out = pending.substr(0, n);
  pending.erase(0, n);
  co_return out;
}

// Connects and upgrades; "" when the server answered 101 with the right accept key, else what
// it answered. Bytes read past the answer stay in `pending`.
inline asio::awaitable<std::string> upgrade(asio::ip::tcp::socket& s, asio::ip::tcp::endpoint server, std::string& pending) {
  co_await s.async_connect(server, asio::use_awaitable);
  const std::string request =
      "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
  const std::size_t head_size =
      co_await asio::async_read_until(s, asio::dynamic_buffer(pending), "\r\n\r\n", asio::use_awaitable);
  std::string head = pending.substr(0, head_size);
  pending.erase(0, head_size);
  if (head.rfind("HTTP/1.1 101", 0) == 0 && head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos) head.clear();
  co_return head;
}

// The next frame from the server (unmasked, payload under 64 KiB): its first byte (FIN and
// opcode) and payload.
struct frame {
  unsigned char first = 0;
  std::string payload;
};
inline asio::awaitable<frame> read_frame(asio::ip::tcp::socket& s, std::string& pending) {
  const std::string header = co_await read_exactly(s, pending, 2);
  frame f;
  f.first = static_cast<unsigned char>(header[0]);
  std::size_t length = static_cast<unsigned char>(header[1]) & 0x7f;
  if (length == 126) {
    const std::string ext = co_await read_exactly(s, pending, 2);
    length = static_cast<std::size_t>(static_cast<unsigned char>(ext[0])) << 8 | static_cast<unsigned char>(ext[1]);
  }
  f.payload = co_await read_exactly(s, pending, length);
  co_return f;
}

}  // namespace consumer
