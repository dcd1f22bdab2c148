#include "state/request_store.h"

#include <algorithm>

#include "state/keys.h"
#include "state/state_util.h"

namespace fleet {
namespace {

// KEYS: req, tokens, progress. ARGV: id, progress score ("" = finished: not indexed), field/value
// pairs. Creates the hash only if it is absent, dropping a stale token list left by an earlier
// request with the same id.
const char* kCreateScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
return 1
)lua";

// KEYS: req. ARGV: field/value pairs. HSET only if the hash exists.
const char* kUpdateScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
)lua";

// KEYS: req, tokens, progress. ARGV: index, now_ms, id, token... Idempotent append at a position;
// an unfinished request's progress score becomes now_ms.
// Returns {0, new_len} | {-1, len} gap | {-2, pos, stored} conflict | {-3} no request.
const char* kAppendScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return {-3} end
local n = redis.call('LLEN', KEYS[2])
local idx = tonumber(ARGV[1])
if idx > n then return {-1, n} end
for i = 4, #ARGV do
  local pos = idx + i - 4
  if pos < n then
    local cur = redis.call('LINDEX', KEYS[2], pos)
    if cur ~= ARGV[i] then return {-2, pos, cur} end
  else
    redis.call('RPUSH', KEYS[2], unpack(ARGV, i))
    break
  end
end
redis.call('HSET', KEYS[1], 'updated_ms', ARGV[2])
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'done' and status ~= 'error' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {0, redis.call('LLEN', KEYS[2])}
)lua";

// KEYS: req, tokens, kv, progress. ARGV: ttl_ms, id, now_ms, field/value pairs. Final fields,
// then expiry of every key of the request; it stays in the progress index, scored now_ms, until
// its terminal event is known delivered (forget_progress).
const char* kFinalizeScript = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[2])
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
return 1
)lua";

// KEYS: progress. ARGV: stalled_before_ms, now_ms, limit. Claims the requests whose progress
// score is older than stalled_before_ms (at most limit): their score becomes now_ms, so that
// whoever runs this next finds them only after another stall. Returns their ids.
const char* kClaimStalledScript = R"lua(
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
)lua";

std::vector<int32_t> parse_token_array(const std::string& id, const std::string& field, const std::string& text) {
  nlohmann::json j = state_detail::parse_json("request '" + id + "' field " + field, text);
  std::vector<int32_t> out;
  if (!j.is_array()) throw RedisError("request '" + id + "': field " + field + " is not a JSON array");
  for (const auto& v : j) {
    if (!v.is_number_integer()) throw RedisError("request '" + id + "': field " + field + " holds a non-integer");
    out.push_back(v.get<int32_t>());
  }
  return out;
}

}  // namespace

const char* to_string(RequestStatus s) {
  switch (s) {
    case RequestStatus::Queued: return "queued";
    case RequestStatus::Running: return "running";
    case RequestStatus::Done: return "done";
    case RequestStatus::Error: return "error";
  }
  return "?";
}

