#pragma once
// The weight manifest of a model in Redis: fleet:manifest:<model> (HASH), field
// "layer:<n>" = hash hex of that layer's tensors. The first worker to load a layer
// publishes its hash; every later worker must agree, or refuse to start.
#include <map>
#include <string>
#include <vector>

#include "state/redis_client.h"

namespace fleet {

struct LayerMismatch {
  int layer = 0;
  std::string ours;    // the caller's hash
  std::string stored;  // the manifest's hash (first writer wins)
};

class WeightManifest {
 public:
  explicit WeightManifest(RedisClient& redis) : redis_(redis) {}

  // Atomically (MULTI/EXEC): HSETNX each layer's hash, then reads them all back.
  // Returns the layers whose stored hash differs from ours, ascending; empty = agreed.
  std::vector<LayerMismatch> register_layer_hashes(const std::string& model, const std::map<int, std::string>& hashes);
  // layer -> hash, as stored.
  std::map<int, std::string> load(const std::string& model);
  void clear(const std::string& model);

  // "model M: layer 3 weights differ from the manifest (ours abc..., manifest def...)";
  // empty when there is no mismatch. For the worker's refusal to start.
  static std::string describe(const std::string& model, const std::vector<LayerMismatch>& mismatches);

 private:
  RedisClient& redis_;
};

}  // namespace fleet
