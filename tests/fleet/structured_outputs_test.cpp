// Structured outputs through the fleet (issue 17): requests with a response_format on the
// prompts topic, SmolLM2-135M-Instruct (Q4_1) in 2 stages with stage 1 (the sampling tail) on two
// replicas. Every output is the in-process engine's with the same grammar (`fleet generate
// --response-format`), parses as JSON, and ends with "stop"; greedy requests take the one-check
// path, sampled ones (temperature 0.8, no top_k) the full-vocabulary mask. Then one replica of the
// last stage is killed with SIGKILL mid-output: the requests it sampled are taken over, the
// matcher rebuilt from response_format and the tokens in Redis, and their outputs stay identical.
// Chat requests with tools ride along: a named tool_choice and "required" (the grammar forces a
// call), "auto", and a conversation holding an earlier call and its result; the done event's
// tool_calls equal the in-process text read by the same parser, named tools among the request's.
#include <httplib.h>

#include <csignal>

#include <nlohmann/json.hpp>

#include "fleet/deployment.h"
#include "generate/batched_generate.h"
#include "generate/generate.h"
#include "chat/chat.h"
#include "grammar/response_format.h"
#include "grammar/tool_call_grammar.h"
#include "tools/tool_calls.h"
#include "metrics/prometheus_parse.h"
#include "state/membership.h"
#include "state/redis_client.h"
#include "support/stack_env.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace fleet::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct Request {
  std::string id, prompt;
  json response_format;
  double temperature = 0;
  uint64_t seed = 0;
  json messages, tools, tool_choice;  // chat requests with tools
};

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                   "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "description": "Adds two integers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "search", "description": "Searches the web",
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "maxLength": 60}},
                   "required": ["query"], "additionalProperties": false}}}
])");

std::vector<Request> requests(const std::string& stem) {
  const json schemas = json::parse(read_file(fixture("structured_outputs/schemas.json")));
  const std::vector<std::pair<std::string, std::string>> asks = {
      {"person", "Describe a person as JSON:"},
      {"color_enum_const", "Name a fruit and its colour, as JSON:"},
      {"order_items", "A shop order as JSON:"},
      {"code_pattern", "An airport code and gate as JSON:"},
  };
  std::vector<Request> out;
  for (const auto& [name, prompt] : asks) {
    const json rf = {{"type", "json_schema"}, {"json_schema", {{"name", name}, {"schema", schemas.at(name)}, {"strict", true}}}};
    out.push_back({stem + name + "-greedy", prompt, rf, 0, 0});
    out.push_back({stem + name + "-sampled", prompt, rf, 0.8, 42});
  }
  out.push_back({stem + "json-object", "Some facts about the moon, as a JSON object:", {{"type", "json_object"}}, 0, 0});
  const json ask = json::array({{{"role", "user"}, {"content", "What is the weather in Paris?"}}});
  const json named = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  out.push_back({stem + "tools-named", "", nullptr, 0, 0, ask, kTools, named});
  out.push_back({stem + "tools-required-sampled", "", nullptr, 0.8, 42,
                 json::array({{{"role", "user"}, {"content", "What is 17 plus 25?"}}}), kTools, "required"});
  out.push_back({stem + "tools-auto", "", nullptr, 0, 0, ask, kTools, "auto"});
  const json history = json::parse(R"([{"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 18, \"sky\": \"clear\"}"}])");
  out.push_back({stem + "tools-history", "", nullptr, 0, 0, history, kTools, "auto"});
  return out;
}

constexpr int kMaxTokens = 80;

std::pair<std::string, std::string> record_of(const Request& r) {
  json j = {{"id", r.id}, {"max_tokens", kMaxTokens}, {"temperature", r.temperature}};
  if (r.tools.is_null()) {
    j["prompt"] = r.prompt;
    j["response_format"] = r.response_format;
  } else {
    j["messages"] = r.messages;
    j["tools"] = r.tools;
    j["tool_choice"] = r.tool_choice;
  }
  if (r.temperature > 0) j["seed"] = r.seed;
  return {r.id, j.dump()};
}

