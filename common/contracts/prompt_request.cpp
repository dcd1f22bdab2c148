// Parsing and validation of prompts records.
#include "contracts/prompt_request.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <random>

#include "grammar/response_format.h"
#include "grammar/tool_call_grammar.h"

namespace fleet {

std::string json_type_name(const nlohmann::json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

namespace {

using json = nlohmann::json;

constexpr std::array<const char*, 19> kPromptFields = {
    "id",   "prompt",    "messages",          "max_tokens",       "temperature", "top_p",        "top_k",
    "seed", "stop",      "timeout_s",         "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs",
    "response_format", "logit_bias", "tools", "tool_choice", "parallel_tool_calls"};

// Thrown inside the parser only; turned into a ContractError at the boundary.
struct Invalid {
  std::string message;
};

bool present(const json& obj, const char* field) {
  auto it = obj.find(field);
  return it != obj.end() && !it->is_null();
}


int64_t integer_field(const json& obj, const char* field, int64_t min, int64_t max) {
  const json& v = obj.at(field);
  if (v.is_number_float()) {  // 5.0 is an integer to JSON Schema too
    const double d = v.get<double>();
    if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
      throw Invalid{std::string(field) + " must be an integer in [" + std::to_string(min) + ", " +
                    std::to_string(max) + "], got " + v.dump()};
    return static_cast<int64_t>(d);
  }
  if (!v.is_number_integer())
    throw Invalid{std::string(field) + " must be an integer, got " + json_type_name(v)};
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max))
    throw Invalid{std::string(field) + " must be at most " + std::to_string(max) + ", got " + v.dump()};
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max)
    throw Invalid{std::string(field) + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                  std::to_string(x)};
  return x;
}

double number_field(const json& obj, const char* field) {
  const json& v = obj.at(field);
  if (!v.is_number()) throw Invalid{std::string(field) + " must be a number, got " + json_type_name(v)};
  return v.get<double>();
}

std::string string_field(const json& obj, const char* field) {
  const json& v = obj.at(field);
  if (!v.is_string()) throw Invalid{std::string(field) + " must be a string, got " + json_type_name(v)};
  return v.get<std::string>();
}

// One tool call of an assistant turn: {"id"?, "type": "function", "function": {"name", "arguments"}}
// with arguments JSON text (OpenAI) or an object.
void check_tool_call(const json& c, const std::string& where) {
  if (!c.is_object()) throw Invalid{where + " must be an object {id, type, function}"};
  for (const auto& [k, v] : c.items())
    if (k != "id" && k != "type" && k != "function") throw Invalid{where + " has the unknown field '" + k + "'"};
  if (c.contains("id") && !c["id"].is_string()) throw Invalid{where + ".id must be a string"};
  if (c.contains("type") && c["type"] != "function") throw Invalid{where + ".type must be \"function\""};
  if (!c.contains("function") || !c["function"].is_object()) throw Invalid{where + ".function must be an object {name, arguments}"};
  const json& fn = c["function"];
  for (const auto& [k, v] : fn.items())
    if (k != "name" && k != "arguments") throw Invalid{where + ".function has the unknown field '" + k + "'"};
  if (!fn.contains("name") || !fn["name"].is_string()) throw Invalid{where + ".function.name must be a string"};
  if (fn.contains("arguments") && !fn["arguments"].is_string() && !fn["arguments"].is_object())
    throw Invalid{where + ".function.arguments must be JSON text (a string) or an object"};
}

