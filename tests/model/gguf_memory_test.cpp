// A stage maps and keeps only its layers of a GGUF file, for every type fleet runs: loading
// layers [1, 3) of a synthetic GGUF (TinyLlama widths, 4 layers, every row a multiple of 256 so
// K-quants are used as such) and running a first forward raises this process's RSS by at most
// 1.10x the bytes the engine keeps for those layers (block-quantized matrices repacked for q8
// activations, whose file pages are then released; the others as loaded), and the loader's
// matrices are the file's bytes (zero-copy views) for every type it keeps compact.
#include <malloc.h>

#include <cmath>
#include <filesystem>

#include "engine/stage_engine.h"
#include "model/model_writer.h"
#include "test_support.h"
#include "util/process_memory.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;

// The synthetic file of this type, written once per build tree.
std::string synthetic_gguf(const std::string& type) {
  const fs::path path = fs::path(FLEET_BINARY_DIR) / "models" / ("llama-1b-4l-" + type + ".gguf");
  if (!fs::exists(path)) {
    fs::create_directories(path.parent_path());
    write_synthetic_gguf(synth_shape("llama-1b-4l"), parse_gguf_write_type(type), 1, path.string());
  }
  return path.string();
}

size_t layer_memory_bytes(const StageWeights& w) {
  size_t n = 0;
  for (const auto& l : w.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) n += m->bytes();
    n += (l.attn_norm.size() + l.ffn_norm.size()) * 4;
  }
  return n;
}

class GgufStageMemory : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufStageMemory, LoadingTwoLayersCostsOnlyThoseLayers) {
  const std::string type = GetParam();
  const std::string model = synthetic_gguf(type);
  malloc_trim(0);  // heap memory an earlier type's engine freed would otherwise be reused unseen
  const size_t rss_before = resident_bytes();
  ModelSource src = open_model(model);
  ASSERT_EQ(src.config.dim, 2048);
  ASSERT_EQ(src.config.n_layers, 4);
  LoadOptions lo;
  lo.layer_begin = 1;
  lo.layer_end = 3;
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

  const size_t file_bytes = layer_file_bytes(src, 1, 3);
  // What the engine keeps: the repacked copies of block-quantized matrices (q8 activations,
  // the default; the file's pages behind them are released), the others as loaded.
  const size_t memory_bytes = engine.layer_bytes();
  const double growth = static_cast<double>(rss_after) - static_cast<double>(rss_before);
  std::printf("%s: layers [1,3) %.1f MiB in the file, %.1f MiB in memory (%s activations, repacked in %.2f s); "
              "RSS growth %.1f MiB = %.3fx\n",
              type.c_str(), static_cast<double>(file_bytes) / (1 << 20), static_cast<double>(memory_bytes) / (1 << 20),
              engine.activations(), engine.repack_seconds(), growth / (1 << 20), growth / static_cast<double>(memory_bytes));
  bool views = true;
  for (const auto& l : w->layers)
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) views = views && m->owned.empty();
  if (type != "f16") {  // the loader keeps every other type as stored: views of the mapped file
    EXPECT_TRUE(views);
    EXPECT_NEAR(static_cast<double>(layer_memory_bytes(*w)), static_cast<double>(file_bytes), 64.0 * 1024);
  }
  EXPECT_LE(growth, 1.10 * static_cast<double>(memory_bytes));
  EXPECT_GE(growth, 0.9 * static_cast<double>(memory_bytes));  // the layers really were read
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgufStageMemory,
                         ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k",
                                           "q5_k", "q6_k"));

}  // namespace
}  // namespace fleet
