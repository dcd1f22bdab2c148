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
  explicit StageEngine(std::shared_ptr<const StageWeights> weights, int n_threads = 0);

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

  std::shared_ptr<const StageWeights> w_;
  ThreadPool pool_;
  std::vector<float> inv_freq_;  // [head_dim / 2]
};

}  // namespace fleet
