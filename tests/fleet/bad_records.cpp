#include "fleet/bad_records.h"

#include <array>
#include <cctype>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

#include "wire/activation_codec.h"

namespace fleet::test {

using json = nlohmann::json;

const char* bad_topic_name(BadTopic t) {
  return t == BadTopic::Prompts ? "prompts" : t == BadTopic::Stage1 ? "stage.1" : "control";
}

std::string printable(const std::string& bytes, size_t max) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && out.size() < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (out.size() >= max) out += "... (" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

namespace {

constexpr const char* kInvalidJson = "invalid_json";
constexpr const char* kInvalidRequest = "invalid_request";
constexpr const char* kPromptTooLong = "prompt_too_long";
constexpr const char* kInternal = "internal";
constexpr const char* kNotJson = "not valid JSON";
constexpr const char* kExactlyOne = "exactly one of 'prompt' and 'messages'";

class Gen {
 public:
  explicit Gen(const BadRecordSpec& spec) : spec_(spec), rng_(spec.seed) {}

  std::vector<BadRecord> out;

  // A new key (and request id) for a record of `family`: "bad-<family>-<n>-<tag>".
  std::string next_key(const std::string& family) {
    std::string f;
    for (char c : family) f += (std::isalnum(static_cast<unsigned char>(c)) ? c : '-');
    return "bad-" + f + "-" + std::to_string(out.size()) + "-" + spec_.tag;
  }
  uint64_t rand(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  std::string random_bytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rand(256));
    return s;
  }

