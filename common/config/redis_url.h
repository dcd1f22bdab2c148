#pragma once
// The one Redis URL parser, used by the deployment config (validation, redis.password) and by
// RedisClient (connecting):
//
//   redis://[[user]:password@]host[:port][/db]      port 6379, db 0 by default; [::1] for IPv6
//   unix://[[user]:password@]/path/to/socket[?db=N]  a local socket (redis-server --unixsocket)
//
// User and password are percent-decoded (write '@' as %40, ':' as %3A, '/' as %2F, '%' as %25).
// "redis://pw@host" means password pw (as redis-cli -u reads it); with a user and no password,
// "redis://alice:@host", the password comes from elsewhere (redis.password). AUTH is sent when
// there is a password: "AUTH user password" (Redis 6+ ACL) when a user is named, else
// "AUTH password". rediss:// (TLS) is refused: Debian 12's hiredis (0.14) has no TLS support.
#include <stdexcept>
#include <string>

namespace fleet {

// A malformed or unsupported URL. The message never contains the password.
class RedisUrlError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct RedisUrl {
  bool unix_socket = false;
  std::string host;         // TCP
  int port = 6379;          // TCP
  std::string socket_path;  // unix://: absolute path of the socket
  int db = 0;
  std::string user;      // empty: AUTH with the password only
  std::string password;  // empty: no AUTH

  // The URL with the password shown as ***: for logs and error messages.
  std::string str() const;
  // The URL with the password (percent-encoded): parse_redis_url(u.secret_url()) == u. Only
  // for handing the URL on (RedisClient, a config's effective redis.url), never for printing.
  std::string secret_url() const;
  bool operator==(const RedisUrl&) const = default;
};

// Throws RedisUrlError ("bad Redis URL '<url, password masked>': why (expected ...)").
RedisUrl parse_redis_url(const std::string& url);

// url with the password of its user-info masked, whether or not it parses.
std::string redact_redis_url(const std::string& url);

}  // namespace fleet
