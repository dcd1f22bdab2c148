#pragma once
// fleet-ingress's own settings: the `ingress:` section of the deployment YAML (the rest of the
// file is the deployment's, config/deployment_config.h).
//
//   ingress:
//     host: 0.0.0.0           # --host wins
//     port: 8000              # --port wins
//     max_in_flight: 256      # requests served at once; one more gets a 429
//     threads: 0              # HTTP worker threads; 0: max_in_flight + 16 (a stream holds one)
//     max_body_bytes: 4MiB    # larger request bodies get a 413
//     api_keys: [k1, k2]      # optional; with keys_env, every request needs Authorization: Bearer <key>
//     api_keys_env: FLEET_INGRESS_API_KEYS   # a variable holding comma-separated keys
//
// Unknown keys are errors, as everywhere in the deployment file.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/deployment_config.h"

namespace fleet::ingress {

struct IngressSettings {
  std::string host = "0.0.0.0";
  int port = 8000;
  int max_in_flight = 256;
  int threads = 0;
  uint64_t max_body_bytes = uint64_t{4} << 20;
  std::vector<std::string> api_keys;  // empty: no authentication
  int http_threads() const { return threads > 0 ? threads : max_in_flight + 16; }
};

// Reads the `ingress:` section of the YAML file (absent: the defaults) and the keys of
// api_keys_env. Throws ConfigError naming the key.
IngressSettings load_ingress_settings(const std::string& path, const EnvLookup& env = process_env);
IngressSettings parse_ingress_settings(const std::string& yaml_text, const std::string& source,
                                       const EnvLookup& env = process_env);

}  // namespace fleet::ingress