  // A prompts record answered by an error event for `event_id` (default: the key) and a
  // dead-letter record, both with `code` and a message containing `says`.
  void prompt(const std::string& family, const std::string& what, const std::string& key, const std::string& value,
              const char* code, const std::string& says, const std::string& event_id = "") {
    out.push_back({.family = family, .what = what, .topic = BadTopic::Prompts, .key = key, .value = value,
                   .event_id = event_id.empty() ? key : event_id, .code = code, .says = says, .dead_letter = true});
  }
  // A JSON prompts record: a good greedy request with `edit` applied.
  template <typename Edit>
  void prompt_json(const std::string& family, const std::string& what, Edit edit, const char* code,
                   const std::string& says) {
    const std::string key = next_key(family);
    json j = {{"id", key}, {"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}};
    edit(j);
    prompt(family, what, key, j.dump(), code, says);
  }
  // A good greedy request's JSON with the raw text `raw` as the value of `field`.
  // (family: the field's name)
  void prompt_raw_field(const std::string& field, const std::string& raw, const char* code, const std::string& says) {
    const std::string key = next_key(field);
    std::string v = R"({"id": ")" + key + R"(", "prompt": "Once upon a time")";
    if (field != "max_tokens") v += R"(, "max_tokens": 8)";
    if (field != "temperature") v += R"(, "temperature": 0)";
    v += ", \"" + field + "\": " + raw + "}";
    prompt(field, field + " " + raw, key, v, code, says);
  }

  // A record for stage 1's topic, keyed by its request id.
  void stage(const std::string& family, const std::string& what, const std::string& key, const std::string& value,
             bool dead_letter, const std::string& event_id, const std::string& says, const char* code = kInternal) {
    out.push_back({.family = "stage:" + family, .what = what, .topic = BadTopic::Stage1, .key = key, .value = value,
                   .event_id = event_id, .code = code, .says = says, .dead_letter = dead_letter});
  }
  // A well-formed step into stage 1: `rows` hidden rows of the model's width from stage 0.
  ActivationMsg step(const std::string& id, int rows, int cols = -1) {
    ActivationMsg m;
    m.set_request_id(id);
    m.set_step(static_cast<uint64_t>(rand(1000)) + 1);
    m.set_start_pos(0);
    m.set_sample(true);
    m.set_generation_index(0);
    std::vector<float> v(static_cast<size_t>(rows) * static_cast<size_t>(cols < 0 ? spec_.dim : cols));
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (float& x : v) x = n(rng_);
    set_tensor_from_f32(m, v.data(), rows, cols < 0 ? spec_.dim : cols, wire::Tensor::F32);
    m.set_model_fingerprint(spec_.fingerprint);
    m.set_source_worker("bad-input-test");
    m.set_chunk_count(1);
    m.set_total_bytes(m.tensor().data().size());
    return m;
  }
  // A well-formed step of `rows` rows (under a new key) changed by edit(m, key), which returns
  // the id the error event is for ("" = none).
  template <typename Edit>
  void bad_step(const std::string& family, const std::string& what, int rows, bool dead, const std::string& says,
                Edit edit) {
    const std::string key = next_key("stage-" + family);
    ActivationMsg m = step(key, rows);
    const std::string event_id = edit(m, key);
    stage(family, what, key, m.SerializeAsString(), dead, event_id, says);
  }
  // Bytes that do not parse as an ActivationMsg, made from `make` (retried until they do not).
  template <typename Make>
  std::string unparsable(Make make) {
    for (int i = 0; i < 1000; ++i) {
      std::string s = make();
      if (ActivationMsg probe; !probe.ParseFromString(s)) return s;
    }
    throw std::logic_error("bad_records: could not make an unparsable ActivationMsg");
  }

  // A control record: a dead letter saying `says`; or, with says "", a valid cancel of an
  // unknown id, which the stage-0 worker only logs.
  void control(const std::string& family, const std::string& what, const std::string& key, const std::string& value,
               const char* code, const std::string& says) {
    out.push_back({.family = "control:" + family, .what = what, .topic = BadTopic::Control, .key = key, .value = value,
                   .code = code, .says = says, .dead_letter = !says.empty(),
                   .log_line = says.empty() ? "cancel of " + key + ": no such request; nothing to do" : ""});
  }

  const BadRecordSpec& spec_;
  std::mt19937_64 rng_;
};

std::string words(std::mt19937_64& rng, size_t bytes) {
  static const char* w[] = {"the", "cat", "sat", "on", "a", "mat", "and", "big", "dog", "ran", "to", "park"};
  std::string s;
  while (s.size() < bytes) {
    s += w[rng() % 12];
    s += ' ';
  }
  s.resize(bytes);
  return s;
}

void prompts_syntax(Gen& g) {
  const std::vector<std::string> not_json = {
      "{not json", "{", "}", "[1, 2", "hello", "{'id': 'x', 'prompt': 'y'}", R"({"prompt": "x",})",
      "", "nul", R"({"prompt": "a"} trailing)", R"("unterminated)", R"({"prompt": "x" "max_tokens": 3})"};
  for (const std::string& v : not_json)
    g.prompt("not-json", "text: " + printable(v, 40), g.next_key("not-json"), v, kInvalidJson, kNotJson);
  for (int i = 0; i < 12; ++i) {  // binary garbage: always has a byte no JSON text has
    std::string v = g.random_bytes(8 + g.rand(i < 6 ? 64 : 4000));
    v[g.rand(v.size())] = static_cast<char>(0x80 + g.rand(128));
    v[0] = static_cast<char>(g.rand(8));
    g.prompt("binary", std::to_string(v.size()) + " random bytes", g.next_key("binary"), v, kInvalidJson, kNotJson);
  }
  const std::vector<std::string> non_objects = {"5", R"("a string")", "[]", "[1, 2]", "null", "true", "false",
                                                "1.5", R"([{"prompt": "x"}])", R"("")"};
  for (const std::string& v : non_objects)
    g.prompt("json-non-object", "JSON " + v, g.next_key("json-non-object"), v, kInvalidRequest, "must be a JSON object");
}

void prompts_fields(Gen& g) {
  // Wrong types, field by field.
  const std::vector<std::pair<std::string, std::vector<json>>> wrong = {
      {"prompt", {5, true, json::array({"a"}), json::object({{"text", "a"}})}},
      {"max_tokens", {"8", true, json::array({8}), json::object()}},
      {"temperature", {"0.5", false, json::array()}},
      {"top_p", {"0.9", json::object()}},
      {"top_k", {"40", 1.5, true}},
      {"seed", {"7", true, json::array({7})}},
      {"stop", {5, true, json::object({{"s", "x"}}), json::array({5}), json::array({nullptr})}},
      {"timeout_s", {"10", true, json::array({1})}},
  };
  for (const auto& [field, values] : wrong)
    for (const json& v : values)
      g.prompt_json("wrong-type", field + " = " + v.dump(), [&, &field = field](json& j) { j[field] = v; }, kInvalidRequest, field + " must");
  for (const json& v : {json(5), json(true), json::array({"x"})}) {  // id: keyed by the record key
    const std::string key = g.next_key("wrong-type");
    g.prompt("wrong-type", "id = " + v.dump(), key, json{{"id", v}, {"prompt", "Once upon a time"}}.dump(),
             kInvalidRequest, "id must be a string");
  }
  const std::vector<std::pair<json, std::string>> bad_messages = {
      {"hello", "messages must be an array"},
      {json::object({{"role", "user"}}), "messages must be an array"},
      {json::array({5}), "messages[0] must be an object"},
      {json::array({{{"role", 5}, {"content", "x"}}}), "messages[0].role must be a string"},
      {json::array({{{"role", "user"}, {"content", 5}}}), "messages[0].content must be a string"},
      {json::array({{{"role", "user"}}}), "messages[0].content must be a string"}};
  for (const auto& [v, says] : bad_messages)
    g.prompt_json("wrong-type", "messages = " + v.dump(), [&, &v = v](json& j) { j.erase("prompt"); j["messages"] = v; },
                  kInvalidRequest, says);

  for (const std::string f : {"max_token", "Prompt", "model", "stream", "n", "temperatur", "", "id ", "tool", "\xc3\xa9"})
    g.prompt_json("unknown-field", "field '" + f + "'", [&](json& j) { j[f] = 1; }, kInvalidRequest,
                  "unknown field '" + f + "'");

  // logit_bias and response_format: malformed, out of range, outside the vocabulary (stage 0
  // knows it), a schema keyword the grammar cannot enforce.
  const std::vector<std::pair<json, std::string>> bad_bias = {
      {1, "logit_bias must be an object"},
      {{{"x", 1}}, "logit_bias keys must be token ids"},
      {{{"5", 101}}, "must be a number in [-100, 100]"},
      {{{"5", "up"}}, "must be a number in [-100, 100]"},
      {{{"99999", 1}}, "the vocabulary has"}};
  for (const auto& [v, says] : bad_bias)
    g.prompt_json("logit-bias", "logit_bias = " + v.dump(), [&, &v = v](json& j) { j["logit_bias"] = v; }, kInvalidRequest, says);
  const std::vector<std::pair<json, std::string>> bad_format = {
      {"json", "response_format must be an object"},
      {{{"type", "yaml"}}, "response_format.type must be one of"},
      {{{"type", "json_schema"}}, "response_format.json_schema must be an object"},
      {{{"type", "json_schema"}, {"json_schema", {{"schema", {{"type", "object"}, {"minProperties", 1}}}}}},
       "'minProperties' at # is not supported"},
      {{{"type", "json_schema"}, {"json_schema", {{"schema", {{"type", "string"}, {"minLength", 3}, {"maxLength", 2}}}}}},
       "'minLength' at # is above 'maxLength'"}};
  for (const auto& [v, says] : bad_format)
    g.prompt_json("response-format", "response_format = " + v.dump(), [&, &v = v](json& j) { j["response_format"] = v; },
                  kInvalidRequest, says);

  g.prompt_json("missing-prompt", "no prompt", [](json& j) { j.erase("prompt"); }, kInvalidRequest, kExactlyOne);
  g.prompt_json("missing-prompt", "prompt null", [](json& j) { j["prompt"] = nullptr; }, kInvalidRequest, kExactlyOne);
  g.prompt_json("missing-prompt", "messages null", [](json& j) { j.erase("prompt"); j["messages"] = nullptr; },
                kInvalidRequest, kExactlyOne);
  g.prompt_json("missing-prompt", "both null", [](json& j) { j["prompt"] = nullptr; j["messages"] = nullptr; },
                kInvalidRequest, kExactlyOne);
  g.prompt_json("missing-prompt", "only the id", [](json& j) { j = {{"id", j["id"]}}; }, kInvalidRequest, kExactlyOne);
  g.prompt_json("missing-prompt", "messages []", [](json& j) { j.erase("prompt"); j["messages"] = json::array(); },
                kInvalidRequest, "messages must not be empty");
  {
    const std::string key = g.next_key("missing-prompt");  // no body at all but {}: the key is the id
    g.prompt("missing-prompt", "{} (id from the key)", key, "{}", kInvalidRequest, kExactlyOne);
  }
  for (const json& m : {json::array({{{"role", "user"}, {"content", "hi"}}}), json::array(), json("x")})
    g.prompt_json("prompt-and-messages", "prompt and messages " + m.dump(), [&](json& j) { j["messages"] = m; },
                  kInvalidRequest, kExactlyOne);
  for (const std::string role : {"robot", "", "USER", "developer", "function", "System"})
    g.prompt_json("bad-role", "role '" + role + "'",
                  [&](json& j) { j.erase("prompt"); j["messages"] = {{{"role", role}, {"content", "hi"}}}; },
                  kInvalidRequest, ".role must be \"system\", \"user\", \"assistant\" or \"tool\"");
  g.prompt_json("bad-role", "extra field 'mood' in a message",
                [](json& j) { j.erase("prompt"); j["messages"] = {{{"role", "user"}, {"content", "hi"}, {"mood", "x"}}}; },
                kInvalidRequest, "has the unknown field 'mood'");

  // Tools: malformed definitions and choices, tool turns in the wrong place, tools without
  // messages or beside a response_format, nesting too deep to copy.
  const json tool = {{"type", "function"}, {"function", {{"name", "f"}}}};
  const json chat = json::array({{{"role", "user"}, {"content", "hi"}}});
  const std::vector<std::tuple<std::string, std::function<void(json&)>, std::string>> bad_tools = {
      {"tools = 1", [&](json& j) { j.erase("prompt"); j["messages"] = chat; j["tools"] = 1; }, "tools must be an array"},
      {"a tool without a name", [&](json& j) { j.erase("prompt"); j["messages"] = chat; j["tools"] = {{{"type", "function"}, {"function", json::object()}}}; },
       "tools[0].function.name must be"},
      {"tool_choice 'sometimes'", [&](json& j) { j.erase("prompt"); j["messages"] = chat; j["tools"] = json::array({tool}); j["tool_choice"] = "sometimes"; },
       "tool_choice must be"},
      {"tool_choice names an unknown function",
       [&](json& j) { j.erase("prompt"); j["messages"] = chat; j["tools"] = json::array({tool}); j["tool_choice"] = {{"type", "function"}, {"function", {{"name", "g"}}}}; },
       "which is not among the tools"},
      {"tools with a prompt", [&](json& j) { j["tools"] = json::array({tool}); }, "tools need 'messages'"},
      {"tools and a response_format", [&](json& j) { j.erase("prompt"); j["messages"] = chat; j["tools"] = json::array({tool}); j["response_format"] = {{"type", "json_object"}}; },
       "response_format cannot be combined with tools"},
      {"tool_calls in a user turn", [&](json& j) { j.erase("prompt"); j["messages"] = {{{"role", "user"}, {"content", nullptr}, {"tool_calls", {{{"function", {{"name", "f"}}}}}}}}; },
       "tool_calls is only for assistant messages"},
      {"tool parameters with $ref", [&](json& j) { j.erase("prompt"); j["messages"] = chat; j["tools"] = {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {{"x", {{"$ref", "#"}}}}}}}}}}}; },
       "\"$ref\" is not supported"},
      {"tools nested 100 deep", [&](json& j) { json v = json::array(); for (int i = 0; i < 100; ++i) v = json::array({v}); j["tools"] = v; },
       "nests JSON deeper than 64 levels"}};
  for (const auto& [what, edit, says] : bad_tools) g.prompt_json("tools", what, edit, kInvalidRequest, says);

  const size_t ctx = static_cast<size_t>(g.spec_.context);
  for (size_t n : {ctx + 20, ctx * 2, size_t{3000}, size_t{20000}}) {
    const std::string text = words(g.rng_, n * 6);  // fewer than 6 bytes a token: more than n tokens
    g.prompt_json("too-long", "prompt of " + std::to_string(text.size()) + " bytes", [&](json& j) { j["prompt"] = text; },
                  kPromptTooLong, "the model's context is " + std::to_string(g.spec_.context));
  }
}

