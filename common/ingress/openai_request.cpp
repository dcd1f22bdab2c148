// OpenAI request bodies -> prompts-topic requests (see openai_request.h).
#include "ingress/openai_request.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "grammar/response_format.h"
#include "grammar/tool_call_grammar.h"

namespace fleet::ingress {

namespace {

using json = nlohmann::json;

// Thrown inside the translation only; turned into the outcome's error at the boundary.
struct Reject {
  ApiError error;
};

[[noreturn]] void fail(std::string message, const std::string& param) {
  throw Reject{bad_request(std::move(message), param, "invalid_value")};
}


[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& v) {
  throw Reject{bad_request("'" + param + "' must be " + expected + ", got " + json_type_name(v) + ".", param, "invalid_type")};
}

double number(const json& v, const std::string& param, double lo, double hi) {
  if (!v.is_number()) wrong_type(param, "a number", v);
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    fail("'" + param + "' must be in [" + json(lo).dump() + ", " + json(hi).dump() + "], got " + v.dump() + ".", param);
  return x;
}

int64_t integer(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
      std::fabs(v.get<double>()) < 0x1p62) {
    const auto x = static_cast<int64_t>(v.get<double>());
    if (x < lo || x > hi) fail("'" + param + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "].", param);
    return x;
  }
  if (!v.is_number_integer()) wrong_type(param, "an integer", v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail("'" + param + "' is too large.", param);
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) fail("'" + param + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "].", param);
  return x;
}

bool boolean(const json& v, const std::string& param) {
  if (!v.is_boolean()) wrong_type(param, "a boolean", v);
  return v.get<bool>();
}

// A message's content: a string, or an array of {"type": "text", "text"} parts (joined).
std::string message_content(const json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) wrong_type(where, "a string or an array of text parts", v);
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string p = where + "[" + std::to_string(i) + "]";
    const json& part = v[i];
    if (!part.is_object()) wrong_type(p, "an object {type, text}", part);
    if (!part.contains("type") || part["type"] != "text")
      throw Reject{unsupported_parameter(p + ".type", "only text content parts are supported")};
    for (const auto& item : part.items())
      if (item.key() != "type" && item.key() != "text")
        throw Reject{unsupported_parameter(p + "." + item.key(), "not supported in a text part")};
    if (!part.contains("text") || !part["text"].is_string()) wrong_type(p + ".text", "a string", part.value("text", json()));
    out += part["text"].get<std::string>();
  }
  return out;
}

json translate_messages(const json& v) {
  if (!v.is_array()) wrong_type("messages", "an array", v);
  if (v.empty()) fail("'messages' must not be empty.", "messages");
  json out = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& m = v[i];
    if (!m.is_object()) wrong_type(where, "an object {role, content}", m);
    for (const auto& item : m.items())
      if (item.key() != "role" && item.key() != "content" && item.key() != "tool_calls" &&
          item.key() != "tool_call_id" && item.key() != "name")
        throw Reject{unsupported_parameter(where + "." + item.key(), "only role, content, name, tool_calls and tool_call_id are supported")};
    if (!m.contains("role") || !m["role"].is_string()) wrong_type(where + ".role", "a string", m.value("role", json()));
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system message
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw Reject{unsupported_parameter(where + ".role", "role '" + role +
                                                              "' is not supported (system, developer, user, assistant, tool)")};
    const bool calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    json msg = {{"role", role}};
    if (m.contains("content") && !m["content"].is_null()) msg["content"] = message_content(m["content"], where + ".content");
    else if (calls) msg["content"] = nullptr;  // an assistant turn of calls only
    else fail("'" + where + ".content' is required.", where + ".content");
    for (const char* k : {"tool_calls", "tool_call_id", "name"})  // checked by the prompts contract
      if (m.contains(k) && !m[k].is_null()) msg[k] = m[k];
    out.push_back(std::move(msg));
  }
  return out;
}

// Fields that would change the output, each accepted only with its no-op value.
bool is_noop_value(const std::string& k, const json& v) {
  if (v.is_null()) return true;
  if (k == "best_of") return v.is_number() && v.get<double>() == 1;
  if (k == "echo") return v.is_boolean() && !v.get<bool>();
  if (k == "suffix") return v.is_string() && v.get<std::string>().empty();
  if (k == "functions") return v.is_array() && v.empty();
  if (k == "modalities") return v == json::array({"text"});
  return false;
}

