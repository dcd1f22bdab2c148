#include "stage/stage_fingerprints.h"

#include <cstdio>

#include "model/fingerprint.h"
#include "state/weight_manifest.h"

namespace fleet {

std::string combined_fingerprint(const std::map<int, std::string>& fps) {
  std::string all;
  for (const auto& [layer, h] : fps) all += std::to_string(layer) + ":" + h + ";";
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_bytes(all.data(), all.size())));
  return buf;
}

std::string StageFingerprints::check(int stage, const std::string& fingerprint) {
  if (stage < 0 || stage >= config_.stage_count())
    return "it names stage " + std::to_string(stage) + ", and this deployment has " +
           std::to_string(config_.stage_count());
  auto it = expected_.find(stage);
  if (it == expected_.end()) {
    const std::map<int, std::string> manifest = WeightManifest(redis_).load(config_.model.name);
    const StageLayers& layers = config_.stage(stage);
    std::map<int, std::string> mine;
    auto take = [&](int layer) {
      auto m = manifest.find(layer);
      if (m != manifest.end()) mine[layer] = m->second;
      return m != manifest.end();
    };
    bool complete = true;
    for (int l = layers.first; l < layers.end; ++l) complete = take(l) && complete;
    if (stage == 0) complete = take(-1) && complete;
    if (stage == config_.stage_count() - 1) complete = take(n_layers_) && complete;
    if (!complete)
      return "the manifest of model " + config_.model.name + " does not yet hold every layer of stage " +
             std::to_string(stage) + " (no worker of that stage has started)";
    it = expected_.emplace(stage, combined_fingerprint(mine)).first;
  }
  if (fingerprint == it->second) return "";
  return "it carries the weight fingerprint '" + fingerprint + "' for stage " + std::to_string(stage) + ", but stage " +
         std::to_string(stage) + " of model " + config_.model.name + " (layers [" +
         std::to_string(config_.stage(stage).first) + ", " + std::to_string(config_.stage(stage).end) + ")) has '" +
         it->second + "': another model, or another cut, shares these topics";
}

}  // namespace fleet
