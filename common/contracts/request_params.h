#pragma once
// A request's generation parameters: parsed from the prompts topic (PromptRequest extends
// this), stored in Redis (fleet:req:<id> field "params"), read back by the last stage for
// every step it samples. One struct, one place for the defaults.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fleet {

struct RequestParams {
  int max_tokens = 256;
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  int top_k = 0;                 // 0: no limit
  std::optional<uint64_t> seed;  // absent on the prompts topic: the service picks one and records it
  std::vector<std::string> stop;
  // The request fails with a timeout error once it has run this long (from its creation);
  // absent on the prompts topic: timeouts.request_s, set at intake.
  std::optional<double> timeout_s;

  // {"max_tokens", "temperature", "top_p", "top_k", "stop"[, "seed"][, "timeout_s"]}
  nlohmann::json to_json() const;
  // The inverse; absent fields take the defaults above. Throws std::invalid_argument naming
  // the field when one has the wrong type (Redis holds what to_json wrote, so only a hand
  // edit gets there).
  static RequestParams from_json(const nlohmann::json& j);
  bool operator==(const RequestParams&) const = default;
};

}  // namespace fleet
