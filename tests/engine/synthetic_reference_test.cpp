// The forward pass of the architecture variants without a real checkpoint in the tree (Llama 3
// RoPE scaling, Mistral, Qwen2 q/k/v biases) against Hugging Face transformers' logits for the
// same synthetic weights: tests/fixtures/synthetic/hf_logits_<shape>.json, made by
// scripts/reference/make-hf-logits-synthetic from `fleet synth --shape SHAPE --dtype f32 --seed 3`.
// (tiny-qwen3 has no fixture: the transformers that runs on the reference torch 1.13 has no Qwen3.)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/stage_engine.h"
#include "model/model_writer.h"
#include "model/weights.h"
#include "prefill_logits.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::prefill_logits;

class SyntheticReference : public ::testing::TestWithParam<std::string> {};

TEST_P(SyntheticReference, LogitsMatchTransformersAtEveryPosition) {
  const std::string shape = GetParam();
  auto fx = nlohmann::json::parse(test::read_file(test::fixture("synthetic/hf_logits_" + shape + ".json")));
  ASSERT_EQ(fx["shape"], shape);
  ASSERT_EQ(fx["seed"], 3);
  ASSERT_EQ(fx["dtype"], "f32");
  const auto tokens = fx["tokens"].get<std::vector<int32_t>>();
  const int V = fx["vocab_size"].get<int>();
  ASSERT_EQ(fx["logits"].size(), tokens.size());

  const ModelConfig cfg = synth_shape(shape);
  ASSERT_EQ(cfg.vocab_size, V);
  const std::string dir = test::scratch_dir("synthetic-ref-" + shape);
  write_synthetic_model(cfg, DType::F32, 3, dir);
  LoadOptions lo;
  lo.weight_dtype = "f32";
  auto w = std::make_shared<StageWeights>(load_stage_weights(open_model(dir), lo));
  StageEngine e(w);
  ASSERT_EQ(e.config().vocab_size, V);
  auto logits = prefill_logits(e, tokens);

  float max_err = 0, max_ref = 0;
  size_t worst_pos = 0;
  for (size_t p = 0; p < tokens.size(); ++p) {
    const auto& row = fx["logits"][p];
    ASSERT_EQ(row.size(), static_cast<size_t>(V));
    for (int v = 0; v < V; ++v) {
      const float ref = row[static_cast<size_t>(v)].get<float>();
      const float err = std::fabs(logits[p * static_cast<size_t>(V) + static_cast<size_t>(v)] - ref);
      max_ref = std::max(max_ref, std::fabs(ref));
      if (err > max_err) max_err = err, worst_pos = p;
    }
  }
  std::printf("%s: %zu positions x %d logits, max abs error vs transformers = %.3g (at position %zu; "
              "max |logit| %.3g)\n",
              shape.c_str(), tokens.size(), V, max_err, worst_pos, max_ref);
  EXPECT_LT(max_err, 1e-4f) << shape << " worst at position " << worst_pos;
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SyntheticReference, ::testing::Values("tiny-llama3", "tiny-mistral", "tiny-qwen2"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace fleet
