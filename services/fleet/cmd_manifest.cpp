// fleet manifest show|clear MODEL --config FILE [--json]: the weight manifest of a model in Redis
// (fleet:manifest:<model>, common/state/weight_manifest.h). The first workers to load a model
// fix its per-layer hashes; `clear` lets an operator roll out new weights under the same name
// (stop the old workers first: a worker still running the old weights keeps its own check).
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "log/log.h"
#include "commands.h"
#include "config/deployment_config.h"
#include "state/membership.h"
#include "state/redis_client.h"
#include "state/weight_manifest.h"

namespace fleet::cmd {

namespace {
struct ManifestOpts {
  std::string action, model, config;
  bool json = false;
};

void run_manifest(const ManifestOpts& o) {
  DeploymentConfig cfg = load_config(o.config);
  RedisClient redis(cfg.redis.url);
  WeightManifest manifest(redis);
  const std::map<int, std::string> layers = manifest.load(o.model);
  if (o.action == "show") {
    if (o.json) {
      nlohmann::json j = {{"model", o.model}, {"layers", nlohmann::json::object()}};
      for (const auto& [l, h] : layers) j["layers"][std::to_string(l)] = h;
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    if (layers.empty()) {
      std::printf("model %s: no manifest (the next worker to load it registers its layers' hashes)\n", o.model.c_str());
      return;
    }
    // Layer -1 is the embedding, the last entry (n_layers) the final norm and head.
    std::printf("model %s: %zu hash(es)\n", o.model.c_str(), layers.size());
    const int last = layers.rbegin()->first;
    for (const auto& [l, h] : layers) {
      std::string what = "layer " + std::to_string(l);
      if (l == -1) what = "embedding";
      if (l == last && l > 0 && layers.size() > 1 && layers.count(-1)) what = "head (" + std::to_string(l) + ")";
      std::printf("  %-12s %s\n", what.c_str(), h.c_str());
    }
    return;
  }
  // clear: say which live workers still run this model (their weights stay as they are).
  int live = 0;
  for (const WorkerInfo& w : Membership(redis, std::chrono::milliseconds(1000)).live_workers())
    if (w.model == o.model) ++live;
  manifest.clear(o.model);
  std::printf("model %s: manifest cleared (%zu hash(es) removed)%s\n", o.model.c_str(), layers.size(),
              live ? "; live workers of this model keep running their weights: restart them all with the new ones"
                   : "");
  if (live) log::logf(log::Level::Warn, "fleet manifest: %d live worker(s) still serve %s", live, o.model.c_str());
}
}  // namespace

void add_manifest(CLI::App& app) {
  auto o = std::make_shared<ManifestOpts>();
  auto* sub = app.add_subcommand("manifest", "show or clear a model's weight manifest in Redis (to roll out new weights)");
  sub->add_option("action", o->action, "show | clear")->required()->check(CLI::IsMember({"show", "clear"}));
  sub->add_option("model", o->model, "model name (model.name of the deployment)")->required();
  sub->add_option("--config", o->config, "deployment YAML (its Redis)")->required();
  sub->add_flag("--json", o->json, "show: one JSON object");
  sub->callback([o] { run_manifest(*o); });
}

}  // namespace fleet::cmd