const std::set<std::string>& output_changing_fields() {
  static const std::set<std::string> f = {"best_of",       "echo",  "suffix",
                                          "functions",     "function_call",
                                          "modalities", "audio", "prediction",
                                          "reasoning_effort", "web_search_options"};
  return f;
}

// Accepted, no effect on the output.
const std::set<std::string>& ignored_fields() {
  static const std::set<std::string> f = {"user", "metadata", "store", "service_tier"};
  return f;
}

ApiRequest translate(Endpoint endpoint, const json& body, const std::string& served_model, const PromptLimits& limits) {
  const bool chat = endpoint == Endpoint::ChatCompletions;
  ApiRequest r;
  r.endpoint = endpoint;
  if (!body.contains("model") || body["model"].is_null()) fail("'model' is required.", "model");
  if (!body["model"].is_string()) wrong_type("model", "a string", body["model"]);
  r.model = body["model"].get<std::string>();

  json rec = json::object();  // the prompts record being built
  std::optional<int64_t> max_tokens;
  bool logprobs = false;
  std::optional<int64_t> top_logprobs;
  for (const auto& item : body.items()) {
    const std::string& k = item.key();
    const json& v = item.value();
    if (k == "model") continue;
    if (ignored_fields().count(k)) continue;
    if (output_changing_fields().count(k)) {
      if (is_noop_value(k, v)) continue;
      throw Reject{unsupported_parameter(k, k == "best_of" ? "only 1 is supported"
                                                                       : "not supported by this server")};
    }
    if (v.is_null()) continue;  // null reads as absent
    if (!chat && k == "prompt") {
      if (v.is_string()) rec["prompt"] = v;
      else if (v.is_array() && v.size() == 1 && v[0].is_string()) rec["prompt"] = v[0];
      else if (v.is_array() && v.size() > 1) throw Reject{unsupported_parameter("prompt", "only one prompt per request")};
      else wrong_type("prompt", "a string", v);
    } else if (chat && k == "messages") {
      rec["messages"] = translate_messages(v);
    } else if (k == "max_tokens" || (chat && k == "max_completion_tokens")) {
      max_tokens = integer(v, k, 1, INT32_MAX);
    } else if (k == "temperature") {
      rec["temperature"] = number(v, k, 0, 2);
    } else if (k == "top_p") {
      rec["top_p"] = number(v, k, 0, 1);
      if (rec["top_p"].get<double>() == 0) fail("'top_p' must be greater than 0.", k);
    } else if (k == "frequency_penalty" || k == "presence_penalty") {
      rec[k] = number(v, k, -2, 2);
    } else if (k == "seed") {
      const int64_t s = integer(v, k, INT64_MIN, INT64_MAX);
      rec["seed"] = static_cast<uint64_t>(s);  // OpenAI's seeds are signed 64-bit; the bits are the seed
    } else if (k == "stop") {
      if (!v.is_string() && !v.is_array()) wrong_type(k, "a string or an array of strings", v);
      if (v.is_array())
        for (const json& s : v)
          if (!s.is_string()) wrong_type("stop", "a string or an array of strings", s);
      if (v.is_array() && v.size() > limits.max_stop_strings)
        fail("'stop' holds at most " + std::to_string(limits.max_stop_strings) + " strings.", k);
      rec["stop"] = v;
    } else if (k == "n") {
      r.n = static_cast<int>(integer(v, k, 1, kMaxChoices));
    } else if (k == "logit_bias") {
      if (!v.is_object()) wrong_type(k, "an object {\"token id\": bias}", v);
      for (const auto& [t, b] : v.items())
        if (!b.is_number() || !(b.get<double>() >= -100 && b.get<double>() <= 100))
          fail("'logit_bias' values must be numbers in [-100, 100]; \"" + t + "\" has " + b.dump() + ".", k);
      if (!v.empty()) rec["logit_bias"] = v;  // keys checked by the prompts contract below
    } else if (k == "response_format") {
      if (!v.is_object()) wrong_type(k, "an object", v);
      try {
        grammar_for_response_format(v);  // the prompts contract below compiles it again: cheap (< 1 ms)
      } catch (const std::invalid_argument& e) {
        fail(e.what(), k);
      }
      rec["response_format"] = v;
    } else if (k == "tools" || k == "tool_choice" || k == "parallel_tool_calls") {
      if (!chat) {  // function calling is for chat; the no-op values are accepted as before
        if ((k == "tools" && v.is_array() && v.empty()) || (k == "tool_choice" && v == "none") || k == "parallel_tool_calls")
          continue;
        throw Reject{unsupported_parameter(k, "tools are supported on /v1/chat/completions only")};
      }
      rec[k] = v;  // checked below and by the prompts contract
    } else if (k == "stream") {
      r.stream = boolean(v, k);
    } else if (k == "stream_options") {
      if (!v.is_object()) wrong_type(k, "an object", v);
      for (const auto& o : v.items()) {
        if (o.key() != "include_usage")
          throw Reject{unsupported_parameter("stream_options." + o.key(), "only include_usage is supported")};
        if (!o.value().is_null()) r.include_usage = boolean(o.value(), "stream_options.include_usage");
      }
    } else if (k == "logprobs") {
      if (chat) {
        logprobs = boolean(v, k);
      } else {  // completions: the number of alternatives, 0 to 5
        top_logprobs = integer(v, k, 0, 5);
        logprobs = true;
      }
    } else if (chat && k == "top_logprobs") {
      top_logprobs = integer(v, k, 0, kMaxTopLogprobs);
    } else {
      throw Reject{bad_request("Unrecognized request argument supplied: " + k, k, "unknown_parameter")};
    }
  }
  if (r.model != served_model) throw Reject{model_not_found(r.model)};
  if (chat && !rec.contains("messages")) fail("'messages' is required.", "messages");
  if (!chat && !rec.contains("prompt")) fail("'prompt' is required.", "prompt");
  if (rec.contains("tools") || rec.contains("tool_choice")) {
    try {
      check_tools(rec.value("tools", json()), rec.value("tool_choice", json()));
    } catch (const std::invalid_argument& e) {
      const std::string why = e.what();
      fail(why, why.rfind("tool_choice", 0) == 0 ? "tool_choice" : "tools");
    }
  }
  if (top_logprobs && *top_logprobs > 0 && !logprobs) fail("'top_logprobs' needs 'logprobs' set to true.", "top_logprobs");
  // Above the prompts topic's maximum the last stage would stop at the model's context anyway.
  const int64_t mt = max_tokens.value_or(chat ? limits.max_tokens : kCompletionsDefaultMaxTokens);
  rec["max_tokens"] = std::min<int64_t>(mt, limits.max_tokens);
  if (logprobs) {
    rec["logprobs"] = true;
    rec["top_logprobs"] = top_logprobs.value_or(0);
  }
  // The contract the stage workers apply (stop string lengths, prompt size, ...).
  PromptParseResult parsed = parse_prompt_record(rec.dump(-1, ' ', false, json::error_handler_t::replace),
                                                 std::string_view("x"), limits);
  if (!parsed.ok()) throw Reject{bad_request(parsed.error->message)};
  r.prompt = std::move(*parsed.request);
  r.prompt.id.clear();
  r.prompt.id_generated = false;
  return r;
}

}  // namespace

ApiParseOutcome parse_api_request(Endpoint endpoint, std::string_view body, const std::string& served_model,
                                  const PromptLimits& limits) {
  ApiParseOutcome out;
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    out.error = bad_request(std::string("The request body is not valid JSON: ") + e.what(), std::nullopt, "invalid_json");
    return out;
  }
  if (!j.is_object()) {
    out.error = bad_request("The request body must be a JSON object, got " + json_type_name(j) + ".", std::nullopt,
                            "invalid_type");
    return out;
  }
  if (json_deeper_than(j, kMaxJsonDepth)) {
    out.error = bad_request("The request body nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels.",
                            std::nullopt, "invalid_value");
    return out;
  }
  try {
    out.request = translate(endpoint, j, served_model, limits);
  } catch (const Reject& r) {
    out.error = r.error;
  } catch (const json::exception& e) {  // defensive: nothing from nlohmann escapes
    out.error = bad_request(e.what());
  }
  return out;
}

}  // namespace fleet::ingress
