#pragma once
// A small synchronous Redis client over hiredis.
//
// Thread-compatible, not thread-safe: one RedisClient per thread (a worker's batching
// thread and its heartbeat thread each open their own). The stores in this directory
// hold a reference to a client and inherit that rule.
//
// The URL (config/redis_url.h, the parser the deployment config uses too): redis://host:port/db
// or unix:///path/to/socket?db=N, with [user]:password@ for AUTH (user: Redis 6+ ACL).
// Messages name the URL with the password as ***; rediss:// is refused (no TLS in hiredis 0.14).
//
// Every command is sent with binary-safe arguments (redisCommandArgv). When the
// connection turns out to be dropped (EOF / I/O error), the client reconnects (AUTH and
// SELECT again) and retries the command, or the whole pipeline, exactly once; a second
// failure throws. A retried write may therefore run twice if the connection died after
// the server executed it: the stores make their writes idempotent for that reason.
// Errors are thrown as RedisError and name the command and its key. SIGPIPE is blocked
// in the calling thread during I/O (a write to a closed connection becomes an error and
// a reconnect, never a killed process); the process's signal handlers are not touched.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/redis_url.h"

struct redisContext;

namespace fleet {

class RedisError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The server cannot be reached (connect refused, connection lost and not re-established) or
// cannot answer yet (LOADING its data after a restart, BUSY, TRYAGAIN): the command may succeed
// later. Workers wait and retry instead of failing requests.
class RedisUnavailable : public RedisError {
 public:
  using RedisError::RedisError;
};

// One reply, copied out of hiredis.
struct RedisReply {
  enum class Type { Nil, String, Status, Integer, Array, Error };
  Type type = Type::Nil;
  std::string str;  // String, Status, Error
  long long integer = 0;
  std::vector<RedisReply> elements;  // Array

  bool is_nil() const { return type == Type::Nil; }
  bool is_error() const { return type == Type::Error; }
  // Typed accessors; they throw RedisError when the type does not match.
  long long as_integer() const;
  const std::string& as_string() const;  // String or Status
  std::optional<std::string> as_optional_string() const;  // Nil -> nullopt
  std::vector<std::string> as_string_list() const;  // Array of String (Nil -> "")
  std::map<std::string, std::string> as_map() const;  // HGETALL-style flat pairs
};

struct RedisOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{5000};
};

using RedisArgs = std::vector<std::string>;

class RedisClient {
 public:
  // Connects immediately; throws RedisError naming the URL (password masked) on a bad URL
  // ("bad Redis URL ..."), a refused connection, a failed AUTH (e.g. WRONGPASS) or SELECT.
  explicit RedisClient(const std::string& url, RedisOptions options = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  const RedisUrl& url() const { return url_; }

  // Runs one command. An error reply throws RedisError naming the command.
  RedisReply command(const RedisArgs& args);
  // Sends all commands, then reads all replies (one round trip). Throws on the first
  // error reply, after every reply has been read, so the connection stays usable.
  std::vector<RedisReply> pipeline(const std::vector<RedisArgs>& commands);
  // MULTI, the commands, EXEC, pipelined: the replies of the commands, run atomically.
  std::vector<RedisReply> transaction(const std::vector<RedisArgs>& commands);
  // EVALSHA with a fallback to EVAL (scripts are cached by the server after the first).
  RedisReply eval(const std::string& script, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args);

  // EVALs of one script, pipelined (one round trip; the script text travels with each call):
  // the replies in order. An error reply throws as pipeline() does.
  struct ScriptCall {
    std::vector<std::string> keys, args;
  };
  std::vector<RedisReply> eval_many(const std::string& script, const std::vector<ScriptCall>& calls);

  // Typed helpers.
  void ping();
  void set(const std::string& key, const std::string& value);
  std::optional<std::string> get(const std::string& key);
  long long del(const std::vector<std::string>& keys);
  bool exists(const std::string& key);
  bool pexpire(const std::string& key, std::chrono::milliseconds ttl);
  long long pttl(const std::string& key);  // -2: no key, -1: no TTL
  void hset(const std::string& key, const std::map<std::string, std::string>& fields);
  bool hsetnx(const std::string& key, const std::string& field, const std::string& value);
  std::optional<std::string> hget(const std::string& key, const std::string& field);
  std::map<std::string, std::string> hgetall(const std::string& key);
  long long hdel(const std::string& key, const std::vector<std::string>& fields);
  long long rpush(const std::string& key, const std::vector<std::string>& values);
  std::vector<std::string> lrange(const std::string& key, long long start, long long stop);
  int64_t server_time_ms();  // TIME, so that every host agrees on "now"

  // For tests: the server's id of this connection (CLIENT ID).
  long long client_id();

 private:
  void connect();
  void throw_if_error(const RedisReply& reply, const RedisArgs& args) const;
  std::string describe(const RedisArgs& args) const;

  RedisUrl url_;
  RedisOptions options_;
  redisContext* ctx_ = nullptr;
  std::map<std::string, std::string> script_sha_;  // script text -> SHA1
};

}  // namespace fleet
