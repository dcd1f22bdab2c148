#pragma once
// The live fleet as the ingress sees it, from Redis membership (state/membership.h): which
// stages have a live worker (GET /health, and a 503 instead of a prompt nobody would serve) and
// the workers themselves (GET /v1/fleet). Thread-safe: HTTP handlers share one view; a snapshot
// is read from Redis at most every `max_age` (one Redis connection, behind a mutex).
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "state/membership.h"
#include "state/redis_client.h"

namespace fleet::ingress {

struct FleetSnapshot {
  std::vector<WorkerInfo> workers;  // this model's live workers, by (stage, id)
  std::vector<int> live_per_stage;  // index = stage
  std::string error;                // set when Redis could not be read (then nothing is live)
  int64_t now_ms = 0;               // the Redis server's clock when read
  bool ready() const;               // every stage has a live worker
  // "stage 1 has no live worker" / the Redis error; "" when ready.
  std::string why_not_ready() const;
  nlohmann::json to_json(const std::string& model) const;  // GET /v1/fleet
};

class FleetView {
 public:
  FleetView(std::string redis_url, std::string model, int stages, std::chrono::milliseconds ttl,
            std::chrono::milliseconds max_age = std::chrono::milliseconds(500));
  FleetSnapshot snapshot();

 private:
  std::string redis_url_, model_;
  int stages_;
  std::chrono::milliseconds ttl_, max_age_;
  std::mutex mu_;
  std::optional<RedisClient> redis_;
  std::optional<FleetSnapshot> cached_;
  std::chrono::steady_clock::time_point read_at_;
};

}  // namespace fleet::ingress
