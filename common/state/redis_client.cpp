#include "state/redis_client.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>

#include <cctype>

namespace fleet {
namespace {

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::String;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::Status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::Error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::Integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::Array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::Nil;
  }
  return out;
}

struct ReplyFree {
  void operator()(void* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<void, ReplyFree>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Printable, bounded rendering of a command argument for error messages.
std::string printable(const std::string& s, size_t max_len = 80) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += std::isprint(c) ? static_cast<char>(c) : '?';
  }
  if (s.size() > max_len) out += "...";
  return out;
}

const char* type_name(RedisReply::Type t) {
  switch (t) {
    case RedisReply::Type::Nil: return "nil";
    case RedisReply::Type::String: return "string";
    case RedisReply::Type::Status: return "status";
    case RedisReply::Type::Integer: return "integer";
    case RedisReply::Type::Array: return "array";
    case RedisReply::Type::Error: return "error";
  }
  return "?";
}

[[noreturn]] void type_mismatch(const RedisReply& r, const char* wanted) {
  std::string msg = std::string("redis: expected a ") + wanted + " reply, got " + type_name(r.type);
  if (r.type == RedisReply::Type::Error) msg += ": " + r.str;
  throw RedisError(msg);
}

// hiredis write()s to the socket: on a connection the server has closed, that raises
// SIGPIPE, whose default action kills the process. While a guard lives, SIGPIPE is
// blocked in this thread (the write then fails with EPIPE and we reconnect), and a
// SIGPIPE it caused is consumed, so the process's signal settings stay untouched.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace

// -------------------------------------------------------------------------- Reply

long long RedisReply::as_integer() const {
  if (type != Type::Integer) type_mismatch(*this, "integer");
  return integer;
}

const std::string& RedisReply::as_string() const {
  if (type != Type::String && type != Type::Status) type_mismatch(*this, "string");
  return str;
}

std::optional<std::string> RedisReply::as_optional_string() const {
  if (type == Type::Nil) return std::nullopt;
  return as_string();
}

std::vector<std::string> RedisReply::as_string_list() const {
  if (type != Type::Array) type_mismatch(*this, "array");
  std::vector<std::string> out;
  out.reserve(elements.size());
  for (const auto& e : elements) out.push_back(e.is_nil() ? std::string() : e.as_string());
  return out;
}

std::map<std::string, std::string> RedisReply::as_map() const {
  if (type != Type::Array) type_mismatch(*this, "array");
  if (elements.size() % 2 != 0) throw RedisError("redis: expected field/value pairs, got an odd-sized array");
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < elements.size(); i += 2) out[elements[i].as_string()] = elements[i + 1].as_string();
  return out;
}

// ------------------------------------------------------------------------- Client

namespace {
RedisUrl parse_for_client(const std::string& url) {
  RedisUrl u;
  try {
    u = parse_redis_url(url);
  } catch (const RedisUrlError& e) {
    throw RedisError(e.what());
  }
  if (!u.user.empty() && u.password.empty())
    throw RedisError("bad Redis URL '" + u.str() + "': user '" + u.user + "' without a password");
  return u;
}
}  // namespace

RedisClient::RedisClient(const std::string& url, RedisOptions options) : url_(parse_for_client(url)), options_(options) {
  connect();
}

RedisClient::~RedisClient() {
  if (ctx_) redisFree(ctx_);
}

void RedisClient::connect() {
  SigpipeGuard no_sigpipe;
  if (ctx_) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  const timeval connect_timeout = to_timeval(options_.connect_timeout);
  redisContext* c = url_.unix_socket ? redisConnectUnixWithTimeout(url_.socket_path.c_str(), connect_timeout)
                                     : redisConnectWithTimeout(url_.host.c_str(), url_.port, connect_timeout);
  if (c == nullptr) throw RedisError("redis: cannot connect to " + url_.str() + ": out of memory");
  if (c->err) {
    std::string err = c->errstr;
    redisFree(c);
    throw RedisError("redis: cannot connect to " + url_.str() + ": " + err);
  }
  if (redisSetTimeout(c, to_timeval(options_.command_timeout)) != REDIS_OK) {
    redisFree(c);
    throw RedisError("redis: cannot set the command timeout on " + url_.str());
  }
  ctx_ = c;
  auto handshake = [&](const RedisArgs& args, const std::string& what) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    ReplyPtr r(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    std::string err;
    if (!r) {
      err = ctx_->errstr;
    } else {
      RedisReply reply = convert(static_cast<redisReply*>(r.get()));
      if (reply.is_error()) err = reply.str;
    }
    if (!err.empty()) {
      redisFree(ctx_);
      ctx_ = nullptr;
      throw RedisError("redis: " + what + " failed on " + url_.str() + ": " + err);
    }
  };
  if (!url_.password.empty()) {
    if (url_.user.empty()) handshake({"AUTH", url_.password}, "AUTH");
    else handshake({"AUTH", url_.user, url_.password}, "AUTH");
  }
  if (url_.db != 0) handshake({"SELECT", std::to_string(url_.db)}, "SELECT " + std::to_string(url_.db));
}

