#include "state/membership.h"

#include <algorithm>
#include <cstdlib>

#include "state/keys.h"
#include "state/request_store.h"
#include "state/state_util.h"

namespace fleet {
namespace {

// KEYS: worker hash, index. ARGV: worker id, ttl_ms, reset ('1'/'0'), field/value...
// The clock is the Redis server's, so that hosts with skewed clocks agree.
const char* kHeartbeatScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local existed = redis.call('EXISTS', KEYS[1])
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'heartbeat_ms', string.format('%d', now), unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
return existed
)lua";

// KEYS: index, worker hashes. ARGV: the matching worker ids. Removes an id from the
// index only if its hash is still absent (it may have re-registered meanwhile).
const char* kPruneScript = R"lua(
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('ZREM', KEYS[1], ARGV[i - 1]) end
end
return 1
)lua";

WorkerInfo parse_worker(const std::string& id, const std::map<std::string, std::string>& h) {
  const std::string what = "worker '" + id + "'";
  auto field = [&](const char* name) -> std::string {
    auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
  };
  auto num = [&](const char* name) { return state_detail::parse_i64(what + " field " + name, field(name), 0); };
  WorkerInfo w;
  w.worker_id = id;
  w.stage = static_cast<int>(num("stage"));
  if (!field("layers").empty()) parse_layer_range(field("layers"), &w.layer_begin, &w.layer_end);
  w.model = field("model");
  w.fingerprint = field("fingerprint");
  w.kernel = field("kernel");
  w.activations = field("activations");
  w.probe = field("probe");
  w.host = field("host");
  w.pid = num("pid");
  w.rss_bytes = num("rss_bytes");
  w.kv_bytes = num("kv_bytes");
  if (!field("batch_stats").empty()) w.batch_stats = state_detail::parse_json(what + " field batch_stats", field("batch_stats"));
  if (!field("hardware").empty()) w.hardware = state_detail::parse_json(what + " field hardware", field("hardware"));
  if (!field("rows_per_s").empty()) w.rows_per_s = std::strtod(field("rows_per_s").c_str(), nullptr);
  w.metrics_port = static_cast<int>(num("metrics_port"));
  w.started_ms = num("started_ms");
  w.heartbeat_ms = num("heartbeat_ms");
  return w;
}

}  // namespace

std::string format_layer_range(int layer_begin, int layer_end) {
  return std::to_string(layer_begin) + "-" + std::to_string(layer_end - 1);
}

void parse_layer_range(const std::string& text, int* layer_begin, int* layer_end) {
  size_t dash = text.find('-');
  if (dash == std::string::npos || dash == 0) throw RedisError("bad layer range '" + text + "' (expected first-last)");
  int64_t first = state_detail::parse_i64("layer range '" + text + "'", text.substr(0, dash), -1);
  int64_t last = state_detail::parse_i64("layer range '" + text + "'", text.substr(dash + 1), -1);
  if (first < 0 || last < first - 1) throw RedisError("bad layer range '" + text + "' (expected first-last)");
  *layer_begin = static_cast<int>(first);
  *layer_end = static_cast<int>(last + 1);
}

Membership::Membership(RedisClient& redis, std::chrono::milliseconds ttl) : redis_(redis), ttl_(ttl) {
  if (ttl_.count() <= 0) throw RedisError("Membership: the heartbeat TTL must be positive");
}

bool Membership::write(const WorkerInfo& w, bool reset) {
  if (w.worker_id.empty()) throw RedisError("Membership: empty worker id");
  std::vector<std::string> args = {
      w.worker_id, std::to_string(ttl_.count()), reset ? "1" : "0",
      "stage", std::to_string(w.stage),
      "layers", format_layer_range(w.layer_begin, w.layer_end),
      "model", w.model,
      "fingerprint", w.fingerprint,
      "kernel", w.kernel,
      "activations", w.activations,
      "probe", w.probe,
      "host", w.host,
      "pid", std::to_string(w.pid),
      "rss_bytes", std::to_string(w.rss_bytes),
      "kv_bytes", std::to_string(w.kv_bytes),
      "batch_stats", w.batch_stats.dump(),
      "hardware", w.hardware.dump(),
      "rows_per_s", std::to_string(w.rows_per_s),
      "metrics_port", std::to_string(w.metrics_port),
      "started_ms", std::to_string(w.started_ms ? w.started_ms : now_ms()),
  };
  return redis_.eval(kHeartbeatScript, {keys::worker(w.worker_id), keys::workers_index()}, args).as_integer() == 1;
}

void Membership::register_worker(const WorkerInfo& info) { write(info, true); }

bool Membership::heartbeat(const WorkerInfo& info) { return write(info, false); }

void Membership::deregister(const std::string& worker_id) {
  redis_.transaction({{"DEL", keys::worker(worker_id)}, {"ZREM", keys::workers_index(), worker_id}});
}

std::optional<WorkerInfo> Membership::get(const std::string& worker_id) {
  std::map<std::string, std::string> h = redis_.hgetall(keys::worker(worker_id));
  if (h.empty()) return std::nullopt;
  return parse_worker(worker_id, h);
}

std::vector<WorkerInfo> Membership::live_workers() {
  const std::string index = keys::workers_index();
  const std::string now = std::to_string(redis_.server_time_ms());
  std::vector<RedisReply> r =
      redis_.pipeline({{"ZREMRANGEBYSCORE", index, "-inf", now}, {"ZRANGE", index, "0", "-1"}});
  std::vector<std::string> ids = r[1].as_string_list();
  std::vector<WorkerInfo> out;
  if (ids.empty()) return out;
  std::vector<RedisArgs> gets;
  for (const auto& id : ids) gets.push_back({"HGETALL", keys::worker(id)});
  std::vector<RedisReply> hashes = redis_.pipeline(gets);
  std::vector<std::string> prune_keys{index}, prune_ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::map<std::string, std::string> h = hashes[i].as_map();
    if (h.empty()) {  // expired or deleted without deregistering
      prune_keys.push_back(keys::worker(ids[i]));
      prune_ids.push_back(ids[i]);
    } else {
      out.push_back(parse_worker(ids[i], h));
    }
  }
  if (!prune_ids.empty()) redis_.eval(kPruneScript, prune_keys, prune_ids);
  std::sort(out.begin(), out.end(), [](const WorkerInfo& a, const WorkerInfo& b) {
    return a.stage != b.stage ? a.stage < b.stage : a.worker_id < b.worker_id;
  });
  return out;
}

nlohmann::json worker_json(const WorkerInfo& w, int64_t now_ms) {
  return {{"worker_id", w.worker_id},
          {"stage", w.stage},
          {"layers", {w.layer_begin, w.layer_end}},
          {"model", w.model},
          {"host", w.host},
          {"pid", w.pid},
          {"kernel", w.kernel},
          {"activations", w.activations},
          {"probe", w.probe},
          {"metrics_port", w.metrics_port},
          {"heartbeat_ms", w.heartbeat_ms},
          {"heartbeat_age_ms", std::max<int64_t>(0, now_ms - w.heartbeat_ms)},
          {"rss_bytes", w.rss_bytes},
          {"kv_bytes", w.kv_bytes},
          {"rows_per_s", w.rows_per_s},
          {"batch_stats", w.batch_stats},
          {"hardware", w.hardware},
          {"started_ms", w.started_ms}};
}

}  // namespace fleet
