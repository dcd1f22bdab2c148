#include "plan/fleet_view.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "hardware/hardware.h"
#include "state/keys.h"

namespace fleet {
namespace {

int64_t to_i64(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (const std::exception&) {
    return 0;
  }
}

std::string age_text(int64_t ms) {
  char buf[32];
  if (ms < 60000)
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000);
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60000),
                  static_cast<long long>(ms / 1000 % 60));
  return buf;
}

}  // namespace

FleetView read_fleet_view(RedisClient& redis, const std::string& model, size_t max_requests) {
  FleetView v;
  // The TTL only matters for writes; readers use the index scores.
  for (WorkerInfo& w : Membership(redis, std::chrono::milliseconds(1000)).live_workers())
    if (model.empty() || w.model == model) v.workers.push_back(std::move(w));
  v.now_ms = redis.server_time_ms();
  // The unfinished requests: fleet:progress indexes them (and ended ones until their terminal
  // event is delivered, which the status filter below leaves out).
  const std::vector<std::string> ids = redis.command({"ZRANGE", keys::progress(), "0", "-1"}).as_string_list();
  for (size_t at = 0; at < ids.size(); at += 256) {  // pipelined in slices
    std::vector<RedisArgs> cmds;
    const size_t end = std::min(ids.size(), at + 256);
    for (size_t i = at; i < end; ++i) {
      cmds.push_back({"HMGET", keys::request(ids[i]), "status", "model", "prompt_token_count", "created_ms"});
      cmds.push_back({"LLEN", keys::request_tokens(ids[i])});
    }
    std::vector<RedisReply> r = redis.pipeline(cmds);
    for (size_t i = at; i < end; ++i) {
      const RedisReply& h = r[2 * (i - at)];
      if (h.elements.size() != 4 || h.elements[0].is_nil()) continue;  // gone meanwhile
      InFlightRequest q;
      q.id = ids[i];
      q.status = h.elements[0].as_optional_string().value_or("");
      if (q.status != "queued" && q.status != "running") continue;
      q.model = h.elements[1].as_optional_string().value_or("");
      if (!model.empty() && q.model != model) continue;
      q.prompt_tokens = to_i64(h.elements[2].as_optional_string().value_or(""));
      const int64_t created = to_i64(h.elements[3].as_optional_string().value_or(""));
      q.age_ms = created ? std::max<int64_t>(0, v.now_ms - created) : 0;
      q.generated = r[2 * (i - at) + 1].as_integer();
      v.requests.push_back(std::move(q));
    }
  }
  std::sort(v.requests.begin(), v.requests.end(),
            [](const InFlightRequest& a, const InFlightRequest& b) { return a.age_ms > b.age_ms; });
  if (v.requests.size() > max_requests) {
    v.requests.resize(max_requests);
    v.requests_truncated = true;
  }
  return v;
}