std::string RedisClient::describe(const RedisArgs& args) const {
  if (args.empty()) return "(empty command)";
  // Never an argument of a command that carries a password.
  const std::string name = printable(args[0], 32);
  if (strcasecmp(name.c_str(), "AUTH") == 0 || strcasecmp(name.c_str(), "HELLO") == 0) return name;
  // For a script, the first key says more than the SHA1.
  if (args[0] == "EVALSHA" && args.size() > 3 && args[2] != "0") return "EVALSHA (script on) " + printable(args[3]);
  std::string s = printable(args[0], 32);
  if (args.size() > 1) s += " " + printable(args[1]);
  return s;
}

void RedisClient::throw_if_error(const RedisReply& reply, const RedisArgs& args) const {
  if (!reply.is_error()) return;
  const std::string what = "redis " + describe(args) + " on " + url_.str() + ": " + reply.str;
  // A server that is up but cannot answer yet: loading its append-only file after a restart
  // (a chaos run failed 12 requests on it), or busy with a long script. It will answer later.
  for (const char* transient : {"LOADING ", "BUSY ", "TRYAGAIN "})
    if (reply.str.rfind(transient, 0) == 0) throw RedisUnavailable(what);
  throw RedisError(what);
}

std::vector<RedisReply> RedisClient::pipeline(const std::vector<RedisArgs>& commands) {
  if (commands.empty()) return {};
  for (const auto& args : commands) {
    if (args.empty()) throw RedisError("redis: empty command in a pipeline");
  }
  SigpipeGuard no_sigpipe;
  std::string last_error;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (ctx_ == nullptr) {  // a previous failure left no connection
      try {
        connect();
      } catch (const RedisError& e) {
        throw RedisUnavailable("redis " + describe(commands[0]) + ": " + e.what());
      }
    }
    bool io_failed = false;
    for (const auto& args : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      argv.reserve(args.size());
      lens.reserve(args.size());
      for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
        io_failed = true;
        break;
      }
    }
    std::vector<RedisReply> replies;
    replies.reserve(commands.size());
    for (size_t i = 0; !io_failed && i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        io_failed = true;
        break;
      }
      ReplyPtr r(raw);
      replies.push_back(convert(static_cast<redisReply*>(raw)));
    }
    if (!io_failed) {
      for (size_t i = 0; i < replies.size(); ++i) throw_if_error(replies[i], commands[i]);
      return replies;
    }
    last_error = ctx_->errstr[0] ? ctx_->errstr : "connection lost";
    redisFree(ctx_);  // the context is unusable after an I/O error
    ctx_ = nullptr;
    if (attempt == 0) {
      try {
        connect();
      } catch (const RedisError& e) {
        throw RedisUnavailable("redis " + describe(commands[0]) + " on " + url_.str() + ": " + last_error +
                               "; reconnecting failed: " + e.what());
      }
    }
  }
  throw RedisUnavailable("redis " + describe(commands[0]) + " on " + url_.str() + ": " + last_error +
                         " (after one reconnect)");
}

RedisReply RedisClient::command(const RedisArgs& args) { return pipeline({args}).front(); }

std::vector<RedisReply> RedisClient::transaction(const std::vector<RedisArgs>& commands) {
  std::vector<RedisArgs> all;
  all.reserve(commands.size() + 2);
  all.push_back({"MULTI"});
  all.insert(all.end(), commands.begin(), commands.end());
  all.push_back({"EXEC"});
  std::vector<RedisReply> replies = pipeline(all);
  RedisReply& exec = replies.back();
  if (exec.type != RedisReply::Type::Array || exec.elements.size() != commands.size()) {
    throw RedisError("redis MULTI/EXEC starting with " + describe(commands.empty() ? RedisArgs{} : commands[0]) +
                     " on " + url_.str() + ": the transaction was aborted");
  }
  for (size_t i = 0; i < commands.size(); ++i) throw_if_error(exec.elements[i], commands[i]);
  return std::move(exec.elements);
}

