// A real chat model through the fleet: SmolLM2-135M-Instruct from its GGUF file (Q4_1 weights,
// its own tokenizer and Jinja chat template, no model.tokenizer in the config), in 2 and in 3
// stages over the test stack. Chat requests without a system message must produce the greedy
// tokens of Hugging Face transformers on the same weights (tests/fixtures/smollm2/reference.json),
// which means stage 0 rendered the model's own template (with its default system message) and
// tokenized it exactly as the reference did.
#include <nlohmann/json.hpp>

#include "fleet/deployment.h"
#include "test_support.h"

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

}  // namespace
}  // namespace fleet::test