std::string format_fleet_view(const FleetView& v) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%zu live worker(s)\n", v.workers.size());
  out += buf;
  if (!v.workers.empty()) {
    std::snprintf(buf, sizeof buf, "%-5s  %-7s  %-14s  %-16s  %-7s  %9s  %9s  %10s  %9s  %5s  %8s  %8s  %12s  %s\n",
                  "stage", "layers", "model", "host", "pid", "heartbeat", "rss", "kv", "mem", "reqs", "max_rows",
                  "rows/s", "recovered", "worker");
    out += buf;
    for (const WorkerInfo& w : v.workers) {
      const HardwareInfo hw = HardwareInfo::from_json(w.hardware);
      const std::string layers = format_layer_range(w.layer_begin, w.layer_end);
      const nlohmann::json& b = w.batch_stats;
      const long long reqs = b.is_object() ? b.value("requests", 0LL) : 0;
      const long long max_rows = b.is_object() ? b.value("max_rows", 0LL) : 0;
      // Replays that rebuilt a cache on this worker, and the longest (fault found -> cache whole).
      const long long recoveries = b.is_object() ? b.value("recoveries", 0LL) : 0;
      char recovered[32] = "-";
      if (recoveries > 0)
        std::snprintf(recovered, sizeof recovered, "%lld, <=%.1fs", recoveries, b.value("recovery_ms_max", 0.0) / 1e3);
      std::snprintf(buf, sizeof buf, "%-5d  %-7s  %-14s  %-16s  %-7lld  %9s  %9s  %10s  %9s  %5lld  %8lld  %8.1f  %12s  %s\n",
                    w.stage, layers.c_str(), w.model.c_str(), w.host.c_str(), static_cast<long long>(w.pid),
                    (age_text(std::max<int64_t>(0, v.now_ms - w.heartbeat_ms)) + " ago").c_str(),
                    format_bytes(static_cast<uint64_t>(w.rss_bytes)).c_str(),
                    format_bytes(static_cast<uint64_t>(w.kv_bytes)).c_str(),
                    hw.mem_total_bytes ? format_bytes(hw.mem_total_bytes).c_str() : "-", reqs, max_rows, w.rows_per_s,
                    recovered, w.worker_id.c_str());
      out += buf;
    }
  }
  std::snprintf(buf, sizeof buf, "%zu request(s) in flight%s\n", v.requests.size(),
                v.requests_truncated ? " (oldest shown; more exist)" : "");
  out += buf;
  if (!v.requests.empty()) {
    std::snprintf(buf, sizeof buf, "%-32s  %-8s  %-14s  %7s  %9s  %8s\n", "id", "status", "model", "prompt", "generated",
                  "age");
    out += buf;
    for (const InFlightRequest& q : v.requests) {
      std::snprintf(buf, sizeof buf, "%-32s  %-8s  %-14s  %7lld  %9lld  %8s\n", q.id.c_str(), q.status.c_str(),
                    q.model.c_str(), static_cast<long long>(q.prompt_tokens), static_cast<long long>(q.generated),
                    age_text(q.age_ms).c_str());
      out += buf;
    }
  }
  return out;
}

nlohmann::json fleet_view_json(const FleetView& v) {
  nlohmann::json workers = nlohmann::json::array(), requests = nlohmann::json::array();
  for (const WorkerInfo& w : v.workers) workers.push_back(worker_json(w, v.now_ms));
  for (const InFlightRequest& q : v.requests)
    requests.push_back({{"id", q.id},
                        {"status", q.status},
                        {"model", q.model},
                        {"prompt_tokens", q.prompt_tokens},
                        {"generated_tokens", q.generated},
                        {"age_ms", q.age_ms}});
  return {{"now_ms", v.now_ms}, {"workers", workers}, {"requests", requests}, {"requests_truncated", v.requests_truncated}};
}

std::vector<PlanWorker> plan_workers_from_fleet(const FleetView& v) {
  std::map<std::string, std::pair<int, uint64_t>> hosts;  // host -> (lowest stage, memory)
  for (const WorkerInfo& w : v.workers) {
    const HardwareInfo hw = HardwareInfo::from_json(w.hardware);
    if (!hw.mem_total_bytes)
      throw PlanError("worker " + w.worker_id + " on " + w.host +
                      " registered no hardware (an older fleet-stage?): restart it with this version, or plan from a "
                      "workers file");
    auto [it, fresh] = hosts.try_emplace(w.host, w.stage, hw.mem_total_bytes);
    if (!fresh) it->second.first = std::min(it->second.first, w.stage);
  }
  if (hosts.empty()) throw PlanError("no live workers in Redis to plan from");
  std::vector<std::pair<std::pair<int, std::string>, uint64_t>> order;
  for (const auto& [host, sm] : hosts) order.push_back({{sm.first, host}, sm.second});
  std::sort(order.begin(), order.end());
  std::vector<PlanWorker> out;
  for (const auto& [key, mem] : order) out.push_back({key.second, mem, 0});
  return out;
}

}  // namespace fleet
