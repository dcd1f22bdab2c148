#pragma once
// The deployment config a plan turns into (config/deployment_config.h format), and the check
// `fleet-stage --check` runs on a config without loading weights or connecting to anything.
#include <string>
#include <vector>

#include "config/deployment_config.h"
#include "plan/planner.h"

namespace fleet {

struct PlannedConfigOptions {
  // An existing deployment config whose kafka / redis / batching / timeouts (and model name,
  // tokenizer, weights unless given below) are kept; "" = defaults (127.0.0.1:9092, Redis
  // 127.0.0.1:6379/0).
  std::string base_config;
  std::string model_name;  // "" = the base's, else the model's default name
  std::string tokenizer;   // "" = the base's (absolute), else beside the model
  std::string weights;     // "" = the base's, else "auto"
};

// YAML text: a comment block with the plan's table (which worker runs which stage), then the
// config with model.path absolute, stages from the plan and kv.budget_bytes = the plan's KV
// budget. Throws ConfigError for an unreadable base.
std::string planned_config_yaml(const Plan& plan, const PlannedConfigOptions& options);

struct CheckReport {
  bool ok = true;
  std::vector<std::string> lines;     // what was checked, one finding per line
  std::vector<std::string> warnings;  // not fatal (no weight files beside a config.json, ...)
};

// Validates a loaded config against its model's header: the model opens (headers only), the
// stages cover [0, n_layers) contiguously, the tokenizer file exists when named, the weight
// dtype is one the workers take; per stage the weights and KV budget are stated, with a warning
// when this machine's memory is smaller. stage >= 0 limits the per-stage lines to that stage
// (and checks it exists). Never throws for a bad config: ok = false with the reason in lines.
CheckReport check_deployment(const DeploymentConfig& config, int stage = -1);

// `fleet-stage --check --config PATH [--stage K]`: loads the config (FLEET_* overrides applied),
// runs check_deployment, prints the findings on stdout and warnings on stderr; returns the exit
// status (0 valid, 1 not, with the reason on stderr).
int run_config_check(const std::string& config_path, int stage = -1);

}  // namespace fleet
