#include "state/weight_manifest.h"

#include "state/keys.h"
#include "state/state_util.h"

namespace fleet {

std::vector<LayerMismatch> WeightManifest::register_layer_hashes(const std::string& model,
                                                                 const std::map<int, std::string>& hashes) {
  if (hashes.empty()) return {};
  const std::string key = keys::manifest(model);
  std::vector<RedisArgs> cmds;
  RedisArgs hmget{"HMGET", key};
  for (const auto& [layer, hash] : hashes) {
    if (hash.empty()) throw RedisError("WeightManifest: empty hash for layer " + std::to_string(layer) + " of " + model);
    cmds.push_back({"HSETNX", key, keys::manifest_field(layer), hash});
    hmget.push_back(keys::manifest_field(layer));
  }
  cmds.push_back(hmget);
  std::vector<RedisReply> replies = redis_.transaction(cmds);
  std::vector<std::string> stored = replies.back().as_string_list();
  std::vector<LayerMismatch> out;
  size_t i = 0;
  for (const auto& [layer, hash] : hashes) {
    if (stored.at(i) != hash) out.push_back({layer, hash, stored[i]});
    ++i;
  }
  return out;
}

std::map<int, std::string> WeightManifest::load(const std::string& model) {
  std::map<int, std::string> out;
  for (const auto& [field, hash] : redis_.hgetall(keys::manifest(model))) {
    if (field.rfind("layer:", 0) != 0) continue;
    out[static_cast<int>(state_detail::parse_i64("manifest field " + field, field.substr(6), -1))] = hash;
  }
  return out;
}

void WeightManifest::clear(const std::string& model) { redis_.del({keys::manifest(model)}); }

std::string WeightManifest::describe(const std::string& model, const std::vector<LayerMismatch>& mismatches) {
  std::string out;
  for (const auto& m : mismatches) {
    if (!out.empty()) out += "; ";
    out += "layer " + std::to_string(m.layer) + " weights differ from the manifest of model '" + model +
           "' (ours " + m.ours + ", manifest " + m.stored + ")";
  }
  return out;
}

}  // namespace fleet