PromptMessage parse_message(const json& m, const std::string& where) {
  for (const auto& [k, v] : m.items())
    if (k != "role" && k != "content" && k != "tool_calls" && k != "tool_call_id" && k != "name")
      throw Invalid{where + " has the unknown field '" + k + "'"};
  if (!m.contains("role") || !m["role"].is_string()) throw Invalid{where + ".role must be a string"};
  PromptMessage pm{m["role"].get<std::string>(), ""};
  if (pm.role != "system" && pm.role != "user" && pm.role != "assistant" && pm.role != "tool")
    throw Invalid{where + ".role must be \"system\", \"user\", \"assistant\" or \"tool\", got \"" + pm.role + "\""};
  const bool calls = present(m, "tool_calls");
  if (calls) {
    if (pm.role != "assistant") throw Invalid{where + ".tool_calls is only for assistant messages"};
    const json& tc = m["tool_calls"];
    if (!tc.is_array() || tc.empty()) throw Invalid{where + ".tool_calls must be a non-empty array"};
    for (size_t i = 0; i < tc.size(); ++i) check_tool_call(tc[i], where + ".tool_calls[" + std::to_string(i) + "]");
    pm.fields["tool_calls"] = tc;
  }
  if (m.contains("content") && m["content"].is_string()) {
    pm.content = m["content"].get<std::string>();
  } else if (calls && (!m.contains("content") || m["content"].is_null())) {
    pm.fields["content"] = nullptr;  // a turn of calls only
  } else {
    throw Invalid{where + ".content must be a string"};
  }
  if (present(m, "tool_call_id")) {
    if (pm.role != "tool" || !m["tool_call_id"].is_string()) throw Invalid{where + ".tool_call_id must be a string, in a tool message"};
    pm.fields["tool_call_id"] = m["tool_call_id"];
  }
  if (present(m, "name")) {
    if (!m["name"].is_string()) throw Invalid{where + ".name must be a string"};
    pm.fields["name"] = m["name"];
  }
  return pm;
}

