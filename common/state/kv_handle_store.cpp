#include "state/kv_handle_store.h"

#include <nlohmann/json.hpp>

#include "state/keys.h"
#include "state/state_util.h"

namespace fleet {
namespace {

// KEYS: kv, req. ARGV: field, value, orphan_ttl_ms. The KV hash lives as long as the
// request: same TTL, none while in flight, orphan_ttl_ms when the request is absent.
const char* kSetScript = R"lua(
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl)
elseif ttl == -1 then redis.call('PERSIST', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
)lua";

KvHandle parse_handle(const std::string& id, const std::string& field, const std::string& text) {
  const std::string what = "KV handle of request '" + id + "' stage " + field;
  nlohmann::json j = state_detail::parse_json(what, text);
  try {
    KvHandle h;
    h.worker = j.at("worker").get<std::string>();
    h.epoch = j.at("epoch").get<int64_t>();
    h.cached_len = j.at("cached_len").get<int64_t>();
    return h;
  } catch (const nlohmann::json::exception& e) {
    throw RedisError(what + " lacks worker/epoch/cached_len: " + e.what());
  }
}

}  // namespace

RedisClient::ScriptCall KvHandleStore::set_call(const std::string& request_id, int stage, const KvHandle& h) const {
  nlohmann::json j = {{"worker", h.worker}, {"epoch", h.epoch}, {"cached_len", h.cached_len}};
  return {{keys::kv(request_id), keys::request(request_id)},
          {std::to_string(stage), j.dump(), std::to_string(orphan_ttl_.count())}};
}

void KvHandleStore::set(const std::string& request_id, int stage, const KvHandle& handle) {
  const RedisClient::ScriptCall call = set_call(request_id, stage, handle);
  redis_.eval(kSetScript, call.keys, call.args);
}

void KvHandleStore::set_many(int stage, const std::vector<std::pair<std::string, KvHandle>>& handles) {
  std::vector<RedisClient::ScriptCall> calls;
  for (const auto& [id, h] : handles) calls.push_back(set_call(id, stage, h));
  redis_.eval_many(kSetScript, calls);
}

std::optional<KvHandle> KvHandleStore::get(const std::string& request_id, int stage) {
  std::string field = std::to_string(stage);
  std::optional<std::string> v = redis_.hget(keys::kv(request_id), field);
  if (!v) return std::nullopt;
  return parse_handle(request_id, field, *v);
}

std::map<int, KvHandle> KvHandleStore::get_all(const std::string& request_id) {
  std::map<int, KvHandle> out;
  for (const auto& [field, value] : redis_.hgetall(keys::kv(request_id))) {
    int stage = static_cast<int>(state_detail::parse_i64("KV handle stage of request '" + request_id + "'", field, -1));
    out[stage] = parse_handle(request_id, field, value);
  }
  return out;
}

bool KvHandleStore::remove(const std::string& request_id, int stage) {
  return redis_.hdel(keys::kv(request_id), {std::to_string(stage)}) > 0;
}

void KvHandleStore::remove_all(const std::string& request_id) { redis_.del({keys::kv(request_id)}); }

}  // namespace fleet
