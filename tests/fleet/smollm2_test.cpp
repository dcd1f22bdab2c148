// A real chat model through the fleet: SmolLM2-135M-Instruct from its GGUF file (Q4_1 weights,
// its own tokenizer and Jinja chat template, no model.tokenizer in the config), in 2 and in 3
// stages over the test stack. Chat requests without a system message must produce the greedy
// tokens of Hugging Face transformers on the same weights (tests/fixtures/smollm2/reference.json),
// which means stage 0 rendered the model's own template (with its default system message) and
// tokenized it exactly as the reference did. Those runs use f32 activations (the mode that
// matches transformers); the default mode for this Q4_1 file (q8 activations) must equal the
// in-process engine (what `fleet generate` runs), also when stage 1's replicas run different
// kernel variants (FLEET_KERNELS forced per worker).
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/kernels/kernel_select.h"
#include "fleet/deployment.h"
#include "generate/generate.h"
#include "state/membership.h"
#include "state/redis_client.h"
#include "support/stack_env.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace fleet::test {
namespace {

constexpr int kTokens = 32;

std::vector<std::pair<std::string, std::string>> chat_records(const nlohmann::json& ref, const std::string& tag) {
  std::vector<std::pair<std::string, std::string>> records;
  int i = 0;
  for (const auto& p : ref.at("prompts")) {
    const std::string id = "smollm2-" + tag + "-" + std::to_string(i++);
    nlohmann::json r = {{"id", id}, {"messages", p.at("messages")}, {"max_tokens", kTokens}, {"temperature", 0}};
    records.emplace_back(id, r.dump());
  }
  return records;
}

void expect_reference_tokens(std::vector<StageSpec> stages, const std::string& tag) {
  const nlohmann::json ref = nlohmann::json::parse(read_file(fixture("smollm2/reference.json")));
  DeploymentOptions o;
  o.activations = "f32";
  o.name = "smollm2-" + tag;
  o.model_path = smollm2_gguf();
  o.model_name = "smollm2-135m-instruct";
  o.stages = std::move(stages);
  o.kv_budget = "256MiB";
  Deployment d(o);
  const auto records = chat_records(ref, tag);
  const auto got = d.run(records, std::chrono::seconds(300));
  size_t i = 0;
  for (const auto& p : ref.at("prompts")) {
    const std::string& id = records[i++].first;
    ASSERT_TRUE(got.count(id)) << id;
    const Completion& c = got.at(id);
    EXPECT_EQ(c.error_code, "") << id;
    EXPECT_EQ(c.prompt_tokens, static_cast<int>(p.at("prompt_ids").size())) << id;
    std::vector<int32_t> want = p.at("greedy_ids").get<std::vector<int32_t>>();
    want.resize(kTokens);
    EXPECT_EQ(c.tokens, want) << id << ": got '" << c.text << "', transformers: '"
                              << p.at("greedy_text").get<std::string>() << "'";
  }
}

TEST(FleetSmolLM2, ChatInTwoStagesGivesTransformersGreedyTokens) {
  expect_reference_tokens({{0, 15, 1}, {15, 30, 1}}, "2");
}

TEST(FleetSmolLM2, ChatInThreeStagesGivesTransformersGreedyTokens) {
  expect_reference_tokens({{0, 8, 1}, {8, 21, 1}, {21, 30, 1}}, "3");
}

TEST(FleetSmolLM2, Q8ActivationsOnReplicasOfDifferentKernelVariantsEqualTheInProcessEngine) {
  const nlohmann::json ref = nlohmann::json::parse(read_file(fixture("smollm2/reference.json")));
  // What `fleet generate` computes: the whole model in one engine, default (q8) activations.
  ModelSource src = open_model(smollm2_gguf());
  auto weights = std::make_shared<StageWeights>(load_stage_weights(src, LoadOptions{}));
  StageEngine engine(weights, 1);
  ASSERT_STREQ(engine.activations(), "q8");
  auto tok = Tokenizer::load(smollm2_gguf());
  GenerateParams gp;
  gp.max_tokens = kTokens;
  gp.sampling.temperature = 0;
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : ref.at("prompts"))
    want.push_back(generate(engine, *tok, p.at("prompt_ids").get<std::vector<int32_t>>(), gp).tokens);

  // Stage 1 on two replicas, each forced to a different variant this CPU runs.
  std::vector<std::string> variants = kernels::supported_kernel_variants();
  ASSERT_GE(variants.size(), 2u);
  variants.erase(variants.begin(), variants.end() - 2);  // the two fastest (scalar is slow)
  std::printf("stage 1 replicas: FLEET_KERNELS=%s and %s\n", variants[0].c_str(), variants[1].c_str());
  DeploymentOptions o;
  o.name = "smollm2-q8";
  o.model_path = smollm2_gguf();
  o.model_name = "smollm2-135m-instruct";
  o.stages = {{0, 15, 1}, {15, 30, 2, variants}};
  o.kv_budget = "256MiB";
  Deployment d(o);
  const auto records = chat_records(ref, "q8");
  const auto got = d.run(records, std::chrono::seconds(300));
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string& id = records[i].first;
    ASSERT_TRUE(got.count(id)) << id;
    EXPECT_EQ(got.at(id).error_code, "") << id;
    EXPECT_EQ(got.at(id).tokens, want[i]) << id << ": got '" << got.at(id).text << "'";
  }
  for (const std::string& v : variants) {  // both replicas joined (equal probes) and said which kernels they run
    bool found = false;
    for (size_t w = 0; w < d.workers().size(); ++w)
      found = found || read_file(d.workers()[w].log).find("kernels " + v + ", activations q8") != std::string::npos;
    EXPECT_TRUE(found) << v;
  }
}

