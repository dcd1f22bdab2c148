#pragma once
// A request's generation parameters: parsed from the prompts topic (PromptRequest extends
// this), stored in Redis (fleet:req:<id> field "params"), read back by the last stage for
// every step it samples. One struct, one place for the defaults.
#include <cstdint>
#include <map>
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
  // OpenAI's penalties, applied at the last stage to the logits before sampling, over the
  // tokens this request generated so far (not the prompt): logit[t] -= frequency_penalty *
  // count(t) + presence_penalty * (count(t) > 0). Each in [-2, 2]; 0: off.
  double frequency_penalty = 0;
  double presence_penalty = 0;
  // Token events carry the sampled token's log-probability ("logprob", "token") and the
  // top_logprobs most likely alternatives (0 to 20), computed from the penalized logits at
  // temperature 1 (the model's distribution, before temperature / top-k / top-p).
  bool logprobs = false;
  int top_logprobs = 0;
  // OpenAI's response_format ({"type": "json_object"} or {"type": "json_schema", ...}; null:
  // none): the last stage masks the logits with its grammar (grammar/response_format.h).
  nlohmann::json response_format;
  // OpenAI's logit_bias: token id -> bias in [-100, 100], added to that token's logit before the
  // grammar mask and the draw (-100 bans a token, +100 all but forces it); at most 1024 entries.
  std::map<int32_t, double> logit_bias;
  // OpenAI's function calling (grammar/tool_call_grammar.h): tool definitions (null: none), the
  // choice ("none", "auto", "required", {"type": "function", "function": {"name"}}; null: "auto"
  // with tools) and whether one answer may hold several calls. Stage 0 renders the tools into the
  // prompt; the last stage forces a call with a grammar when the choice asks for one and reads the
  // calls back out of the text (done event "tool_calls").
  nlohmann::json tools;
  nlohmann::json tool_choice;
  bool parallel_tool_calls = true;
  // Whether calls are read out of the output: tools given and tool_choice not "none".
  bool tools_enabled() const { return tools.is_array() && !tools.empty() && tool_choice != "none"; }

  // {"max_tokens", "temperature", "top_p", "top_k", "stop"[, "seed"][, "timeout_s"]
  //  [, "frequency_penalty"][, "presence_penalty"][, "logprobs", "top_logprobs"]
  //  [, "response_format"][, "logit_bias"][, "tools", "tool_choice", "parallel_tool_calls"]} (the last
  // ones only when not at their defaults, so older readers see the same JSON as before)
  nlohmann::json to_json() const;
  // The inverse; absent fields take the defaults above. Throws std::invalid_argument naming
  // the field when one has the wrong type (Redis holds what to_json wrote, so only a hand
  // edit gets there).
  static RequestParams from_json(const nlohmann::json& j);
  bool operator==(const RequestParams&) const = default;
};

}  // namespace fleet