void prompts_values(Gen& g) {
  for (const std::string raw : {"0", "-1", "-100", "8193", "100000", "2147483648", "18446744073709551616", "1e30",
                                "3.5", "0.5", "-0.5"})
    g.prompt_raw_field("max_tokens", raw, kInvalidRequest, "max_tokens must");
  for (const std::string raw : {"-0.1", "-1", "-1e-9", "-1000"})
    g.prompt_raw_field("temperature", raw, kInvalidRequest, "temperature must be >= 0");
  for (const std::string raw : {"\"NaN\"", "\"nan\"", "\"Infinity\"", "\"-inf\""})
    g.prompt_raw_field("temperature", raw, kInvalidRequest, "temperature must be a number");
  for (const std::string raw : {"NaN", "-NaN", "Infinity", "-Infinity", "nan"})
    g.prompt_raw_field("temperature", raw, kInvalidJson, kNotJson);
  g.prompt_raw_field("temperature", "1e400", kInvalidJson, "number overflow");  // no double holds it
  for (const std::string raw : {"0", "0.0", "-0.5", "1.0001", "2", "100", "-1e-300"})
    g.prompt_raw_field("top_p", raw, kInvalidRequest, "top_p must be in (0, 1]");
  for (const std::string raw : {"-1", "2147483648", "1e12", "-0.5"})
    g.prompt_raw_field("top_k", raw, kInvalidRequest, "top_k must");
  for (const std::string raw : {"-1", "-9223372036854775808", "1.5", "18446744073709551616", "1e300", "-0.25"})
    g.prompt_raw_field("seed", raw, kInvalidRequest, "seed must be an integer in [0, 2^64)");
  const std::string long_stop(300, 's');
  const std::vector<std::pair<json, std::string>> stops = {
      {json::array({"a", "b", "c", "d", "e"}), "stop has 5 strings"},
      {json::array({""}), "stop strings must not be empty"},
      {"", "stop strings must not be empty"},
      {json::array({"ok", long_stop}), "a stop string is 300 bytes"},
      {long_stop, "a stop string is 300 bytes"},
      {json::array({json::array({"nested"})}), "stop must hold strings"}};
  for (const auto& [v, says] : stops)
    g.prompt_json("stop", "stop " + printable(v.dump(), 40), [&, &v = v](json& j) { j["stop"] = v; }, kInvalidRequest, says);
  for (const std::string raw : {"0", "-1", "86401", "1e9", "-0.0", "0.0"})
    g.prompt_raw_field("timeout_s", raw, kInvalidRequest, "timeout_s must be in (0, 86400]");
}

