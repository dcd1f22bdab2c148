#pragma once
// Which weights each stage of a deployment runs, as a fingerprint: a hash over the layer
// hashes of the stage's layers in the model's manifest (fleet:manifest:<model>; layer -1 is
// the embedding, layer n_layers the final norm and head). Every activation message carries
// its sender's fingerprint; a receiver accepts only what a stage of this very model and cut
// sent, so two deployments sharing a topic prefix, or a stray producer, cannot feed a
// request's KV cache (mismatches go to the dead-letter topic).
#include <map>
#include <string>

#include "config/deployment_config.h"
#include "state/redis_client.h"

namespace fleet {

// The fingerprint of a set of layer hashes (layer -> hash hex).
std::string combined_fingerprint(const std::map<int, std::string>& layer_hashes);

class StageFingerprints {
 public:
  StageFingerprints(const DeploymentConfig& config, int n_layers, RedisClient& redis)
      : config_(config), n_layers_(n_layers), redis_(redis) {}
  // "" when `fingerprint` is what stage `stage` runs, else why not. Reads the manifest when it
  // has not yet seen every layer of that stage.
  std::string check(int stage, const std::string& fingerprint);

 private:
  const DeploymentConfig& config_;
  int n_layers_;
  RedisClient& redis_;
  std::map<int, std::string> expected_;  // stage -> fingerprint, once the manifest had all its layers
};

}  // namespace fleet
