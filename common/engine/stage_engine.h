#pragma once
// The forward pass of one stage: the layers [begin, end) of a model, run for a batch of
// independent sequences, each at its own position with its own KV cache. The three steps are
// separate calls because different stage workers run them:
//   embed()          stage 0:    token ids          -> hidden rows
//   forward_layers() every stage: hidden rows        -> hidden rows (updates KV caches)
//   head()           last stage: selected hidden rows -> logits
// A whole model in one process is simply the stage [0, n_layers).
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/linear.h"
#include "model/weights.h"
#include "util/thread_pool.h"

namespace fleet {

// One sequence's share of a batch: n_tokens consecutive hidden rows at positions
// start_pos .. start_pos + n_tokens - 1 (a prefill chunk, or one decode token).
struct SeqChunk {
  KVCache* cache = nullptr;
  int start_pos = 0;
  int n_tokens = 0;
};

class StageEngine {
 public:
  // Repacks the block-quantized matrices for the activation mode (kernels/packed_q8.h); the
  // file pages behind them are released once repacked.
  // blas_prefill: f32 matrices multiply prompts (several tokens) with OpenBLAS's sgemm; faster,
  // but not batch-invariant (Linear), so such a worker's probe differs from invariant replicas'.
  explicit StageEngine(std::shared_ptr<const StageWeights> weights, int n_threads = 0,
                       ActivationMode activations = ActivationMode::Auto, bool blas_prefill = false);

  // "q8" when any matrix runs with q8 activations, else "f32" (what replicas must agree on).
  const char* activations() const;
  double repack_seconds() const { return repack_seconds_; }
  size_t packed_bytes() const;  // bytes of the repacked copies
  // Bytes of the layers' weights as this engine reads them: repacked copies, matrices used as
  // loaded, norms (what a stage keeps resident; the head and embedding are not counted).
  size_t layer_bytes() const;

  const ModelConfig& config() const { return w_->config; }
  const StageWeights& weights() const { return *w_; }
  int layer_begin() const { return w_->layer_begin; }
  int layer_end() const { return w_->layer_end; }

  std::unique_ptr<KVCache> new_cache(int max_len = 0) const;  // 0: the model's context length

  // hidden: [n, dim]. Requires the embedding (stage 0).
  void embed(std::span<const int32_t> tokens, float* hidden) const;
  // hidden: [sum of n_tokens, dim], rows in batch order; transformed in place.
  void forward_layers(std::span<const SeqChunk> batch, float* hidden);
  // logits: [rows.size(), vocab]. Requires the head (last stage). Final norm is applied here.
  void head(const float* hidden, std::span<const int64_t> rows, float* logits);

 private:
  void attention(const LayerWeights& lw, int slot, std::span<const SeqChunk> batch, const std::vector<int>& pos,
                 std::vector<float>& q, std::vector<float>& k, std::vector<float>& v, std::vector<float>& out);
  void rope(float* vecs, int n_heads, int pos) const;

  struct LayerLinears {
    Linear wq, wk, wv, wo, w_gate, w_up, w_down;
  };

  std::shared_ptr<const StageWeights> w_;
  ThreadPool pool_;
  std::vector<LayerLinears> linears_;  // one per layer of w_
  Linear head_;
  double repack_seconds_ = 0;
  ActivationCache act_cache_;
  std::vector<float> inv_freq_;  // [head_dim / 2]
};

}  // namespace fleet