void prompts_encoding_and_ids(Gen& g) {
  // Invalid UTF-8 inside JSON strings: raw bytes and escaped lone surrogates.
  const std::vector<std::pair<std::string, std::string>> bad_utf8 = {
      {"\xff", "byte ff"},           {"\xc3\x28", "bad continuation"},   {"\xe2\x82", "truncated sequence"},
      {"\xed\xa0\x80", "surrogate"}, {"\xc0\xaf", "overlong '/'"},       {"\xf8\x88\x80\x80\x80", "5-byte form"},
      {"\xf4\x90\x80\x80", "above U+10FFFF"}, {"\\ud800", "escaped lone high surrogate"},
      {"\\udc00x", "escaped lone low surrogate"}};
  for (const auto& [bytes, what] : bad_utf8) {
    const std::string key = g.next_key("utf8");
    g.prompt("invalid-utf8", "prompt with " + what, key,
             R"({"id": ")" + key + R"(", "prompt": "Once )" + bytes + R"( upon a time", "max_tokens": 8})", kInvalidJson,
             kNotJson);
  }
  for (const char* where : {"stop", "messages"}) {
    const std::string key = g.next_key("utf8");
    const std::string v = std::string(where) == "stop"
                              ? R"({"id": ")" + key + R"(", "prompt": "Once", "stop": ["a)" + std::string("\xfe") + R"("]})"
                              : R"({"id": ")" + key + R"(", "messages": [{"role": "user", "content": "\xc1\xbf"}]})";
    g.prompt("invalid-utf8", std::string("invalid UTF-8 in ") + where, key, v, kInvalidJson, kNotJson);
  }
  {
    const std::string key = g.next_key("utf8");  // in the id: the key answers for it
    g.prompt("invalid-utf8", "invalid UTF-8 in the id", key, R"({"id": "a)" + std::string("\xff") + R"(b", "prompt": "x"})",
             kInvalidJson, kNotJson);
  }

  // Ids the id pattern refuses. Up to 256 bytes the body's id keys the answer, else the key.
  const std::string t = g.spec_.tag;
  const std::vector<std::string> ids = {"has space-" + t, "a/b-" + t, "semi;colon-" + t, "<tag>-" + t, "star*-" + t,
                                        "\xc3\xa9t\xc3\xa9-" + t, "new\nline-" + t, "tab\t-" + t,
                                        std::string(129 - t.size() - 1, 'a') + "-" + t,
                                        std::string(200, 'b') + "-" + t};
  for (const std::string& id : ids) {
    const std::string key = g.next_key("bad-id");
    g.prompt("bad-id", "id " + printable(id, 30), key, json{{"id", id}, {"prompt", "Once upon a time"}}.dump(),
             kInvalidRequest, "id must be 1 to 128 characters", id);
  }
  for (const std::string& id : {std::string(""), std::string(300, 'c')}) {
    const std::string key = g.next_key("bad-id");
    g.prompt("bad-id", "id of " + std::to_string(id.size()) + " characters", key,
             json{{"id", id}, {"prompt", "Once upon a time"}}.dump(), kInvalidRequest, "id must be 1 to 128 characters");
  }
  for (const std::string& key : {"bad key " + t, "bad/key-" + t, std::string(140, 'k') + t}) {  // no body id
    g.prompt("bad-id", "record key " + printable(key, 30) + ", no id", key, R"({"prompt": "Once upon a time"})",
             kInvalidRequest, "the record key (used as the id, since the body has none) must be 1 to 128 characters");
  }
}

