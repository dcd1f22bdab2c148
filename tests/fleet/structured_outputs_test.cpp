// Structured outputs through the fleet (issue 17): requests with a response_format on the
// prompts topic, SmolLM2-135M-Instruct (Q4_1) in 2 stages with stage 1 (the sampling tail) on two
// replicas. Every output is the in-process engine's with the same grammar (`fleet generate
// --response-format`), parses as JSON, and ends with "stop"; greedy requests take the one-check
// path, sampled ones (temperature 0.8, no top_k) the full-vocabulary mask. Then one replica of the
// last stage is killed with SIGKILL mid-output: the requests it sampled are taken over, the
// matcher rebuilt from response_format and the tokens in Redis, and their outputs stay identical.
#include <httplib.h>

#include <csignal>

#include <nlohmann/json.hpp>

#include "fleet/deployment.h"
#include "generate/batched_generate.h"
#include "generate/generate.h"
#include "grammar/response_format.h"
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
};

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
  return out;
}

constexpr int kMaxTokens = 80;

std::pair<std::string, std::string> record_of(const Request& r) {
  json j = {{"id", r.id}, {"prompt", r.prompt}, {"max_tokens", kMaxTokens}, {"temperature", r.temperature},
            {"response_format", r.response_format}};
  if (r.temperature > 0) j["seed"] = r.seed;
  return {r.id, j.dump()};
}

// What `fleet generate --response-format` gives for each request.
std::map<std::string, GenerateResult> in_process(const std::vector<Request>& rs) {
  ModelSource src = open_model(smollm2_gguf());
  StageEngine engine(std::make_shared<StageWeights>(load_stage_weights(src, LoadOptions{})), 1);
  auto tok = Tokenizer::load(smollm2_gguf());
  std::map<std::string, GenerateResult> out;
  for (const Request& r : rs) {
    GenerateParams gp;
    gp.max_tokens = kMaxTokens;
    gp.sampling.temperature = static_cast<float>(r.temperature);
    gp.sampling.seed = r.seed;
    gp.grammar = grammar_for_response_format(r.response_format);
    out[r.id] = generate(engine, *tok, encode_prompt(*tok, r.prompt), gp);
  }
  return out;
}

void expect_same_json(const std::map<std::string, Completion>& got, const std::map<std::string, GenerateResult>& want) {
  for (const auto& [id, w] : want) {
    ASSERT_TRUE(got.count(id)) << id;
    const Completion& c = got.at(id);
    EXPECT_EQ(c.error_code, "") << id;
    EXPECT_EQ(c.text, w.text) << id;
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
  // Every token of these requests was chosen under a mask: the last stage's replicas observed at
  // least that many masks (fleet_grammar_mask_seconds).
  int tokens = 0;
  for (const auto& [id, c] : got_first) tokens += c.completion_tokens;
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