// Pipelined micro-batches (docs/pipelining.md): 32 requests in a compute-balanced 2-stage cut,
// one thread per worker. Stage 0 splits them into micro-batches; every text equals the in-process
// engine's, and the two stages computed at the same time: their busy times (wall time inside
// batches, from the workers' heartbeats) add up to more than the run's wall time.
TEST(FleetSmolLM2, MicroBatchesKeepTextsAndKeepBothStagesBusy) {
  const std::vector<std::string> prompts = {"Once upon a time, in a small village,", "The dragon opened its eyes and",
                                            "In the year 2150, humans finally", "My favourite place in the whole world is"};
  constexpr int kMax = 48, kRequests = 32;
  ModelSource src = open_model(smollm2_gguf());
  StageEngine engine(std::make_shared<StageWeights>(load_stage_weights(src, LoadOptions{})), 1);
  auto tok = Tokenizer::load(smollm2_gguf());
  GenerateParams gp;
  gp.max_tokens = kMax;
  gp.sampling.temperature = 0;
  std::vector<std::string> want;
  for (const std::string& p : prompts) want.push_back(generate(engine, *tok, encode_prompt(*tok, p), gp).text);

  DeploymentOptions o;
  o.name = "smollm2-micro";
  o.model_path = smollm2_gguf();
  o.model_name = "smollm2-micro";
  o.stages = {{0, 19, 1}, {19, 30, 1}};  // fleet plan --balance compute
  o.kv_budget = "256MiB";
  Deployment d(o);
  const std::string stem = unique_name("micro") + "-";
  auto records = [&](const std::string& tag, int n, int max_tokens) {
    std::vector<std::pair<std::string, std::string>> r;
    for (int i = 0; i < n; ++i)
      r.emplace_back(stem + tag + std::to_string(i),
                     greedy_record(stem + tag + std::to_string(i), prompts[static_cast<size_t>(i) % prompts.size()], max_tokens));
    return r;
  };
  // Each worker's batch_stats once it has released every request and run more than
  // `after_batches` batches (heartbeats refresh them every second).
  RedisClient redis(redis_url());
  Membership m(redis, std::chrono::seconds(3));
  auto settled_stats = [&](const std::vector<int64_t>& after_batches) {
    std::vector<nlohmann::json> stats(2);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      int settled = 0;
      for (size_t w = 0; w < 2; ++w)
        if (auto info = m.get(d.worker_id(w)); info && info->batch_stats.value("batches", int64_t{0}) > after_batches[w] &&
                                                info->batch_stats.value("requests", -1) == 0) {
          stats[w] = info->batch_stats;
          ++settled;
        }
      if (settled == 2) return stats;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "no settled batch_stats from both workers";
        return stats;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // waiting for the next heartbeat
    }
  };
  d.run(records("warm", 2, 4));  // topics, partitions and connections warm: the run below is steady state
  const auto before = settled_stats({0, 0});
  ASSERT_FALSE(HasFailure());

  const auto batch = records("r", kRequests, kMax);
  const auto t0 = std::chrono::steady_clock::now();
  const auto got = d.run(batch, std::chrono::seconds(300));
  const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (int i = 0; i < kRequests; ++i) {
    const std::string& id = batch[static_cast<size_t>(i)].first;
    ASSERT_TRUE(got.count(id)) << id;
    EXPECT_EQ(got.at(id).error_code, "") << id;
    EXPECT_EQ(got.at(id).text, want[static_cast<size_t>(i) % want.size()]) << id;
  }
  const auto after = settled_stats({before[0].value("batches", int64_t{0}), before[1].value("batches", int64_t{0})});
  ASSERT_FALSE(HasFailure());
  const double busy0 = after[0].value("busy_ms", 0.0) - before[0].value("busy_ms", 0.0);
  const double busy1 = after[1].value("busy_ms", 0.0) - before[1].value("busy_ms", 0.0);
  const int64_t batches0 = after[0].value("batches", int64_t{0}) - before[0].value("batches", int64_t{0});
  std::printf("wall %.0f ms; busy: stage 0 %.0f ms in %lld batches, stage 1 %.0f ms\n", wall_ms, busy0,
              static_cast<long long>(batches0), busy1);
  EXPECT_GT(busy0 + busy1, wall_ms) << "the two stages never computed at the same time";
  // Micro-batches: stage 0 ran more batches than one per decode step (48) plus the prefill.
  EXPECT_GT(batches0, kMax + kRequests);
}

}  // namespace
}  // namespace fleet::test