void prompts_near_the_size_limit(Gen& g) {
  // Records of 99% of the broker's limit (990 KB of 1 MB): their dead-letter record carries them.
  const size_t size = g.spec_.max_message_bytes / 100 * 99;
  auto big = [&](const std::string& key, const std::string& prompt_json_text, const std::string& rest) {
    return R"({"id": ")" + key + R"(", "prompt": )" + prompt_json_text + rest + "}";
  };
  std::string key = g.next_key("size-limit");
  std::string text = words(g.rng_, size - 100);
  g.prompt("size-limit", "990 KB record, max_tokens 0", key, big(key, json(text).dump(), R"(, "max_tokens": 0)"),
           kInvalidRequest, "max_tokens must");
  key = g.next_key("size-limit");
  g.prompt("size-limit", "990 KB prompt of words", key, big(key, json(text).dump(), R"(, "max_tokens": 8)"),
           kPromptTooLong, "the model's context is " + std::to_string(g.spec_.context));
  key = g.next_key("size-limit");  // every '"' is escaped again in the dead letter: about 2 MB there
  g.prompt("size-limit", "990 KB prompt of escaped quotes", key,
           big(key, json(std::string((size - 100) / 2, '"')).dump(), R"(, "max_tokens": 8)"), kPromptTooLong,
           "the model's context is " + std::to_string(g.spec_.context));
  key = g.next_key("size-limit");  // not UTF-8: base64 in the dead letter, about 1.3 MB
  std::string bin = g.random_bytes(size);
  bin[0] = '\x01';
  g.prompt("size-limit", "990 KB of binary garbage", key, bin, kInvalidJson, kNotJson);
}