PromptRequest parse_fields(const json& body, const PromptLimits& limits) {
  for (const auto& item : body.items()) {
    const std::string& k = item.key();  // not a structured binding: clang 14 cannot capture one
    if (std::find_if(kPromptFields.begin(), kPromptFields.end(), [&](const char* f) { return k == f; }) ==
        kPromptFields.end()) {
      std::string known;
      for (const char* f : kPromptFields) known += (known.empty() ? "" : ", ") + std::string(f);
      throw Invalid{"unknown field '" + k + "' (known: " + known + ")"};
    }
  }
  PromptRequest r;
  const bool has_prompt = present(body, "prompt"), has_messages = present(body, "messages");
  if (has_prompt == has_messages) throw Invalid{"exactly one of 'prompt' and 'messages' is required"};
  if (has_prompt) {
    r.prompt = string_field(body, "prompt");
    if (r.prompt->size() > limits.max_prompt_bytes)
      throw Invalid{"prompt is " + std::to_string(r.prompt->size()) + " bytes, more than the limit of " +
                    std::to_string(limits.max_prompt_bytes)};
  } else {
    const json& msgs = body.at("messages");
    if (!msgs.is_array()) throw Invalid{"messages must be an array, got " + json_type_name(msgs)};
    if (msgs.empty()) throw Invalid{"messages must not be empty"};
    if (msgs.size() > limits.max_messages)
      throw Invalid{"messages has " + std::to_string(msgs.size()) + " entries, more than the limit of " +
                    std::to_string(limits.max_messages)};
    size_t total = 0;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const std::string where = "messages[" + std::to_string(i) + "]";
      const json& m = msgs[i];
      if (!m.is_object()) throw Invalid{where + " must be an object {role, content}, got " + json_type_name(m)};
      PromptMessage pm = parse_message(m, where);
      total += pm.content.size();
      r.messages.push_back(std::move(pm));
    }
    if (total > limits.max_prompt_bytes)
      throw Invalid{"messages hold " + std::to_string(total) + " bytes of content, more than the limit of " +
                    std::to_string(limits.max_prompt_bytes)};
  }
  if (present(body, "max_tokens"))
    r.max_tokens = static_cast<int>(integer_field(body, "max_tokens", 1, limits.max_tokens));
  if (present(body, "temperature")) {
    r.temperature = number_field(body, "temperature");
    if (!(r.temperature >= 0) || !std::isfinite(r.temperature))
      throw Invalid{"temperature must be >= 0, got " + body.at("temperature").dump()};
  }
  if (present(body, "top_p")) {
    r.top_p = number_field(body, "top_p");
    if (!(r.top_p > 0 && r.top_p <= 1)) throw Invalid{"top_p must be in (0, 1], got " + body.at("top_p").dump()};
  }
  if (present(body, "top_k"))
    r.top_k = static_cast<int>(integer_field(body, "top_k", 0, std::numeric_limits<int32_t>::max()));
  if (present(body, "seed")) {
    const json& v = body.at("seed");
    if (v.is_number_float() && v.get<double>() >= 0 && v.get<double>() <= 0x1p53 &&
        v.get<double>() == std::floor(v.get<double>())) {
      r.seed = static_cast<uint64_t>(v.get<double>());
    } else {
      if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
        throw Invalid{"seed must be an integer in [0, 2^64), got " + v.dump()};
      r.seed = v.get<uint64_t>();
    }
  }
  if (present(body, "timeout_s")) {
    const double t = number_field(body, "timeout_s");
    if (!(t > 0 && t <= limits.max_timeout_s))
      throw Invalid{"timeout_s must be in (0, " + std::to_string(static_cast<int64_t>(limits.max_timeout_s)) +
                    "] seconds, got " + body.at("timeout_s").dump()};
    r.timeout_s = t;
  }
  for (const char* f : {"frequency_penalty", "presence_penalty"}) {
    if (!present(body, f)) continue;
    const double x = number_field(body, f);
    if (!(x >= -2 && x <= 2)) throw Invalid{std::string(f) + " must be in [-2, 2], got " + body.at(f).dump()};
    (std::string_view(f) == "frequency_penalty" ? r.frequency_penalty : r.presence_penalty) = x;
  }
  if (present(body, "logprobs")) {
    const json& v = body.at("logprobs");
    if (!v.is_boolean()) throw Invalid{"logprobs must be a boolean, got " + json_type_name(v)};
    r.logprobs = v.get<bool>();
  }
  if (present(body, "top_logprobs")) {
    r.top_logprobs = static_cast<int>(integer_field(body, "top_logprobs", 0, kMaxTopLogprobs));
    if (r.top_logprobs > 0 && !r.logprobs) throw Invalid{"top_logprobs needs logprobs: true"};
  }
  if (present(body, "logit_bias")) {
    const json& v = body.at("logit_bias");
    if (!v.is_object()) throw Invalid{"logit_bias must be an object {\"token id\": bias}, got " + json_type_name(v)};
    if (v.size() > kMaxLogitBias)
      throw Invalid{"logit_bias has " + std::to_string(v.size()) + " entries, at most " + std::to_string(kMaxLogitBias) + " are allowed"};
    for (const auto& [k, b] : v.items()) {
      const bool digits = !k.empty() && k.size() <= 9 && std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits) throw Invalid{"logit_bias keys must be token ids (decimal integers), got \"" + k + "\""};
      if (!b.is_number() || !(b.get<double>() >= -100 && b.get<double>() <= 100))
        throw Invalid{"logit_bias[\"" + k + "\"] must be a number in [-100, 100], got " + b.dump()};
      r.logit_bias[static_cast<int32_t>(std::stol(k))] = b.get<double>();
    }
  }
  if (present(body, "response_format")) {
    try {
      grammar_for_response_format(body.at("response_format"));  // compiles: a bad schema is refused here
    } catch (const std::invalid_argument& e) {
      throw Invalid{e.what()};
    }
    if (body.at("response_format").value("type", "") != "text") r.response_format = body.at("response_format");
  }
  if (present(body, "parallel_tool_calls")) {
    if (!body.at("parallel_tool_calls").is_boolean())
      throw Invalid{"parallel_tool_calls must be a boolean, got " + json_type_name(body.at("parallel_tool_calls"))};
    r.parallel_tool_calls = body.at("parallel_tool_calls").get<bool>();
  }
  if (present(body, "tools") || present(body, "tool_choice")) {
    const json tools = present(body, "tools") ? body.at("tools") : json();
    const json choice = present(body, "tool_choice") ? body.at("tool_choice") : json();
    try {
      check_tools(tools, choice);
      // A forced call's grammar (every allowed tool in one) compiles here, not first at the last
      // stage; the format only changes the markup around it.
      if (tool_call_forced(tools, choice)) grammar_for_tool_choice(tools, choice, r.parallel_tool_calls, ToolCallFormat::kHermes);
    } catch (const std::invalid_argument& e) {
      throw Invalid{e.what()};
    }
    if (tools.is_array() && !tools.empty()) {
      r.tools = tools;
      r.tool_choice = choice.is_null() ? json("auto") : choice;
    }
  }
  if (r.tools_enabled() && !r.is_chat()) throw Invalid{"tools need 'messages' (a chat request)"};
  if (r.tools_enabled() && !r.response_format.is_null())
    throw Invalid{"response_format cannot be combined with tools unless tool_choice is \"none\""};
  if (present(body, "stop")) {
    const json& v = body.at("stop");
    if (v.is_string()) {
      r.stop.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      if (v.size() > limits.max_stop_strings)
        throw Invalid{"stop has " + std::to_string(v.size()) + " strings, at most " +
                      std::to_string(limits.max_stop_strings) + " are allowed"};
      for (const json& s : v) {
        if (!s.is_string()) throw Invalid{"stop must hold strings, got " + json_type_name(s)};
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      throw Invalid{"stop must be a string or an array of strings, got " + json_type_name(v)};
    }
    for (const auto& s : r.stop) {
      if (s.empty()) throw Invalid{"stop strings must not be empty"};
      if (s.size() > limits.max_stop_bytes)
        throw Invalid{"a stop string is " + std::to_string(s.size()) + " bytes, more than the limit of " +
                      std::to_string(limits.max_stop_bytes)};
    }
  }
  return r;
}

}  // namespace

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