RequestStatus request_status_from_string(const std::string& s) {
  if (s == "queued") return RequestStatus::Queued;
  if (s == "running") return RequestStatus::Running;
  if (s == "done") return RequestStatus::Done;
  if (s == "error") return RequestStatus::Error;
  throw RedisError("unknown request status '" + s + "' (expected queued|running|done|error)");
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

RequestStore::RequestStore(RedisClient& redis, RequestStoreOptions options) : redis_(redis), options_(options) {
  if (options_.finished_ttl.count() <= 0) throw RedisError("RequestStore: finished_ttl must be positive");
}

bool RequestStore::create(const RequestRecord& r) {
  if (r.id.empty()) throw RedisError("RequestStore::create: empty request id");
  int64_t now = now_ms();
  nlohmann::json prompt_tokens(r.prompt_tokens);
  const bool finished = r.status == RequestStatus::Done || r.status == RequestStatus::Error;
  const int64_t progress_ms = r.updated_ms ? r.updated_ms : now;
  std::vector<std::string> args = {
      r.id, finished ? std::string() : std::to_string(progress_ms),
      "status", to_string(r.status),
      "model", r.model,
      "params", r.params.to_json().dump(),
      "source", r.source,
      "prompt_tokens", prompt_tokens.dump(),
      "prompt_token_count", std::to_string(r.prompt_tokens.size()),
      "created_ms", std::to_string(r.created_ms ? r.created_ms : now),
      "updated_ms", std::to_string(r.updated_ms ? r.updated_ms : now),
  };
  if (!r.messages.is_null()) {
    args.insert(args.end(), {"messages", r.messages.dump()});
  } else {
    args.insert(args.end(), {"prompt", r.prompt});
  }
  // A record being re-created as already finished keeps its final fields.
  if (r.finished_ms) args.insert(args.end(), {"finished_ms", std::to_string(r.finished_ms)});
  if (!r.finish_reason.empty()) args.insert(args.end(), {"finish_reason", r.finish_reason});
  if (!r.error.empty()) args.insert(args.end(), {"error", r.error});
  return redis_.eval(kCreateScript, {keys::request(r.id), keys::request_tokens(r.id), keys::progress()}, args)
             .as_integer() == 1;
}

void RequestStore::set_status(const std::string& id, RequestStatus status) {
  long long ok = redis_.eval(kUpdateScript, {keys::request(id)},
                             {"status", to_string(status), "updated_ms", std::to_string(now_ms())})
                     .as_integer();
  if (ok != 1) throw RedisError("RequestStore::set_status: no request '" + id + "' in Redis (" + keys::request(id) + ")");
}

void RequestStore::append_generated_token(const std::string& id, int64_t index, int32_t token) {
  append_generated_tokens(id, index, {token});
}

void RequestStore::append_generated_tokens(const std::string& id, int64_t index, const std::vector<int32_t>& tokens) {
  if (index < 0) throw RedisError("RequestStore::append_generated_tokens: negative index for request '" + id + "'");
  // Lua's unpack() is limited to a few thousand values: send long runs in chunks.
  constexpr size_t kChunk = 1024;
  for (size_t start = 0; start < tokens.size(); start += kChunk) {
    size_t end = std::min(tokens.size(), start + kChunk);
    append_chunk(id, index + static_cast<int64_t>(start),
                 std::vector<int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(start),
                                      tokens.begin() + static_cast<std::ptrdiff_t>(end)));
  }
}

namespace {
// What kAppendScript's reply says: "" when stored, else why not.
std::string append_problem(const RedisReply& r, const std::string& id, int64_t index) {
  if (r.type != RedisReply::Type::Array || r.elements.empty())
    return "RequestStore::append_generated_tokens: unexpected script reply for request '" + id + "'";
  const std::string where = "RequestStore::append_generated_tokens(request '" + id + "', index " + std::to_string(index) + "): ";
  switch (r.elements[0].as_integer()) {
    case 0: return "";
    case -1:
      return where + "only " + std::to_string(r.elements.at(1).as_integer()) +
             " tokens are stored; appending there would leave a gap";
    case -2:
      return where + "position " + std::to_string(r.elements.at(1).as_integer()) + " already holds token " +
             r.elements.at(2).as_string() + ", not ours";
    case -3: return where + "no request '" + id + "' in Redis (" + keys::request(id) + ")";
    default: return where + "unexpected script reply";
  }
}
}  // namespace

void RequestStore::append_chunk(const std::string& id, int64_t index, const std::vector<int32_t>& tokens) {
  std::vector<std::string> args = {std::to_string(index), std::to_string(now_ms()), id};
  for (int32_t t : tokens) args.push_back(std::to_string(t));
  RedisReply r = redis_.eval(kAppendScript, {keys::request(id), keys::request_tokens(id), keys::progress()}, args);
  if (std::string problem = append_problem(r, id, index); !problem.empty()) throw RedisError(problem);
}

std::vector<std::string> RequestStore::append_tokens_of_requests(const std::vector<TokenAppend>& appends) {
  std::vector<RedisClient::ScriptCall> calls;
  const std::string now = std::to_string(now_ms());
  for (const TokenAppend& a : appends)
    calls.push_back({{keys::request(a.id), keys::request_tokens(a.id), keys::progress()},
                     {std::to_string(a.index), now, a.id, std::to_string(a.token)}});
  std::vector<RedisReply> replies = redis_.eval_many(kAppendScript, calls);
  std::vector<std::string> problems;
  for (size_t i = 0; i < appends.size(); ++i) problems.push_back(append_problem(replies.at(i), appends[i].id, appends[i].index));
  return problems;
}

