// The Redis URL parser shared by the deployment config and RedisClient (see redis_url.h).
#include "config/redis_url.h"

#include <cctype>
#include <charconv>
#include <string_view>

#include "config/redact.h"

namespace fleet {
namespace {

constexpr const char* kForms =
    "expected redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path/to/socket[?db=N]";

bool parse_int(std::string_view s, long long lo, long long hi, long long* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// Printable, bounded rendering for error messages.
std::string printable(const std::string& s, size_t max_len = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += std::isprint(c) ? static_cast<char>(c) : '?';
  }
  if (s.size() > max_len) out += "...";
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX -> byte; false on a malformed escape.
bool percent_decode(const std::string& in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    const int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
    const int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// Everything but unreserved characters (RFC 3986) percent-encoded.
std::string percent_encode(const std::string& in) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string userinfo_text(const RedisUrl& u, bool mask) {
  if (u.user.empty() && u.password.empty()) return "";
  std::string pw = u.password.empty() ? "" : mask ? "***" : percent_encode(u.password);
  return percent_encode(u.user) + ":" + pw + "@";
}

std::string render(const RedisUrl& u, bool mask) {
  const std::string auth = userinfo_text(u, mask);
  if (u.unix_socket) return "unix://" + auth + u.socket_path + (u.db != 0 ? "?db=" + std::to_string(u.db) : "");
  const std::string h = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  return "redis://" + auth + h + ":" + std::to_string(u.port) + "/" + std::to_string(u.db);
}

}  // namespace

std::string RedisUrl::str() const { return render(*this, true); }
std::string RedisUrl::secret_url() const { return render(*this, false); }

std::string redact_redis_url(const std::string& url) { return redact_userinfo(url); }

RedisUrl parse_redis_url(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return RedisUrlError("bad Redis URL '" + printable(redact_userinfo(url)) + "': " + why + " (" + kForms + ")");
  };
  RedisUrl out;
  std::string rest;
  if (url.rfind("rediss://", 0) == 0)
    throw bad("rediss:// (Redis over TLS) is not supported: the hiredis of Debian 12 (libhiredis 0.14) is built "
              "without TLS; use redis:// on a trusted network, a unix:// socket, or a TLS tunnel (e.g. stunnel) "
              "to a local port");
  if (url.rfind("redis://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("unix://", 0) == 0) {
    out.unix_socket = true;
    rest = url.substr(7);
  } else {
    throw bad("it must start with redis:// or unix://");
  }

  // User-info: up to the last '@' for redis:// (host, port and db never contain one), up to
  // the '@' before the socket's absolute path for unix://.
  size_t at = std::string::npos;
  if (out.unix_socket) {
    if (rest.empty() || rest[0] != '/') at = rest.find("@/");
  } else {
    at = rest.rfind('@');
  }
  if (at != std::string::npos) {
    const std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = userinfo.find(':');
    std::string user = colon == std::string::npos ? "" : userinfo.substr(0, colon);
    std::string password = colon == std::string::npos ? userinfo : userinfo.substr(colon + 1);
    if (!percent_decode(user, &out.user) || !percent_decode(password, &out.password))
      throw bad("invalid percent-encoding in the user-info (write '%' as %25)");
    if (out.password.empty() && out.user.empty()) throw bad("empty password before '@'");
  }

  if (out.unix_socket) {
    std::string query;
    if (size_t q = rest.find('?'); q != std::string::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty()) throw bad("missing socket path");
    if (rest[0] != '/') throw bad("the socket path must be absolute (unix:///path/to/socket)");
    out.socket_path = rest;
    if (!query.empty()) {
      long long v = 0;
      if (query.rfind("db=", 0) != 0) throw bad("unknown parameter '" + printable(query, 40) + "' (only db=N)");
      if (!parse_int(query.substr(3), 0, 1 << 20, &v))
        throw bad("database '" + printable(query.substr(3), 40) + "' is not a non-negative integer");
      out.db = static_cast<int>(v);
    }
    return out;
  }

  std::string path;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  std::string port_str;
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos) throw bad("unterminated '[' in IPv6 host");
    out.host = rest.substr(1, close - 1);
    const std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw bad("unexpected text after ']'");
      port_str = after.substr(1);
      if (port_str.empty()) throw bad("empty port");
    }
  } else {
    const size_t colon = rest.find(':');
    out.host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      port_str = rest.substr(colon + 1);
      if (port_str.empty()) throw bad("empty port");
    }
  }
  if (out.host.empty()) throw bad("missing host");
  for (char c : out.host)
    if (std::isspace(static_cast<unsigned char>(c)) || c == '?' || c == '#') throw bad("invalid host");
  long long v = 0;
  if (!port_str.empty()) {
    if (!parse_int(port_str, 1, 65535, &v)) throw bad("port '" + printable(port_str, 40) + "' is not a number in 1..65535");
    out.port = static_cast<int>(v);
  }
  if (!path.empty()) {
    if (!parse_int(path, 0, 1 << 20, &v)) throw bad("database '" + printable(path, 40) + "' is not a non-negative integer");
    out.db = static_cast<int>(v);
  }
  return out;
}

}  // namespace fleet
