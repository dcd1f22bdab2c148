// Block-quantized (and f16) weights in the matmul kernel: for every supported ggml type, the
// matmul is bitwise equal to the f32 matmul of the dequantized matrix (so it agrees with the
// gguf package's dequantize to the last bit), and batch-invariant: a token's outputs are the
// same alone or among others. Also the real SmolLM2 GGUF (Q4_1 + Q8_0) loads by layer range as
// zero-copy views.
#include <cstring>
#include <random>

#include "engine/matmul.h"
#include "model/gguf_model.h"
#include "model/weights.h"
#include "random_matrix.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::dequantized;
using test::random_matrix;

TEST(QuantizedMatmul, EqualsF32MatmulOfDequantizedWeightsAndIsBatchInvariant) {
  ThreadPool pool(2);
  for (DType t : {DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(t));
    const int64_t rows = 13, cols = 512, n_tokens = 7;
    const Matrix q = random_matrix(t, rows, cols, 7u + static_cast<uint32_t>(t));
    const Matrix f = dequantized(q);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(static_cast<size_t>(n_tokens * cols));
    for (float& v : x) v = nd(rng);
    std::vector<float> yq(static_cast<size_t>(n_tokens * rows)), yf(yq.size()), y1(static_cast<size_t>(rows));
    matmul(q, x.data(), n_tokens, yq.data(), pool);
    matmul(f, x.data(), n_tokens, yf.data(), pool);
    EXPECT_EQ(std::memcmp(yq.data(), yf.data(), yq.size() * 4), 0);
    for (int64_t tok = 0; tok < n_tokens; ++tok) {  // each token alone
      matmul(q, x.data() + tok * cols, 1, y1.data(), pool);
      EXPECT_EQ(std::memcmp(y1.data(), yq.data() + tok * rows, y1.size() * 4), 0) << "token " << tok;
    }
    bool nonzero = false;
    for (float v : yq) nonzero |= v != 0.f && std::isfinite(v);
    EXPECT_TRUE(nonzero);
  }
}

TEST(QuantizedMatmul, EngineQ8_0IsGgufQ8_0WithPaddedRows) {
  // weight_dtype q8_0 quantizes f32 rows into ggml's Q8_0 blocks (f16 scale); a row of 40
  // values takes two blocks, the second zero-padded.
  std::vector<float> w(3 * 40);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i)) * 0.5f;
  TensorRef t;
  t.name = "w";
  t.dtype = DType::F32;
  t.shape = {3, 40};
  t.data = reinterpret_cast<const uint8_t*>(w.data());
  t.nbytes = w.size() * 4;
  Matrix m = matrix_from_tensor(t, DType::Q8_0);
  ASSERT_EQ(m.dtype, DType::Q8_0);
  EXPECT_EQ(m.row_bytes(), 2u * 34u);
  std::vector<float> row(40);
  m.row_to_f32(1, row.data());
  for (int i = 0; i < 40; ++i) EXPECT_NEAR(row[static_cast<size_t>(i)], w[static_cast<size_t>(40 + i)], 0.5f / 127.f);
}

TEST(GgufModel, SmolLM2LoadsByLayerRangeAsZeroCopyViews) {
  ModelSource src = open_model(test::smollm2_gguf());
  const ModelConfig& c = src.config;
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.dim, 576);
  EXPECT_EQ(c.hidden_dim, 1536);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.rope_layout, RopeLayout::Adjacent);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);

  LoadOptions first;
  first.layer_end = 2;
  StageWeights w = load_stage_weights(src, first);
  EXPECT_EQ(w.embedding.dtype, DType::Q8_0);
  EXPECT_TRUE(w.embedding.owned.empty());  // a view of the mapped file
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.layers[0].wq.dtype, DType::Q4_1);
  EXPECT_TRUE(w.layers[0].wq.owned.empty());
  EXPECT_FALSE(w.has_head());

  LoadOptions last;
  last.layer_begin = 29;
  StageWeights tail = load_stage_weights(src, last);
  EXPECT_TRUE(tail.has_head());
  EXPECT_EQ(tail.head.dtype, DType::Q8_0);  // tied to token_embd
  EXPECT_EQ(tail.head.data, w.embedding.data);

  LoadOptions f32 = first;
  f32.weight_dtype = "f32";
  StageWeights d = load_stage_weights(src, f32);
  ASSERT_EQ(d.layers[1].w_down.dtype, DType::F32);
  std::vector<float> a(1536), b(1536);
  w.layers[1].w_down.row_to_f32(5, a.data());
  d.layers[1].w_down.row_to_f32(5, b.data());
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace fleet
