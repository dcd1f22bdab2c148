// fleet status --config FILE [--model NAME] [--json]: the live workers of the deployment's Redis
// (stage, layers, model, host, heartbeat age, RSS, KV bytes, memory, requests cached, largest
// batch, rows/s) and the requests in flight (common/plan/fleet_view.h).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "config/deployment_config.h"
#include "plan/fleet_view.h"

namespace fleet::cmd {

void add_status(CLI::App& app) {
  struct Opts {
    std::string config, model;
    bool json = false;
    size_t max_requests = 50;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("status", "live workers and requests in flight, from Redis");
  sub->add_option("--config", o->config, "deployment YAML (its Redis)")->required();
  sub->add_option("--model", o->model, "only this model's workers and requests");
  sub->add_option("--max-requests", o->max_requests, "requests listed, oldest first (default 50)");
  sub->add_flag("--json", o->json, "one JSON object instead of the tables");
  sub->callback([o] {
    DeploymentConfig cfg = load_config(o->config);
    RedisClient redis(cfg.redis.url);
    FleetView v = read_fleet_view(redis, o->model, o->max_requests);
    if (o->json)
      std::printf("%s\n", fleet_view_json(v).dump(2).c_str());
    else
      std::fputs(format_fleet_view(v).c_str(), stdout);
  });
}

}  // namespace fleet::cmd