void stage_records(Gen& g) {
  const std::string proto_says = "not a valid ActivationMsg protobuf";
  for (int i = 0; i < 6; ++i) {
    const std::string key = g.next_key("stage-random");
    const size_t n = 16 + g.rand(i < 3 ? 64 : 8000);
    g.stage("random-bytes", std::to_string(n) + " random bytes", key, g.unparsable([&] { return g.random_bytes(n); }),
            true, "", proto_says);
  }
  for (int i = 0; i < 6; ++i) {
    const std::string key = g.next_key("stage-truncated");
    const std::string whole = g.step(key, 1 + static_cast<int>(g.rand(8))).SerializeAsString();
    std::string cut = g.unparsable([&] { return whole.substr(0, whole.size() * (30 + g.rand(50)) / 100); });
    g.stage("truncated", "valid chunk cut to " + std::to_string(cut.size()) + " of " + std::to_string(whole.size()) +
                             " bytes", key, cut, true, "", proto_says);
  }
  for (int i = 0; i < 6; ++i) {
    const std::string key = g.next_key("stage-garbled");
    const std::string whole = g.step(key, 2).SerializeAsString();
    const size_t header = 2 + key.size();  // the fields after request_id (which stays valid UTF-8)
    std::string bad = g.unparsable([&] {
      std::string s = whole;
      for (int k = 0; k < 3; ++k) s[header + g.rand(16)] = static_cast<char>(0xf8 | g.rand(8));  // wire type 7
      return s;
    });
    g.stage("garbled", "valid chunk with invalid tags", key, bad, true, "", proto_says);
  }
  for (uint32_t index : {0u, 1u, 69999u, 70000u})
    g.bad_step("oversized-claim", "chunk_count 70000, chunk_index " + std::to_string(index), 2, true,
               "chunk_count is 70000", [&](ActivationMsg& m, const std::string& k) {
                 m.set_chunk_count(70000);
                 m.set_chunk_index(index);
                 return k;
               });
  for (uint32_t count : {1u, 3u})
    g.bad_step("oversized-claim", "total_bytes 2^40 in " + std::to_string(count) + " chunk(s)", 2, true,
               "total_bytes is 1099511627776", [&](ActivationMsg& m, const std::string& k) {
                 m.set_total_bytes(uint64_t{1} << 40);
                 m.set_chunk_count(count);
                 return k;
               });
  g.bad_step("oversized-claim", "shape [2^20, 2^20]", 1, true, "exceeds 4294967296 bytes",
             [](ActivationMsg& m, const std::string& k) {
               m.set_n_tokens(1 << 20);
               m.mutable_tensor()->set_shape(0, 1 << 20);
               m.mutable_tensor()->set_shape(1, 1 << 20);
               return k;
             });
  for (int dt : {0, 7, 2})  // unspecified, unknown, BF16 with f32 data
    g.bad_step("dtype", "dtype " + std::to_string(dt) + " with f32 data", 2, true,
               dt == 2 ? "dtype and shape give" : "tensor dtype is", [&](ActivationMsg& m, const std::string& k) {
                 m.mutable_tensor()->set_dtype(static_cast<WireDType>(dt));
                 return k;
               });
  const std::string dim_says = "hidden rows do not have the model's dimension " + std::to_string(g.spec_.dim);
  for (int variant = 0; variant < 5; ++variant) {
    const std::string key = g.next_key("stage-shape");
    ActivationMsg m = g.step(key, 3);
    std::string says = "tensor shape[0] is 2 but n_tokens is 3", what = "shape[0] 2, n_tokens 3";
    bool dead = true;
    if (variant == 0) m.mutable_tensor()->set_shape(0, 2);
    if (variant == 1) m.mutable_tensor()->clear_shape(), says = "tensor shape is empty", what = "no shape";
    if (variant == 2) m.mutable_tensor()->set_shape(1, -1), says = "tensor shape[1] is -1", what = "shape [3, -1]";
    if (variant == 3) m.mutable_tensor()->mutable_data()->resize(7), says = "tensor data has 7 bytes", what = "7 data bytes";
    if (variant == 4) {  // [3, 8, dim/8]: the right byte count, three dimensions
      m.mutable_tensor()->set_shape(1, 8);
      m.mutable_tensor()->add_shape(g.spec_.dim / 8);
      says = dim_says, what = "shape [3, 8, dim/8]", dead = false;
    }
    g.stage("shape", what, key, m.SerializeAsString(), dead, key, says);
  }
  for (int cols : {g.spec_.dim / 2, g.spec_.dim * 2, g.spec_.dim - 1, 1}) {
    const std::string key = g.next_key("stage-dim");
    g.stage("wrong-dim", "rows of width " + std::to_string(cols), key, g.step(key, 2, cols).SerializeAsString(), false,
            key, dim_says);
  }
  for (int n : {1, 4, 16}) {
    const std::string key = g.next_key("stage-tokens");
    ActivationMsg m = g.step(key, 1);
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>(g.rand(static_cast<uint64_t>(g.spec_.vocab))));
    set_token_ids(m, ids);
    m.set_total_bytes(0);
    g.stage("token-ids", std::to_string(n) + " token ids into stage 1", key, m.SerializeAsString(), false, key,
            "expects hidden rows but received token ids");
  }
  // Steps of another model (its fingerprint differs from this deployment's stage 0): refused
  // before anything is computed, to the dead-letter topic (no request of ours is involved).
  for (int variant = 0; variant < 4; ++variant) {
    const std::string key = g.next_key("stage-fingerprint");
    ActivationMsg m = g.step(key, 2);
    m.set_model_fingerprint(variant == 3 ? "" : "0123456789abcdef" + std::to_string(variant));
    if (variant == 1) m.set_sample(false);
    if (variant == 2) m.set_start_pos(7);
    g.stage("fingerprint", variant == 0 ? "prefill, sample" : variant == 1 ? "prefill, no sample"
                                         : variant == 2 ? "decode at position 7" : "empty fingerprint",
            key, m.SerializeAsString(), true, "", "fingerprint");
  }
  // Header fields. edit(m, key) returns the id the error event is for ("" = none).
  using Msg = ActivationMsg;
  using Key = const std::string&;
  g.bad_step("header", "n_tokens 0", 2, true, "n_tokens is 0", [](Msg& m, Key k) { m.set_n_tokens(0); return k; });
  g.bad_step("header", "start_pos -5", 2, true, "start_pos is -5", [](Msg& m, Key k) { m.set_start_pos(-5); return k; });
  g.bad_step("header", "empty request_id", 2, true, "request_id is empty", [](Msg& m, Key) {
    m.set_request_id("");
    return std::string();
  });
  g.bad_step("header", "request_id of 300+ bytes", 2, true, "longer than 256 bytes", [](Msg& m, Key k) {
    m.set_request_id(std::string(300, 'r') + k);
    return m.request_id();
  });
  g.bad_step("header", "release with rows", 2, true, "a release message carries no rows", [](Msg& m, Key k) {
    m.set_release(true);
    return k;
  });
  g.bad_step("header", "replay request into stage 1", 2, false, "a replay request reached stage 1", [](Msg& m, Key k) {
    m.clear_tensor();
    m.set_n_tokens(0);
    m.set_total_bytes(0);
    m.set_replay_request(true);
    m.set_replay_end(5);
    return k;
  });
}

