// Batch invariance: a sequence's logits are bitwise identical whether it runs alone or in a
// batch of any size with other sequences at other positions, for f32, bf16 and Q8_0 weights,
// and for GGUF files of every type the engine runs, in both activation modes (f32, q8).
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "engine/kernels/kernel_select.h"
#include "engine/matmul.h"
#include "engine/stage_engine.h"
#include "model/model_writer.h"
#include "test_support.h"

namespace fleet {
namespace {

struct Seq {
  std::vector<int32_t> tokens;
  std::unique_ptr<KVCache> cache;
  int done = 0;  // tokens already run
};

using LogitsByStep = std::map<std::pair<int, int>, std::vector<float>>;  // (seq, position) -> logits

// Runs every sequence to its end. Each forward call takes up to `batch` unfinished sequences,
// each contributing a chunk of 1..max_chunk tokens (random), and records the logits of every
// token it ran.
LogitsByStep run(StageEngine& e, std::vector<Seq>& seqs, int batch, int max_chunk, uint32_t seed) {
  const int D = e.config().dim, V = e.config().vocab_size;
  std::mt19937 rng(seed);
  LogitsByStep out;
  for (auto& s : seqs) {
    s.cache = e.new_cache(256);
    s.done = 0;
  }
  for (;;) {
    std::vector<int> picked;
    for (int i = 0; i < static_cast<int>(seqs.size()) && static_cast<int>(picked.size()) < batch; ++i)
      if (seqs[static_cast<size_t>(i)].done < static_cast<int>(seqs[static_cast<size_t>(i)].tokens.size()))
        picked.push_back(i);
    if (picked.empty()) break;
    std::vector<SeqChunk> chunks;
    std::vector<int32_t> ids;
    for (int i : picked) {
      Seq& s = seqs[static_cast<size_t>(i)];
      int left = static_cast<int>(s.tokens.size()) - s.done;
      int n = std::min(left, 1 + static_cast<int>(rng() % static_cast<uint32_t>(max_chunk)));
      chunks.push_back({s.cache.get(), s.done, n});
      ids.insert(ids.end(), s.tokens.begin() + s.done, s.tokens.begin() + s.done + n);
    }
    std::vector<float> hidden(ids.size() * static_cast<size_t>(D)), logits(ids.size() * static_cast<size_t>(V));
    e.embed(ids, hidden.data());
    e.forward_layers(chunks, hidden.data());
    std::vector<int64_t> rows(ids.size());
    for (size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<int64_t>(r);
    e.head(hidden.data(), rows, logits.data());
    size_t row = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      Seq& s = seqs[static_cast<size_t>(picked[c])];
      for (int t = 0; t < chunks[c].n_tokens; ++t, ++row)
        out[{picked[c], s.done + t}] =
            std::vector<float>(logits.begin() + static_cast<long>(row * V), logits.begin() + static_cast<long>((row + 1) * V));
      s.done += chunks[c].n_tokens;
    }
  }
  return out;
}

std::vector<Seq> make_sequences(int n, int vocab) {
  std::mt19937 rng(1234);
  std::vector<Seq> seqs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    int len = 3 + (i * 7) % 23;  // different lengths, so batch members sit at different positions
    for (int t = 0; t < len; ++t) seqs[static_cast<size_t>(i)].tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab)));
  }
  return seqs;
}

void check_invariance(const std::string& model, const std::string& dtype,
                      ActivationMode mode = ActivationMode::Auto, int n_seqs = 32) {
  LoadOptions lo;
  lo.weight_dtype = dtype;
  auto w = std::make_shared<StageWeights>(load_stage_weights(open_model(model), lo));
  StageEngine e(w, 0, mode);
  auto seqs = make_sequences(n_seqs, e.config().vocab_size);
  // Reference: each sequence alone, one token per call (pure decode).
  LogitsByStep alone = run(e, seqs, 1, 1, 0);
  for (int batch : {1, 2, 7, 32, 64}) {
    if (batch > n_seqs) continue;
    LogitsByStep batched = run(e, seqs, batch, 9, static_cast<uint32_t>(batch));
    ASSERT_EQ(batched.size(), alone.size());
    int mismatches = 0;
    for (auto& [key, logits] : alone) {
      const auto& other = batched.at(key);
      if (std::memcmp(logits.data(), other.data(), logits.size() * sizeof(float)) != 0) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0) << model << " " << dtype << " " << activation_mode_name(mode) << " (" << e.activations()
                             << ") batch " << batch;
  }
}

