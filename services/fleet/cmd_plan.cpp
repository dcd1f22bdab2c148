// fleet plan --model PATH --workers FILE [--out CONFIG] [--base CONFIG] [--kv-budget SIZE]
//            [--overhead SIZE] [--weights DTYPE] [--json]
// fleet plan --from-fleet --config FILE [--model PATH] [--out CONFIG]
//   A contiguous layer split of the model over workers of unequal memory, from the model's
//   header alone (common/plan/planner.h): the table on stdout (or JSON), the deployment config
//   in --out (which `fleet-stage --check --config` accepts). Exit 1 with the shortfall named
//   when the model does not fit.
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "log/log.h"
#include "commands.h"
#include "config/deployment_config.h"
#include "plan/fleet_view.h"
#include "plan/plan_config.h"
#include "plan/planner.h"

namespace fleet::cmd {

namespace {

struct PlanOpts {
  std::string model, workers, out, base, config, kv_budget, overhead = "1GiB", weights, tokenizer, name;
  std::string balance = "memory";
  bool from_fleet = false, json = false;
};

uint64_t size_option(const std::string& name, const std::string& text) {
  auto v = parse_byte_size(text);
  if (!v) throw PlanError(name + " '" + text + "': not a size (e.g. 2GiB)");
  return *v;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw PlanError(path + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run_plan(PlanOpts o) {
  std::vector<PlanWorker> workers;
  std::optional<DeploymentConfig> base;
  if (o.from_fleet) {
    if (o.config.empty()) throw PlanError("--from-fleet needs --config (the deployment whose Redis lists the workers)");
    if (!o.workers.empty()) throw PlanError("--from-fleet and --workers exclude each other");
    if (o.base.empty()) o.base = o.config;
  } else if (o.workers.empty()) {
    throw PlanError("--workers FILE (a YAML list of {name, memory, speed}) or --from-fleet --config FILE is required");
  }
  if (!o.base.empty()) base = load_config(o.base);
  if (o.model.empty()) {
    if (!base) throw PlanError("--model PATH is required (or a --base / --config whose model.path is used)");
    o.model = base->model.path;
  }
  if (o.from_fleet) {
    RedisClient redis(base->redis.url);
    workers = plan_workers_from_fleet(read_fleet_view(redis, "", 0));
  } else {
    workers = parse_workers_yaml(read_text(o.workers), o.workers);
  }
  PlanOptions opts;
  opts.balance = o.balance == "compute" ? PlanBalance::Compute : PlanBalance::Memory;
  opts.overhead_bytes = size_option("--overhead", o.overhead);
  opts.kv_budget_bytes = !o.kv_budget.empty() ? size_option("--kv-budget", o.kv_budget)
                         : base                ? base->kv.budget_bytes
                                               : opts.kv_budget_bytes;
  const std::string weights = !o.weights.empty() ? o.weights : base ? base->model.weights : "auto";
  ModelShape shape = read_model_shape(o.model, weights);
  Plan plan = plan_layers(shape, workers, opts);
  if (o.json)
    std::printf("%s\n", plan.to_json().dump(2).c_str());
  else
    std::fputs(plan.table().c_str(), stdout);
  if (!o.out.empty()) {
    PlannedConfigOptions c;
    c.base_config = o.base;
    c.model_name = o.name;
    c.tokenizer = o.tokenizer;
    c.weights = weights;
    const std::string yaml = planned_config_yaml(plan, c);
    std::ofstream f(o.out);
    if (!f || !(f << yaml) || !f.flush()) throw PlanError(o.out + ": cannot write");
    log::logf(log::Level::Info, "fleet plan: wrote %s (check it with: fleet-stage --check --config %s)", o.out.c_str(),
                 o.out.c_str());
  }
  return 0;
}

}  // namespace

void add_plan(CLI::App& app) {
  auto o = std::make_shared<PlanOpts>();
  auto* sub = app.add_subcommand("plan", "split a model's layers over workers of unequal memory; write the config");
  sub->add_option("--model", o->model, "config.json, a model directory, a GGUF or llama2.c file (headers only)");
  sub->add_option("--workers", o->workers, "YAML list of {name, memory: 16GiB, speed: optional}, in stage order");
  sub->add_flag("--from-fleet", o->from_fleet, "plan over the live workers' hosts and registered memory (needs --config)");
  sub->add_option("--config", o->config, "with --from-fleet: the deployment (its Redis; also the base of --out)");
  sub->add_option("--base", o->base, "deployment YAML whose kafka/redis/batching/timeouts/kv the written config keeps");
  sub->add_option("--out", o->out, "write the deployment config here");
  sub->add_option("--kv-budget", o->kv_budget, "KV budget per worker (default: the base's kv.budget_bytes, else 1GiB)");
  sub->add_option("--overhead", o->overhead, "runtime overhead per worker (default 1GiB)");
  sub->add_option("--weights", o->weights, "in-memory weight dtype: auto, f32, bf16, q8_0 (default: the base's, else auto)");
  sub->add_option("--tokenizer", o->tokenizer, "model.tokenizer of the written config");
  sub->add_option("--name", o->name, "model.name of the written config");
  sub->add_option("--balance", o->balance, "memory (default: weights by usable memory) or compute (multiply-adds "
                  "per token, equal shares or by speed: the cut for serving speed)")
      ->check(CLI::IsMember({"memory", "compute"}));
  sub->add_flag("--json", o->json, "the plan as JSON");
  sub->callback([o] { run_plan(*o); });  // a PlanError reaches main: "fleet: error: ...", exit 1
}

}  // namespace fleet::cmd