// What `fleet generate --response-format` gives for each request.
std::map<std::string, GenerateResult> in_process(const std::vector<Request>& rs) {
  ModelSource src = open_model(smollm2_gguf());
  StageEngine engine(std::make_shared<StageWeights>(load_stage_weights(src, LoadOptions{})), 1);
  auto tok = Tokenizer::load(smollm2_gguf());
  const ChatTemplate tmpl = chat_template_for(*tok, smollm2_gguf());
  std::map<std::string, GenerateResult> out;
  for (const Request& r : rs) {
    GenerateParams gp;
    gp.max_tokens = kMaxTokens;
    gp.sampling.temperature = static_cast<float>(r.temperature);
    gp.sampling.seed = r.seed;
    if (r.tools.is_null()) {
      gp.grammar = grammar_for_response_format(r.response_format);
      out[r.id] = generate(engine, *tok, encode_prompt(*tok, r.prompt), gp);
      continue;
    }
    // As stage 0 renders it (fleet's Hermes block: SmolLM2's template ignores tools) and as the
    // last stage constrains it.
    std::vector<ChatMessage> msgs;
    for (const json& m : r.messages)
      msgs.push_back(chat_message(m.at("role"), m.at("content").is_string() ? m.at("content").get<std::string>() : "", m));
    ChatInput in = chat_input_with_tools(msgs, r.tools, template_renders_tools(tmpl));
    ChatRenderOptions opt;
    opt.tools = in.tools;
    gp.grammar = grammar_for_tool_choice(r.tools, r.tool_choice, true, tool_call_format(tmpl, template_renders_tools(tmpl)));
    out[r.id] = generate(engine, *tok, tok->encode(tmpl.render(in.messages, opt), {.allow_special = true}), gp);
  }
  return out;
}

// Tool requests: the same text, and the done event's calls are what the parser reads from it.
void expect_same_calls(const std::string& id, const Completion& c, const GenerateResult& w) {
  const ParsedToolCalls p = parse_tool_calls(w.text, kTools, id, w.finish_reason == "length");
  EXPECT_EQ(c.finish_reason, p.calls.empty() || w.finish_reason != "stop" ? w.finish_reason : "tool_calls") << id << ": " << c.text;
  ASSERT_EQ(c.tool_calls.has_value(), !p.calls.empty()) << id << ": " << c.text;
  if (c.tool_calls) {
    EXPECT_EQ(c.tool_calls->calls, p.calls) << id;
    EXPECT_EQ(c.tool_calls->content, p.content) << id;
  }
  if (id.find("tools-named") != std::string::npos || id.find("tools-required") != std::string::npos) {
    ASSERT_TRUE(c.tool_calls) << id << " (a forced call): " << c.text;
    for (const ToolCall& call : c.tool_calls->calls) {
      if (id.find("named") != std::string::npos) {
        EXPECT_EQ(call.name, "get_weather");
      }
      EXPECT_TRUE(json::parse(call.arguments).is_object()) << call.arguments;
    }
  }
}

void expect_same_json(const std::map<std::string, Completion>& got, const std::map<std::string, GenerateResult>& want) {
  for (const auto& [id, w] : want) {
    ASSERT_TRUE(got.count(id)) << id;
    const Completion& c = got.at(id);
    EXPECT_EQ(c.error_code, "") << id;
    EXPECT_EQ(c.text, w.text) << id;
    if (id.find("-tools-") != std::string::npos) {
      expect_same_calls(id, c, w);
      continue;
    }
    EXPECT_EQ(c.finish_reason, w.finish_reason) << id;
    if (id.find("json-object") != std::string::npos && c.finish_reason == "length") continue;  // unbounded by its grammar
    EXPECT_EQ(c.finish_reason, "stop") << id << ": " << c.text;
    EXPECT_TRUE(json::accept(c.text)) << id << ": " << c.text;
  }
}

