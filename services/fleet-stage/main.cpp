// fleet-stage --config FILE --stage K: one stage worker of a deployment (see common/stage/).
// Start several with the same K for replicas; they share the stage's partitions.
#include <string>

#include <CLI/CLI.hpp>

#include "config/deployment_config.h"
#include "log/log.h"
#include "plan/plan_config.h"
#include "stage/stage_worker.h"
#include "stage/worker_identity.h"
#include "util/process_memory.h"
#include "util/shutdown_signals.h"

namespace {
std::atomic<bool> g_stop{false};

void log_error(const std::string& worker, const std::string& text) {
  fleet::log::write(fleet::log::Level::Error, worker, "", "fleet-stage: " + text);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fleet-stage: one pipeline stage of a fleet deployment"};
  std::string config_path, worker_id;
  int stage = 0, threads = 0;
  app.add_option("--config", config_path, "deployment YAML")->required();
  auto* stage_opt = app.add_option("--stage", stage, "stage index K (layers from the config's stages[K])");
  bool check = false;
  app.add_flag("--check", check,
               "validate the config and the model's header / layer ranges (all stages, or --stage K) without "
               "loading weights or connecting; exit 0 when valid, 1 otherwise");
  app.add_option("--worker-id", worker_id, "default: s<K>-<host>-<pid>-<random>");
  app.add_option("--threads", threads, "compute threads (0: all cores)");
  int metrics_port = -2;
  app.add_option("--metrics-port", metrics_port, "port of GET /metrics, over the config's metrics.port (0: a free one, "
                                                 "registered in the worker's membership entry; -1: none)")
      ->check(CLI::Range(-1, 65535));
  CLI11_PARSE(app, argc, argv);
  try {  // the environment's FLEET_LOG_LEVEL / FLEET_LOG_FORMAT until the config is read
    fleet::log::setup({}, "fleet-stage");
  } catch (const std::invalid_argument& e) {
    fleet::log::setup({}, "fleet-stage", fleet::log::Style::Service, nullptr, false);
    log_error("", e.what());
    return 1;
  }
  if (check) return fleet::run_config_check(config_path, stage_opt->count() ? stage : -1);
  if (!stage_opt->count()) {
    log_error("", "--stage is required (or --check)");
    return 1;
  }
  // Before any thread starts: SIGINT / SIGTERM stop the worker, within timeouts.shutdown_s.
  fleet::limit_allocator_arenas();
  fleet::ShutdownSignals signals([] { g_stop = true; },
                                 [](const std::string& line) { fleet::log::write(fleet::log::Level::Warn, "", "", line); });
  try {
    fleet::StageWorkerOptions o;
    o.config = fleet::load_config(config_path);
    if (metrics_port >= -1) o.config.metrics.port = metrics_port;
    signals.set_deadline(o.config.timeouts.shutdown_s);
    o.stage = stage;
    o.worker_id = worker_id.empty() ? fleet::make_worker_id(stage) : worker_id;
    fleet::log::setup({o.config.log.level, o.config.log.format}, o.worker_id);
    o.threads = threads;
    fleet::StageWorker worker(std::move(o));
    fleet::log::write(fleet::log::Level::Info, worker.worker_id(), "", "ready");
    worker.run(g_stop);
  } catch (const std::exception& e) {
    log_error("", std::string("error: ") + e.what());
    return 1;
  }
  return 0;
}