RedisReply RedisClient::eval(const std::string& script, const std::vector<std::string>& keys,
                             const std::vector<std::string>& args) {
  auto evalsha = [&](const std::string& sha) {
    RedisArgs cmd{"EVALSHA", sha, std::to_string(keys.size())};
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    return cmd;
  };
  auto it = script_sha_.find(script);
  if (it == script_sha_.end()) {
    it = script_sha_.emplace(script, command({"SCRIPT", "LOAD", script}).as_string()).first;
  }
  try {
    return command(evalsha(it->second));
  } catch (const RedisError& e) {
    // The server lost its script cache (restart, SCRIPT FLUSH): load it again, once.
    if (std::string(e.what()).find("NOSCRIPT") == std::string::npos) throw;
  }
  it->second = command({"SCRIPT", "LOAD", script}).as_string();
  return command(evalsha(it->second));
}

std::vector<RedisReply> RedisClient::eval_many(const std::string& script, const std::vector<ScriptCall>& calls) {
  std::vector<RedisArgs> cmds;
  for (const ScriptCall& c : calls) {
    RedisArgs cmd{"EVAL", script, std::to_string(c.keys.size())};
    cmd.insert(cmd.end(), c.keys.begin(), c.keys.end());
    cmd.insert(cmd.end(), c.args.begin(), c.args.end());
    cmds.push_back(std::move(cmd));
  }
  return cmds.empty() ? std::vector<RedisReply>{} : pipeline(cmds);
}

void RedisClient::ping() {
  RedisReply r = command({"PING"});
  if (r.as_string() != "PONG") throw RedisError("redis PING on " + url_.str() + ": unexpected reply '" + r.str + "'");
}

void RedisClient::set(const std::string& key, const std::string& value) { command({"SET", key, value}); }

std::optional<std::string> RedisClient::get(const std::string& key) {
  return command({"GET", key}).as_optional_string();
}

long long RedisClient::del(const std::vector<std::string>& keys) {
  if (keys.empty()) return 0;
  RedisArgs args{"DEL"};
  args.insert(args.end(), keys.begin(), keys.end());
  return command(args).as_integer();
}

bool RedisClient::exists(const std::string& key) { return command({"EXISTS", key}).as_integer() > 0; }

bool RedisClient::pexpire(const std::string& key, std::chrono::milliseconds ttl) {
  return command({"PEXPIRE", key, std::to_string(ttl.count())}).as_integer() == 1;
}

long long RedisClient::pttl(const std::string& key) { return command({"PTTL", key}).as_integer(); }

void RedisClient::hset(const std::string& key, const std::map<std::string, std::string>& fields) {
  if (fields.empty()) return;
  RedisArgs args{"HSET", key};
  for (const auto& [f, v] : fields) {
    args.push_back(f);
    args.push_back(v);
  }
  command(args);
}

bool RedisClient::hsetnx(const std::string& key, const std::string& field, const std::string& value) {
  return command({"HSETNX", key, field, value}).as_integer() == 1;
}

std::optional<std::string> RedisClient::hget(const std::string& key, const std::string& field) {
  return command({"HGET", key, field}).as_optional_string();
}

std::map<std::string, std::string> RedisClient::hgetall(const std::string& key) {
  return command({"HGETALL", key}).as_map();
}

long long RedisClient::hdel(const std::string& key, const std::vector<std::string>& fields) {
  if (fields.empty()) return 0;
  RedisArgs args{"HDEL", key};
  args.insert(args.end(), fields.begin(), fields.end());
  return command(args).as_integer();
}

long long RedisClient::rpush(const std::string& key, const std::vector<std::string>& values) {
  if (values.empty()) return command({"LLEN", key}).as_integer();
  RedisArgs args{"RPUSH", key};
  args.insert(args.end(), values.begin(), values.end());
  return command(args).as_integer();
}

std::vector<std::string> RedisClient::lrange(const std::string& key, long long start, long long stop) {
  return command({"LRANGE", key, std::to_string(start), std::to_string(stop)}).as_string_list();
}

int64_t RedisClient::server_time_ms() {
  std::vector<std::string> t = command({"TIME"}).as_string_list();
  if (t.size() != 2) throw RedisError("redis TIME on " + url_.str() + ": unexpected reply");
  return std::stoll(t[0]) * 1000 + std::stoll(t[1]) / 1000;
}

long long RedisClient::client_id() { return command({"CLIENT", "ID"}).as_integer(); }

}  // namespace fleet