TEST(FleetStructuredOutputs, JsonSchemasThroughThePromptsTopicEqualTheInProcessEngineAndSurviveATakeover) {
  DeploymentOptions o;
  o.name = "structured";
  o.model_path = smollm2_gguf();
  o.model_name = "smollm2-structured";
  o.stages = {{0, 19, 1}, {19, 30, 2}};
  o.kv_budget = "256MiB";
  Deployment d(o);

  const std::vector<Request> first = requests(unique_name("so") + "-");
  const auto want_first = in_process(first);
  std::vector<std::pair<std::string, std::string>> records;
  for (const Request& r : first) records.push_back(record_of(r));
  const auto got_first = d.run(records, 300s);
  expect_same_json(got_first, want_first);
  for (const auto& [id, w] : want_first) std::printf("%s: %s\n", id.c_str(), w.text.c_str());
  // Every token of the requests with a grammar was chosen under a mask: the last stage's replicas
  // observed at least that many masks (fleet_grammar_mask_seconds).
  int tokens = 0;
  for (const auto& [id, c] : got_first)  // tool_choice "auto" has no grammar
    if (id.find("tools-auto") == std::string::npos && id.find("tools-history") == std::string::npos) tokens += c.completion_tokens;
  RedisClient redis(d.config().redis.url);
  Membership members(redis, std::chrono::seconds(10));
  double masks = 0, mask_seconds = 0;
  for (size_t w : {size_t{1}, size_t{2}}) {
    std::optional<WorkerInfo> info = members.get(d.worker_id(w));
    ASSERT_TRUE(info && info->metrics_port > 0) << d.log_tails();
    httplib::Client client("127.0.0.1", info->metrics_port);
    auto res = client.Get("/metrics");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    std::string error;
    std::optional<ParsedMetrics> m = parse_prometheus(res->body, &error);
    ASSERT_TRUE(m) << error;
    masks += m->sum("fleet_grammar_mask_seconds_count");
    mask_seconds += m->sum("fleet_grammar_mask_seconds_sum");
  }
  EXPECT_GE(masks, tokens);
  std::printf("%d tokens under a grammar; %.0f masks, %.3f ms each on average\n", tokens, masks,
              masks > 0 ? mask_seconds / masks * 1e3 : 0.0);

  // The same requests again (new ids), one stage-1 replica killed once tokens are flowing.
  std::vector<Request> second = requests(unique_name("so-kill") + "-");
  std::map<std::string, GenerateResult> want_second;
  for (size_t i = 0; i < second.size(); ++i) want_second[second[i].id] = want_first.at(first[i].id);
  ResultCollector results(d.config());
  records.clear();
  std::vector<std::string> ids;
  for (const Request& r : second) {
    records.push_back(record_of(r));
    ids.push_back(r.id);
  }
  d.submit(records);
  ASSERT_TRUE(results.wait_token_events(30, 120s)) << d.log_tails();
  const size_t victim = 1;  // workers: stage 0, then stage 1's two replicas
  d.signal_worker(victim, SIGKILL);
  EXPECT_EQ(d.wait_exit(victim, 10s), 128 + SIGKILL);
  ASSERT_TRUE(results.wait_all_finished(ids, 300s)) << d.log_tails();
  results.drain(2s);
  expect_same_json(results.completions(), want_second);
  for (const std::string& id : ids) {
    const RequestTrace* t = results.trace(id);
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(ResultCollector::delivery_problems(*t).empty()) << id;  // each index once, in order
  }
}

// `fleet generate --parallel` (continuous batching in one process) with a response format: each
// sequence has its own matcher; the texts equal one-at-a-time generation (batch invariance).
TEST(FleetStructuredOutputs, BatchedGenerationWithAGrammarEqualsOneAtATime) {
  ModelSource src = open_model(smollm2_gguf());
  StageEngine engine(std::make_shared<StageWeights>(load_stage_weights(src, LoadOptions{})), 1);
  auto tok = Tokenizer::load(smollm2_gguf());
  const json schemas = json::parse(read_file(fixture("structured_outputs/schemas.json")));
  GenerateParams gp;
  gp.max_tokens = kMaxTokens;
  gp.sampling.temperature = 0.8f;
  gp.sampling.top_k = 8;  // the shortcut path (the 8 best allowed tokens, when among the 16 highest)
  gp.sampling.seed = 3;
  gp.grammar = grammar_for_response_format({{"type", "json_schema"}, {"json_schema", {{"schema", schemas.at("order_items")}}}});
  const std::vector<std::string> prompts = {"A shop order as JSON:", "An order for two books:", "Order 7, as JSON:"};
  std::vector<std::vector<int32_t>> encoded;
  for (const std::string& p : prompts) encoded.push_back(encode_prompt(*tok, p));
  BatchedGenerateOptions bo;
  bo.parallel = 3;
  const BatchedGenerateResult batched = generate_batched(engine, *tok, encoded, gp, bo);
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateParams one = gp;
    one.sampling.seed = gp.sampling.seed + i;  // request i of a batch uses seed + i
    const GenerateResult want = generate(engine, *tok, encoded[i], one);
    EXPECT_EQ(batched.results[i].text, want.text) << i;
    EXPECT_EQ(batched.results[i].finish_reason, "stop") << i << ": " << want.text;
    EXPECT_TRUE(json::accept(batched.results[i].text)) << batched.results[i].text;
  }
}

}  // namespace
}  // namespace fleet::test
