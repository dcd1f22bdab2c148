// A stage maps and keeps only its layers: loading layers [2, 4) of a synthetic ~1B model
// (TinyLlama shape, bf16, ~2.2 GB on disk) and running a first forward raises this process's
// RSS by at most 1.15x the bytes of those layers' weights.
#include <filesystem>

#include "engine/stage_engine.h"
#include "model/model_writer.h"
#include "synthetic_models.h"
#include "test_support.h"
#include "util/process_memory.h"

namespace fleet {
namespace {

TEST(StageMemory, LoadingTwoLayersOfOneBillionModelCostsOnlyThoseLayers) {
  const std::string model = test::synthetic_1b();
  const size_t rss_before = resident_bytes();
  ModelSource src = open_model(model);
  ASSERT_EQ(src.config.dim, 2048);
  ASSERT_EQ(src.config.n_layers, 22);
  LoadOptions lo;
  lo.layer_begin = 2;
  lo.layer_end = 4;
  auto w = std::make_shared<StageWeights>(load_stage_weights(src, lo));
  StageEngine engine(w);
  auto cache = engine.new_cache(64);
  const int n = 8;
  std::vector<float> hidden(static_cast<size_t>(n) * 2048);
  for (size_t i = 0; i < hidden.size(); ++i) hidden[i] = static_cast<float>(i % 17) * 0.01f - 0.08f;
  SeqChunk ch{cache.get(), 0, n};
  engine.forward_layers({&ch, 1}, hidden.data());
  for (float x : hidden) ASSERT_TRUE(std::isfinite(x));
  const size_t rss_after = resident_bytes();

  const size_t layer_bytes = layer_file_bytes(src, 2, 4);
  size_t model_bytes = 0;
  for (auto& [name, t] : src.store->tensors()) model_bytes += t.nbytes;
  const double growth = static_cast<double>(rss_after - rss_before);
  std::printf("model %.1f MiB on disk; layers [2,4): %.1f MiB; RSS growth %.1f MiB = %.3fx the layers\n",
              static_cast<double>(model_bytes) / (1 << 20), static_cast<double>(layer_bytes) / (1 << 20),
              growth / (1 << 20), growth / static_cast<double>(layer_bytes));
  for (const auto& l : w->layers)  // bf16 file, bf16 in memory: views of the mapped file, no copies
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) EXPECT_TRUE(m->owned.empty());
  EXPECT_LE(growth, 1.15 * static_cast<double>(layer_bytes));
  EXPECT_GE(growth, 0.9 * static_cast<double>(layer_bytes));  // the layers really were read
}

}  // namespace
}  // namespace fleet
