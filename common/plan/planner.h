#pragma once
// `fleet plan`: a contiguous split of a model's layers over workers of unequal memory.
//
// Each worker's usable memory is its memory minus the runtime's fixed overhead (process,
// Kafka and Redis clients, activation buffers) and the deployment's KV budget; the stages
// take the workers in the order given, stage k on worker k. The split minimises the largest
// load ratio weights_k / usable_k (with speeds given for every worker: weights_k / speed_k,
// still within usable memory), so unequal machines get unequal shares, proportional to their
// usable memory as far as whole layers allow. The embedding is counted on the first stage, the
// final norm and head on the last (model_shape.h). A model that does not fit throws PlanError
// naming the shortfall.
//
// Balance::Compute splits by compute instead: each stage's multiply-adds per token (its layers,
// plus the head on the last; the embedding is a lookup) over equal shares, or shares by speed
// when every worker gives one, still within usable memory. For serving speed this is the cut to
// run: in a pipeline the slowest stage sets the pace (SmolLM2: memory balance puts the 28M-entry
// embedding on stage 0, which costs no compute).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/model_shape.h"

namespace fleet {

class PlanError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PlanWorker {
  std::string name;
  uint64_t memory_bytes = 0;
  double speed = 0;  // optional measured speed (any unit, e.g. tokens/s); 0 = not given
};

enum class PlanBalance { Memory, Compute };

struct PlanOptions {
  uint64_t overhead_bytes = uint64_t{1} << 30;   // per worker: the runtime's fixed overhead
  uint64_t kv_budget_bytes = uint64_t{1} << 30;  // per worker: kv.budget_bytes of the deployment
  PlanBalance balance = PlanBalance::Memory;
};

struct PlannedStage {
  std::string worker;
  int first = 0, end = 0;       // layers [first, end)
  uint64_t memory_bytes = 0;    // the worker's memory
  uint64_t usable_bytes = 0;    // memory - overhead - KV budget
  uint64_t weight_bytes = 0;    // weights this stage holds (embedding / head included)
  uint64_t macs = 0;            // multiply-adds per token (layers, head on the last stage)
  double ideal_share = 0;       // usable_k / sum usable (or speed share; Compute without speeds: 1/K)
  double share = 0;             // weight_bytes (Compute: macs) / the model's
};

struct Plan {
  ModelShape model;
  PlanOptions options;
  std::vector<PlannedStage> stages;
  uint64_t total_usable_bytes = 0;
  bool by_speed = false;

  std::string split_by() const;    // what the shares follow, in words
  std::string table() const;       // the human report: assumptions stated, one row per stage
  nlohmann::json to_json() const;
};

// YAML: a list of {name, memory: "16GiB", speed: 1.5} (or {workers: [...]}). `source` names
// the file in errors. Throws PlanError.
std::vector<PlanWorker> parse_workers_yaml(const std::string& text, const std::string& source);

Plan plan_layers(const ModelShape& model, const std::vector<PlanWorker>& workers, const PlanOptions& options);

}  // namespace fleet