int64_t RequestStore::generated_count(const std::string& id) {
  return redis_.command({"LLEN", keys::request_tokens(id)}).as_integer();
}

std::optional<RequestRecord> RequestStore::load(const std::string& id) {
  std::vector<RedisReply> replies =
      redis_.transaction({{"HGETALL", keys::request(id)}, {"LRANGE", keys::request_tokens(id), "0", "-1"}});
  std::map<std::string, std::string> h = replies[0].as_map();
  if (h.empty()) return std::nullopt;
  RequestRecord r;
  r.id = id;
  auto field = [&](const char* name) -> std::string {
    auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
  };
  const std::string what = "request '" + id + "'";
  r.status = request_status_from_string(field("status"));
  r.model = field("model");
  if (h.count("params")) {
    try {
      r.params = RequestParams::from_json(state_detail::parse_json(what + " field params", h["params"]));
    } catch (const std::invalid_argument& e) {
      throw RedisError(what + " field params: " + e.what());
    }
  }
  r.source = field("source");
  r.cancel_requested_ms = state_detail::parse_i64(what + " field cancel_requested_ms", field("cancel_requested_ms"), 0);
  r.prompt = field("prompt");
  if (h.count("messages")) r.messages = state_detail::parse_json(what + " field messages", h["messages"]);
  if (h.count("prompt_tokens")) r.prompt_tokens = parse_token_array(id, "prompt_tokens", h["prompt_tokens"]);
  r.created_ms = state_detail::parse_i64(what + " field created_ms", field("created_ms"), 0);
  r.updated_ms = state_detail::parse_i64(what + " field updated_ms", field("updated_ms"), 0);
  r.finished_ms = state_detail::parse_i64(what + " field finished_ms", field("finished_ms"), 0);
  r.finish_reason = field("finish_reason");
  r.error = field("error");
  for (const std::string& t : replies[1].as_string_list()) {
    r.generated.push_back(static_cast<int32_t>(state_detail::parse_i64(what + " generated token", t, 0)));
  }
  return r;
}

void RequestStore::finalize(const std::string& id, RequestStatus status, const std::string& field,
                            const std::string& value) {
  std::string now = std::to_string(now_ms());
  long long ok = redis_
                     .eval(kFinalizeScript, {keys::request(id), keys::request_tokens(id), keys::kv(id), keys::progress()},
                           {std::to_string(options_.finished_ttl.count()), id, now, "status", to_string(status), field,
                            value, "finished_ms", now, "updated_ms", now})
                     .as_integer();
  if (ok != 1) {
    throw RedisError(std::string("RequestStore: cannot mark request '") + id + "' " + to_string(status) +
                     ": no such request in Redis (" + keys::request(id) + ")");
  }
}

std::vector<std::string> RequestStore::claim_stalled(int64_t now, std::chrono::milliseconds stall, size_t limit) {
  return redis_
      .eval(kClaimStalledScript, {keys::progress()},
            {std::to_string(now - stall.count()), std::to_string(now), std::to_string(limit)})
      .as_string_list();
}

void RequestStore::forget_progress(const std::vector<std::string>& ids) {
  if (ids.empty()) return;
  std::vector<std::string> cmd = {"ZREM", keys::progress()};
  cmd.insert(cmd.end(), ids.begin(), ids.end());
  redis_.command(cmd);
}

bool RequestStore::request_cancel(const std::string& id) {
  return redis_.eval(kUpdateScript, {keys::request(id)}, {"cancel_requested_ms", std::to_string(now_ms())}).as_integer() == 1;
}

void RequestStore::finish(const std::string& id, const std::string& finish_reason) {
  finalize(id, RequestStatus::Done, "finish_reason", finish_reason);
}

void RequestStore::set_error(const std::string& id, const std::string& message) {
  finalize(id, RequestStatus::Error, "error", message);
}

}  // namespace fleet
