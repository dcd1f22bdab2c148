#pragma once
// Worker membership in Redis: fleet:worker:<worker_id> (HASH whose TTL each heartbeat
// refreshes) and the index fleet:workers (ZSET, member = worker id, score = the time its
// entry expires, in ms of the Redis server's clock). A worker that stops heartbeating
// disappears after its TTL; readers prune the index. See docs/redis-schema.md.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "state/redis_client.h"

namespace fleet {

struct WorkerInfo {
  std::string worker_id;
  int stage = 0;
  // The layers this worker runs, [layer_begin, layer_end) like the engine; stored in
  // Redis as the inclusive range "first-last" (layers 0 and 1 -> "0-1").
  int layer_begin = 0;
  int layer_end = 0;
  std::string model;
  std::string fingerprint;  // weight fingerprint of the worker's layers
  // The compute kernels' variant (engine/matmul.h kernel_variant(): avx512, avx2, scalar) and
  // the numerics replicas of one stage must share, or a replay on one would not reproduce what
  // another computed: the activation mode (f32, q8) and the probe hash of a fixed forward pass
  // through the worker's kernels (engine/numerics_probe.h). Variants with equal probes mix.
  std::string kernel;
  std::string activations;
  std::string probe;
  std::string host;
  int64_t pid = 0;
  int64_t rss_bytes = 0;
  int64_t kv_bytes = 0;
  nlohmann::json batch_stats = nlohmann::json::object();
  // The machine (hardware/hardware.h HardwareInfo::to_json: cpu_model, cores, simd,
  // mem_total_bytes, mem_available_bytes, numa_nodes); {} when not reported.
  nlohmann::json hardware = nlohmann::json::object();
  double rows_per_s = 0;  // rows (tokens) this worker computed per second since its last heartbeat
  int metrics_port = 0;      // its Prometheus endpoint, http://<host>:<metrics_port>/metrics (0: none)
  int64_t started_ms = 0;    // now when 0 at registration
  int64_t heartbeat_ms = 0;  // written by Redis (its clock) on each heartbeat; read-only
};

class Membership {
 public:
  // ttl: how long an entry lives without a heartbeat (heartbeat every ttl/3 or so).
  Membership(RedisClient& redis, std::chrono::milliseconds ttl);

  // Writes the worker's entry from scratch (dropping stale fields), with its TTL.
  void register_worker(const WorkerInfo& info);
  // Rewrites every field, refreshes the TTL and the index. Returns false when the entry
  // had already expired (it is re-created; the caller may want to log the lapse).
  bool heartbeat(const WorkerInfo& info);
  void deregister(const std::string& worker_id);

  // Workers whose entry still exists, sorted by (stage, worker_id). Prunes the index of
  // expired and vanished entries as a side effect.
  std::vector<WorkerInfo> live_workers();
  std::optional<WorkerInfo> get(const std::string& worker_id);

  std::chrono::milliseconds ttl() const { return ttl_; }

 private:
  bool write(const WorkerInfo& info, bool reset);

  RedisClient& redis_;
  std::chrono::milliseconds ttl_;
};

// One worker as `fleet status --json` and the ingress's GET /v1/fleet show it; now_ms (the
// Redis server's clock) gives heartbeat_age_ms.
nlohmann::json worker_json(const WorkerInfo& w, int64_t now_ms);

// "first-last" (inclusive) <-> [begin, end); parse throws RedisError.
std::string format_layer_range(int layer_begin, int layer_end);
void parse_layer_range(const std::string& text, int* layer_begin, int* layer_end);

}  // namespace fleet
