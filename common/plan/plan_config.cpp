#include "log/log.h"
#include "plan/plan_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "hardware/hardware.h"

namespace fs = std::filesystem;

namespace fleet {
namespace {

YAML::Node default_config() {
  YAML::Node n;
  n["kafka"]["brokers"] = "127.0.0.1:9092";
  n["kafka"]["topic_prefix"] = "fleet";
  n["kafka"]["max_message_bytes"] = 1000000;
  n["kafka"]["partitions"] = 8;
  n["redis"]["url"] = "redis://127.0.0.1:6379/0";
  n["batching"]["max_batch_tokens"] = 512;
  n["batching"]["window_ms"] = 0;
  n["batching"]["prefill_chunk"] = 256;
  n["timeouts"]["request_s"] = 600;
  n["timeouts"]["heartbeat_ttl_s"] = 10;
  n["timeouts"]["finished_request_ttl_s"] = 3600;
  return n;
}

}  // namespace

std::string planned_config_yaml(const Plan& plan, const PlannedConfigOptions& o) {
  YAML::Node root = default_config();
  std::string tokenizer = o.tokenizer, name = o.model_name, weights = o.weights;
  if (!o.base_config.empty()) {
    try {
      root = YAML::LoadFile(o.base_config);
    } catch (const YAML::Exception& e) {
      throw ConfigError(o.base_config + ": " + e.what());
    }
    // Resolved paths and defaults, the way the workers will read them.
    DeploymentConfig base = load_config(o.base_config);
    if (tokenizer.empty()) tokenizer = base.model.tokenizer;
    if (name.empty() && root["model"] && root["model"]["name"]) name = base.model.name;
    if (weights.empty()) weights = base.model.weights;
  }
  if (name.empty()) name = plan.model.name;
  if (weights.empty()) weights = "auto";
  YAML::Node model;
  model["name"] = name;
  model["path"] = fs::absolute(plan.model.path).lexically_normal().string();
  if (!tokenizer.empty()) model["tokenizer"] = fs::absolute(tokenizer).lexically_normal().string();
  model["weights"] = weights;
  root["model"] = model;
  YAML::Node stages(YAML::NodeType::Sequence);
  for (const PlannedStage& s : plan.stages) {
    YAML::Node st, layers(YAML::NodeType::Sequence);
    layers.push_back(s.first);
    layers.push_back(s.end);
    layers.SetStyle(YAML::EmitterStyle::Flow);
    st["layers"] = layers;
    stages.push_back(st);
  }
  root["stages"] = stages;
  root["kv"]["budget_bytes"] = plan.options.kv_budget_bytes;
  YAML::Emitter out;
  out << root;
  std::string header = "# Written by `fleet plan`: start stage k on the worker named for it.\n";
  std::istringstream table(plan.table());
  for (std::string line; std::getline(table, line);) header += "#   " + line + "\n";
  return header + out.c_str() + "\n";
}

CheckReport check_deployment(const DeploymentConfig& cfg, int stage) {
  CheckReport r;
  auto fail = [&](const std::string& why) {
    r.ok = false;
    r.lines.push_back("FAIL: " + why);
    return r;
  };
  r.lines.push_back("config " + (cfg.source.empty() ? std::string("(text)") : cfg.source) + ": parsed; " +
                    std::to_string(cfg.stage_count()) + " stage(s), topics " + cfg.kafka.topic_prefix + ".*, " +
                    cfg.endpoints_text());
  ModelShape shape;
  try {
    shape = read_model_shape(cfg.model.path, cfg.model.weights);
  } catch (const std::exception& e) {
    return fail(std::string("model: ") + e.what());
  }
  r.lines.push_back("model " + cfg.model.name + ": " + cfg.model.path + " (" + shape.source + " header), " +
                    std::to_string(shape.n_layers()) + " layers, " + format_bytes(shape.total_bytes()) + " of " +
                    shape.dtype + " weights");
  if (!shape.weights_present)
    r.warnings.push_back("no weight files beside " + cfg.model.path +
                         ": only the header was checked (the workers need the weights)");
  try {
    cfg.validate(shape.n_layers());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  if (stage >= cfg.stage_count())
    return fail("--stage " + std::to_string(stage) + ": the config has stages 0.." + std::to_string(cfg.stage_count() - 1));
  if (!cfg.model.tokenizer.empty() && !fs::is_regular_file(cfg.model.tokenizer))
    return fail("model.tokenizer " + cfg.model.tokenizer + ": no such file");
  HardwareInfo here;
  detect_memory(&here);
  for (int k = 0; k < cfg.stage_count(); ++k) {
    if (stage >= 0 && k != stage) continue;
    const StageLayers& s = cfg.stage(k);
    const uint64_t w = shape.stage_bytes(s.first, s.end);
    std::string line = "stage " + std::to_string(k) + ": layers [" + std::to_string(s.first) + ", " +
                       std::to_string(s.end) + ")" + (s.first == 0 ? " + embedding" : "") +
                       (s.end == shape.n_layers() ? " + head" : "") + ", weights " + format_bytes(w) +
                       " + KV budget " + format_bytes(cfg.kv.budget_bytes);
    r.lines.push_back(line);
    if (here.mem_total_bytes && w + cfg.kv.budget_bytes > here.mem_total_bytes)
      r.warnings.push_back("stage " + std::to_string(k) + " needs " + format_bytes(w + cfg.kv.budget_bytes) +
                           " but this machine has " + format_bytes(here.mem_total_bytes) +
                           " (fine if it runs elsewhere)");
  }
  r.lines.push_back("OK: weights not loaded, nothing connected");
  return r;
}

int run_config_check(const std::string& config_path, int stage) {
  CheckReport r;
  try {
    r = check_deployment(load_config(config_path), stage);
  } catch (const std::exception& e) {  // ConfigError: names the file and the key
    log::logf(log::Level::Error, "fleet-stage --check: FAIL: %s", e.what());
    return 1;
  }
  for (const std::string& line : r.lines) std::fprintf(r.ok || line.rfind("FAIL", 0) ? stdout : stderr, "%s\n", line.c_str());
  for (const std::string& w : r.warnings) log::logf(log::Level::Warn, "%s", w.c_str());
  return r.ok ? 0 : 1;
}

}  // namespace fleet
