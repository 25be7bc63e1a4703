// An HTTP/1.1 request head parser with a size limit, sans-I/O: used by the WebSocket
// handshake and by anything else herald answers over HTTP. Bodies are the caller's business.
#ifndef HERALD_HTTP_REQUEST_HPP
#define HERALD_HTTP_REQUEST_HPP
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::http {

inline char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Does a comma-separated header value hold `token` (case-insensitive)? ("keep-alive, Upgrade")
inline bool has_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

struct request {
  std::string method;
  std::string target;
  int version_minor = 1;  // HTTP/1.x
  std::vector<std::pair<std::string, std::string>> headers;

  // The first header of that name, or empty. Repeated headers are joined with ", " on parse.
  std::string_view header(std::string_view name) const noexcept {
    for (const auto& [n, v] : headers)
      if (iequals(n, name)) return v;
    return {};
  }
  bool has_header(std::string_view name) const noexcept {
    for (const auto& h : headers)
      if (iequals(h.first, name)) return true;
    return false;
  }
};

// Outcome of feeding bytes: keep reading, done (with the byte count of the head), or an
// error that the caller answers with `status` and `reason` and then closes.
struct parse_status {
  enum kind_t { need_more, done, error } kind = need_more;
  std::size_t head_size = 0;
  int status = 0;
  const char* reason = "";
};

// Scans `data` (everything received so far) for a complete request head and parses it.
inline parse_status parse_request(std::string_view data, std::size_t max_head_size, request& out) {
  auto error = [](int status, const char* reason) { return parse_status{parse_status::error, 0, status, reason}; };
  const auto end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= max_head_size) return error(431, "request header block too large");
    return {};
  }
  const std::size_t head_size = end + 4;
  if (head_size > max_head_size) return error(431, "request header block too large");
  std::string_view head = data.substr(0, end + 2);

  auto next_line = [&head]() {
    const auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    return line;
  };
  auto is_token_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  };

  std::string_view line = next_line();
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return error(400, "malformed request line");
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (method.empty()) return error(400, "malformed request line");
  for (char c : method)
    if (!is_token_char(c)) return error(400, "malformed request line");
  if (target.empty()) return error(400, "malformed request target");
  // No controls (NUL, a lone CR or LF, DEL...) in the target the application gets to see.
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return error(400, "malformed request target");
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' || version[7] > '9')
    return error(505, "only HTTP/1.x is supported");
  out.method.assign(method);
  out.target.assign(target);
  out.version_minor = version[7] - '0';
  out.headers.clear();

  while (!head.empty()) {
    line = next_line();
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return error(400, "obsolete header line folding");
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return error(400, "malformed header line");
    const std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!is_token_char(c)) return error(400, "malformed header name");
    const std::string_view value = trim(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) return error(400, "control character in a header value");
    bool merged = false;
    for (auto& [n, v] : out.headers) {
      if (iequals(n, name)) {
        v.append(", ").append(value);
        merged = true;
        break;
      }
    }
    if (!merged) out.headers.emplace_back(std::string(name), std::string(value));
  }
  return {parse_status::done, head_size, 0, ""};
}

inline const char* status_text(int status) noexcept {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 400 ? "OK" : "Error";
  }
}

// A complete HTTP/1.1 response that closes the connection: status line, Content-Type,
// Content-Length, `extra_headers` (each line ending in \r\n) and the body. For
// session_options::http_fallback (a page, a health check) and error answers alike.
inline std::string response(int status, std::string_view body, std::string_view content_type = "text/plain; charset=utf-8",
                            std::string_view extra_headers = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) + "\r\n";
  r.reserve(r.size() + 96 + extra_headers.size() + body.size());
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
  r += extra_headers;
  r += "\r\n";
  r += body;
  return r;
}

// A complete error response whose body says why, and which closes the connection.
inline std::string error_response(int status, std::string_view reason, std::string_view extra_headers = {}) {
  std::string body(reason);
  body += '\n';
  return response(status, body, "text/plain; charset=utf-8", extra_headers);
}

}  // namespace herald::http

#endif  // HERALD_HTTP_REQUEST_HPP
