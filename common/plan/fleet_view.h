#pragma once
// The live fleet as Redis holds it, for `fleet status` and `fleet plan --from-fleet`: the
// workers of fleet:workers (state/membership.h, with their hardware) and the requests still
// queued or running (fleet:req:<id>, found through the fleet:progress index).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/planner.h"
#include "state/membership.h"
#include "state/redis_client.h"

namespace fleet {

struct InFlightRequest {
  std::string id, status, model;
  int64_t prompt_tokens = 0;
  int64_t generated = 0;  // tokens so far (LLEN of fleet:req:<id>:tokens)
  int64_t age_ms = 0;     // since created_ms (Redis clock)
};

struct FleetView {
  int64_t now_ms = 0;  // the Redis server's clock
  std::vector<WorkerInfo> workers;
  std::vector<InFlightRequest> requests;  // oldest first
  bool requests_truncated = false;        // more than max_requests in flight
};

// Reads the view; `model` ("" = all) filters workers and requests.
FleetView read_fleet_view(RedisClient& redis, const std::string& model = "", size_t max_requests = 1000);

std::string format_fleet_view(const FleetView& v);  // the tables of `fleet status`
nlohmann::json fleet_view_json(const FleetView& v);

// One plan worker per host of the live workers (replicas on one host share its memory), named
// by the host, memory = the registered hardware's mem_total_bytes, in the order of the lowest
// stage each host runs. Throws PlanError when a worker registered no hardware.
std::vector<PlanWorker> plan_workers_from_fleet(const FleetView& v);

}  // namespace fleet
