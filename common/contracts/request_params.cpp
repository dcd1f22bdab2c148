#include "contracts/request_params.h"

#include <stdexcept>

namespace fleet {

nlohmann::json RequestParams::to_json() const {
  nlohmann::json j = {{"max_tokens", max_tokens}, {"temperature", temperature}, {"top_p", top_p},
                      {"top_k", top_k},           {"stop", stop}};
  if (seed) j["seed"] = *seed;
  if (timeout_s) j["timeout_s"] = *timeout_s;
  if (frequency_penalty != 0) j["frequency_penalty"] = frequency_penalty;
  if (presence_penalty != 0) j["presence_penalty"] = presence_penalty;
  if (logprobs) {
    j["logprobs"] = true;
    j["top_logprobs"] = top_logprobs;
  }
  if (!response_format.is_null()) j["response_format"] = response_format;
  if (!logit_bias.empty()) {
    nlohmann::json bias = nlohmann::json::object();
    for (const auto& [t, b] : logit_bias) bias[std::to_string(t)] = b;
    j["logit_bias"] = bias;
  }
  if (!tools.is_null()) {
    j["tools"] = tools;
    j["tool_choice"] = tool_choice;
    j["parallel_tool_calls"] = parallel_tool_calls;
  }
  return j;
}

RequestParams RequestParams::from_json(const nlohmann::json& j) {
  RequestParams p;
  if (!j.is_object()) throw std::invalid_argument("request params: not a JSON object");
  auto read = [&](const char* name, auto& into) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return;
    try {
      it->get_to(into);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(std::string("request params: field ") + name + ": " + e.what());
    }
  };
  read("max_tokens", p.max_tokens);
  read("temperature", p.temperature);
  read("top_p", p.top_p);
  read("top_k", p.top_k);
  read("stop", p.stop);
  read("frequency_penalty", p.frequency_penalty);
  read("presence_penalty", p.presence_penalty);
  read("logprobs", p.logprobs);
  read("top_logprobs", p.top_logprobs);
  if (auto rf = j.find("response_format"); rf != j.end() && !rf->is_null()) {
    if (!rf->is_object()) throw std::invalid_argument("request params: field response_format: not an object");
    p.response_format = *rf;
  }
  if (auto lb = j.find("logit_bias"); lb != j.end() && !lb->is_null()) {
    if (!lb->is_object()) throw std::invalid_argument("request params: field logit_bias: not an object");
    for (const auto& [t, b] : lb->items()) {
      if (!b.is_number()) throw std::invalid_argument("request params: field logit_bias: " + t + " is not a number");
      p.logit_bias[static_cast<int32_t>(std::stol(t))] = b.get<double>();
    }
  }
  if (auto t = j.find("tools"); t != j.end() && !t->is_null()) {
    if (!t->is_array()) throw std::invalid_argument("request params: field tools: not an array");
    p.tools = *t;
  }
  if (auto c = j.find("tool_choice"); c != j.end()) p.tool_choice = *c;
  read("parallel_tool_calls", p.parallel_tool_calls);
  if (j.contains("seed") && !j["seed"].is_null()) {
    uint64_t s = 0;
    read("seed", s);
    p.seed = s;
  }
  if (j.contains("timeout_s") && !j["timeout_s"].is_null()) {
    double t = 0;
    read("timeout_s", t);
    p.timeout_s = t;
  }
  return p;
}

}  // namespace fleet
