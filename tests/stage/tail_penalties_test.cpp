// Penalties and logprobs at the sampling tail (MemoryFleet: stories260K in three stages): the
// fleet's tokens, text and per-token logprobs equal generate()'s with the same parameters, also
// when the last stage is restarted mid-request (its state rebuilt from Redis).
#include <gtest/gtest.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "contracts/result_events.h"
#include "generate/generate.h"
#include "model/weights.h"
#include "stage/memory_fleet.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace fleet::test {
namespace {

using json = nlohmann::json;

GenerateResult reference(const std::string& prompt, int max_tokens, double freq, double pres, int top) {
  static auto weights = std::make_shared<StageWeights>(load_stage_weights(open_model(stories_bin()), {}));
  static StageEngine engine(weights, 1);
  static auto tok = Tokenizer::load(stories_tok());
  GenerateParams p;
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0;
  p.sampling.frequency_penalty = freq;
  p.sampling.presence_penalty = pres;
  p.top_logprobs = top;
  return generate(engine, *tok, encode_prompt(*tok, prompt), p);
}

TEST(StageTail, PenaltiesAndLogprobsEqualGenerateAcrossATailRestart) {
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog"};
  const int n = 40;
  MemoryFleet f;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const json rec = {{"id", "p" + std::to_string(i)}, {"prompt", prompts[i]}, {"max_tokens", n},
                      {"temperature", 0}, {"frequency_penalty", 0.9}, {"presence_penalty", 0.4},
                      {"logprobs", true}, {"top_logprobs", 3}};
    f.publish(f.config().prompts_topic(), "p" + std::to_string(i), rec.dump());
  }
  for (int round = 0; round < 100000 && f.results_log().size() < 20; ++round) ASSERT_TRUE(f.deliver_once());
  f.restart_stage(2);  // the tail's sampling state is rebuilt from Redis (generated tokens included)
  f.deliver_all();

  std::map<std::string, std::vector<ResultEvent>> tokens;
  std::map<std::string, std::string> text;
  for (const std::string& v : f.results_log()) {
    auto ev = parse_result_event(v);
    ASSERT_TRUE(ev.has_value()) << v;
    if (ev->type == ResultEvent::Type::Token) tokens[ev->id].push_back(*ev);
    if (ev->type == ResultEvent::Type::Done) text[ev->id] = ev->text;
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string id = "p" + std::to_string(i);
    const GenerateResult ref = reference(prompts[i], n, 0.9, 0.4, 3);
    EXPECT_EQ(text[id], ref.text) << id;
    ASSERT_EQ(tokens[id].size(), ref.tokens.size()) << id;
    for (size_t k = 0; k < ref.tokens.size(); ++k) {
      const ResultEvent& ev = tokens[id][k];
      EXPECT_EQ(ev.token_id, ref.tokens[k]);
      ASSERT_TRUE(ev.logprobs.has_value()) << id << " token " << k;
      EXPECT_EQ(ev.logprobs->sampled.logprob, ref.logprobs[k].sampled) << id << " token " << k;
      ASSERT_EQ(ev.logprobs->top.size(), 3u);
      for (size_t a = 0; a < 3; ++a) {
        EXPECT_EQ(ev.logprobs->top[a].token_id, ref.logprobs[k].top[a].first);
        EXPECT_EQ(ev.logprobs->top[a].logprob, ref.logprobs[k].top[a].second);
      }
    }
    // The penalties did something: the greedy text without them differs.
    EXPECT_NE(ref.text, reference(prompts[i], n, 0, 0, -1).text) << id;
  }
}

}  // namespace
}  // namespace fleet::test
