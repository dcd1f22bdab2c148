// fleet-stage --config FILE --stage K: one stage worker of a deployment (see common/stage/).
// Start several with the same K for replicas; they share the stage's partitions.
#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "config/deployment_config.h"
#include "stage/stage_worker.h"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fleet-stage: one pipeline stage of a fleet deployment"};
  std::string config_path, worker_id;
  int stage = 0, threads = 0;
  app.add_option("--config", config_path, "deployment YAML")->required();
  app.add_option("--stage", stage, "stage index K (layers from the config's stages[K])")->required();
  app.add_option("--worker-id", worker_id, "default: s<K>-<host>-<pid>-<random>");
  app.add_option("--threads", threads, "compute threads (0: all cores)");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    fleet::StageWorkerOptions o;
    o.config = fleet::load_config(config_path);
    o.stage = stage;
    o.worker_id = worker_id;
    o.threads = threads;
    fleet::StageWorker worker(std::move(o));
    std::fprintf(stderr, "[%s] ready\n", worker.worker_id().c_str());
    worker.run(g_stop);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet-stage: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