void control_records(Gen& g) {
  const std::string t = g.spec_.tag;
  // {what, value ("$K" stands for the record's key), code, says}
  const std::vector<std::array<std::string, 4>> malformed = {
      {"not JSON", "{cancel", "invalid_json", "not valid JSON"},
      {"binary", std::string("\x00\xff\x13", 3) + g.random_bytes(40), "invalid_json", "not valid JSON"},
      {"a JSON array", R"(["$K", true])", "invalid_request", "a control record is a JSON object"},
      {"a JSON number", "5", "invalid_request", "a control record is a JSON object"},
      {"id a number", R"({"id": 5, "cancel": true})", "invalid_request", "id must be a string"},
      {"id with a space", R"({"id": "x y-)" + t + R"(", "cancel": true})", "invalid_request", "id must be 1-128 characters"},
      {"unknown field", R"({"id": "$K", "cancel": true, "force": 1})", "invalid_request", "unknown field 'force'"},
      {"no cancel", R"({"id": "$K"})", "invalid_request", "\"cancel\": true is the only control action"},
      {"over 64 KiB", R"({"id": "$K", "cancel": true})" + std::string(70000, ' '), "invalid_request", "at most 64 KiB"}};
  auto with_key = [](std::string v, const std::string& k) {
    if (size_t at = v.find("$K"); at != std::string::npos) v.replace(at, 2, k);
    return v;
  };
  for (const auto& [what, value, code, says] : malformed) {
    const std::string k = g.next_key("control");
    g.control("malformed", what, k, with_key(value, k), code.c_str(), says);
  }
  g.control("malformed", "invalid key, no id", "bad control key " + t, R"({"cancel": true})", "invalid_request",
            "id must be 1-128 characters");
  for (const std::string v : {"false", "\"true\"", "1", "null", "{}"}) {
    const std::string k = g.next_key("control");
    g.control("cancel-not-true", "cancel " + v, k, R"({"id": ")" + k + R"(", "cancel": )" + v + "}", "invalid_request",
              "\"cancel\": true is the only control action");
  }
  for (int i = 0; i < 8; ++i) {
    const std::string k = g.next_key("control");
    g.control("unknown-id", "cancel of an unknown id", k, json{{"id", k}, {"cancel", true}}.dump(), "", "");
  }
}

}  // namespace

std::vector<BadRecord> make_bad_records(const BadRecordSpec& spec) {
  Gen g(spec);
  prompts_syntax(g);
  prompts_fields(g);
  prompts_values(g);
  prompts_encoding_and_ids(g);
  prompts_near_the_size_limit(g);
  stage_records(g);
  control_records(g);
  return std::move(g.out);
}

}  // namespace fleet::test