TEST(BatchInvariance, Stories260KF32) { check_invariance(test::stories_bin(), "f32"); }
TEST(BatchInvariance, Stories260KBF16) { check_invariance(test::stories_bin(), "bf16"); }
TEST(BatchInvariance, Stories260KQ8_0) { check_invariance(test::stories_bin(), "q8_0"); }

// A Qwen3-shaped model (q/k norms, head_dim != dim / n_heads, K a multiple of 32 and 16).
const std::string& qwen3_tiny() {
  static const std::string dir = [] {
    std::string d = test::scratch_dir("tiny-qwen3-bf16");
    write_synthetic_model(synth_shape("tiny-qwen3"), DType::BF16, 5, d);
    return d;
  }();
  return dir;
}
TEST(BatchInvariance, TinyQwen3AllDtypes) {
  for (const char* dt : {"f32", "bf16", "q8_0"}) check_invariance(qwen3_tiny(), dt);
}

// The same logits, bit for bit, from every kernel variant this CPU runs (scalar, avx2, avx512).
void check_variants(const std::string& model, ActivationMode mode) {
  auto w = std::make_shared<StageWeights>(load_stage_weights(open_model(model), LoadOptions{}));
  StageEngine e(w, 2, mode);
  auto seqs = make_sequences(6, e.config().vocab_size);
  const std::string before = kernel_variant();
  kernels::use_kernels("scalar");
  const LogitsByStep want = run(e, seqs, 6, 9, 1);
  for (const std::string& v : kernels::supported_kernel_variants()) {
    kernels::use_kernels(v);
    const LogitsByStep got = run(e, seqs, 6, 9, 1);
    int mismatches = 0;
    for (auto& [key, logits] : want)
      mismatches += std::memcmp(logits.data(), got.at(key).data(), logits.size() * sizeof(float)) != 0;
    EXPECT_EQ(mismatches, 0) << model << " " << activation_mode_name(mode) << " " << v << " vs scalar";
  }
  kernels::use_kernels(before);
}

// A GGUF file of each type (tiny-k256: rows that are multiples of 256, so K-quants are used as
// such), 64 sequences, batches up to 64, in both activation modes.
class GgufBatchInvariance : public ::testing::TestWithParam<const char*> {};
TEST_P(GgufBatchInvariance, BothActivationModes) {
  const std::string type = GetParam();
  const std::string path = test::scratch_dir("tiny-k256-gguf") + "/" + type + ".gguf";
  write_synthetic_gguf(synth_shape("tiny-k256"), parse_gguf_write_type(type), 3, path);
  check_invariance(path, "auto", ActivationMode::F32, 64);
  check_variants(path, ActivationMode::F32);
  if (dtype_is_quantized(parse_dtype(type))) {
    check_invariance(path, "auto", ActivationMode::Q8, 64);
    check_variants(path, ActivationMode::Q8);
  }
}
INSTANTIATE_TEST_SUITE_P(AllTypes, GgufBatchInvariance,
                         ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k",
                                           "q5_k", "q6_k"));

// model.blas_prefill: OpenBLAS sgemm for f32 prompts computes the same logits to rounding (but
// is not batch-invariant, so it is opt-in and its workers have their own numerics probe).
TEST(BlasPrefill, PromptLogitsWithinRoundingOfTheInvariantKernels) {
  auto w = std::make_shared<StageWeights>(load_stage_weights(open_model(test::stories_bin()), LoadOptions{}));
  StageEngine invariant(w, 2), blas(w, 2, ActivationMode::Auto, true);
  auto seqs = make_sequences(4, invariant.config().vocab_size);
  const LogitsByStep a = run(invariant, seqs, 4, 9, 5), b = run(blas, seqs, 4, 9, 5);
  double max_diff = 0;
  for (auto& [key, logits] : a)
    for (size_t i = 0; i < logits.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(logits[i]) - b.at(key)[i]));
  std::printf("blas_prefill: max |logit difference| %.3g over %zu positions\n", max_diff, a.size());
  EXPECT_LT(max_diff, 1e-4);
}

}  // namespace
}  // namespace fleet