std::string generate_request_id() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  static const char* hex = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) id[static_cast<size_t>(half * 16 + i)] = hex[v & 15];
  }
  return id;
}

json PromptRequest::to_json() const {
  json j = RequestParams::to_json();
  j["id"] = id;
  if (prompt) {
    j["prompt"] = *prompt;
  } else {
    j["messages"] = json::array();
    for (const auto& m : messages) {
      json jm = {{"role", m.role}, {"content", m.content}};
      for (const auto& [k, v] : m.fields.items()) jm[k] = v;
      j["messages"].push_back(std::move(jm));
    }
  }
  return j;
}

PromptParseResult parse_prompt_record(std::string_view value, std::optional<std::string_view> key,
                                      const PromptLimits& limits) {
  PromptParseResult out;
  const bool key_usable = key && !key->empty();
  auto fail = [&](const char* code, std::string message) {
    if (out.id.empty()) out.id = key_usable && key->size() <= 256 ? std::string(*key) : generate_request_id();
    out.request.reset();
    out.error = ContractError{code, std::move(message)};
    return out;
  };
  if (value.size() > limits.max_record_bytes)
    return fail(error_code::kInvalidRequest, "the record is " + std::to_string(value.size()) +
                                                 " bytes, more than the limit of " +
                                                 std::to_string(limits.max_record_bytes));
  json body;
  try {
    body = json::parse(value.begin(), value.end());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e400
    return fail(error_code::kInvalidJson, std::string("the record is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) return fail(error_code::kInvalidRequest, "the record must be a JSON object, got " + json_type_name(body));
  if (json_deeper_than(body, kMaxJsonDepth))
    return fail(error_code::kInvalidRequest, "the record nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels");

  // Recover the id first so that every later error can be keyed by it.
  if (present(body, "id")) {
    const json& v = body["id"];
    if (!v.is_string()) return fail(error_code::kInvalidRequest, "id must be a string, got " + json_type_name(v));
    const std::string id = v.get<std::string>();
    if (id.size() <= 256) out.id = id;
    if (!is_valid_request_id(id))
      return fail(error_code::kInvalidRequest, "id must be 1 to 128 characters of [A-Za-z0-9._:-]");
  } else if (key_usable) {
    if (!is_valid_request_id(*key))
      return fail(error_code::kInvalidRequest,
                  "the record key (used as the id, since the body has none) must be 1 to 128 characters of "
                  "[A-Za-z0-9._:-]");
    out.id = std::string(*key);
  }
  try {
    PromptRequest r = parse_fields(body, limits);
    if (out.id.empty()) {
      out.id = generate_request_id();
      r.id_generated = true;
    }
    r.id = out.id;
    out.request = std::move(r);
    return out;
  } catch (const Invalid& e) {
    return fail(error_code::kInvalidRequest, e.message);
  } catch (const json::exception& e) {  // defensive: no nlohmann error escapes to the caller
    return fail(error_code::kInvalidRequest, e.what());
  }
}

}  // namespace fleet
