// A real chat model through the fleet: SmolLM2-135M-Instruct from its GGUF file (Q4_1 weights,
// its own tokenizer and Jinja chat template, no model.tokenizer in the config), in 2 and in 3
// stages over the test stack. Chat requests without a system message must produce the greedy
// tokens of Hugging Face transformers on the same weights (tests/fixtures/smollm2/reference.json),
// which means stage 0 rendered the model's own template (with its default system message) and
// tokenized it exactly as the reference did. Those runs use f32 activations (the mode that
// matches transformers); the default mode for this Q4_1 file (q8 activations) must equal the
// in-process engine (what `fleet generate` runs), also when stage 1's replicas run different
// kernel variants (FLEET_KERNELS forced per worker).
#include <nlohmann/json.hpp>

#include "engine/kernels/kernel_select.h"
#include "fleet/deployment.h"
#include "generate/generate.h"
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

}  // namespace
}  // namespace fleet::test
