#include "engine/stage_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/matmul.h"

extern "C" void openblas_set_num_threads(int num_threads);  // OpenBLAS (not in cblas.h)

namespace fleet {

namespace {

// out = x / sqrt(mean(x^2) + eps) * w, in a fixed order per row.
void rmsnorm(const float* x, const float* w, int n, float eps, float* out) {
  float ss = dot_f32(x, x, n);
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void add_bias(float* rows, int64_t n_rows, const std::vector<float>& b) {
  if (b.empty()) return;
  const size_t d = b.size();
  for (int64_t r = 0; r < n_rows; ++r)
    for (size_t i = 0; i < d; ++i) rows[static_cast<size_t>(r) * d + i] += b[i];
}

// Llama 3's frequency-dependent RoPE scaling (rope_scaling.rope_type == "llama3").
void apply_llama3_scaling(std::vector<float>& inv_freq, const RopeScaling& s) {
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  for (float& f : inv_freq) {
    const double wavelen = 2 * M_PI / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      f = static_cast<float>(f / s.factor);
    } else {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      f = static_cast<float>((1 - smooth) * f / s.factor + smooth * f);
    }
  }
}

}  // namespace

StageEngine::StageEngine(std::shared_ptr<const StageWeights> weights, int n_threads, ActivationMode activations,
                         bool blas_prefill)
    : w_(std::move(weights)), pool_(n_threads) {
  const auto t0 = std::chrono::steady_clock::now();
  if (blas_prefill) openblas_set_num_threads(pool_.size());
  const ActivationMode a = activations;
  const bool b = blas_prefill;
  for (const LayerWeights& lw : w_->layers)
    linears_.push_back({Linear(lw.wq, a, true, b), Linear(lw.wk, a, true, b), Linear(lw.wv, a, true, b),
                        Linear(lw.wo, a, true, b), Linear(lw.w_gate, a, true, b), Linear(lw.w_up, a, true, b),
                        Linear(lw.w_down, a, true, b)});
  // The head may share its bytes with the embedding (tied weights), which stage 0 still reads.
  if (w_->has_head()) head_ = Linear(w_->head, activations, !w_->has_embedding());
  repack_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ModelConfig& c = w_->config;
  const int half = c.head_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    inv_freq_[static_cast<size_t>(i)] =
        1.0f / std::pow(static_cast<float>(c.rope_theta), static_cast<float>(2 * i) / static_cast<float>(c.head_dim));
  if (c.rope_scaling.factor > 0) apply_llama3_scaling(inv_freq_, c.rope_scaling);
}

const char* StageEngine::activations() const { return packed_bytes() > 0 ? "q8" : "f32"; }

size_t StageEngine::packed_bytes() const {
  size_t n = head_.packed_bytes();
  for (const LayerLinears& l : linears_)
    for (const Linear* x : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) n += x->packed_bytes();
  return n;
}

size_t StageEngine::layer_bytes() const {
  size_t n = 0;
  for (size_t i = 0; i < linears_.size(); ++i) {
    const LayerLinears& l = linears_[i];
    const LayerWeights& w = w_->layers[i];
    const std::pair<const Linear*, const Matrix*> all[] = {{&l.wq, &w.wq},         {&l.wk, &w.wk},
                                                           {&l.wv, &w.wv},         {&l.wo, &w.wo},
                                                           {&l.w_gate, &w.w_gate}, {&l.w_up, &w.w_up},
                                                           {&l.w_down, &w.w_down}};
    for (auto [lin, m] : all) n += lin->q8() ? lin->packed_bytes() : m->bytes();
    n += (w.attn_norm.size() + w.ffn_norm.size() + w.bq.size() + w.bk.size() + w.bv.size() + w.q_norm.size() +
          w.k_norm.size()) * sizeof(float);
  }
  return n;
}

std::unique_ptr<KVCache> StageEngine::new_cache(int max_len) const {
  const ModelConfig& c = w_->config;
  return std::make_unique<KVCache>(static_cast<int>(w_->layers.size()), c.kv_dim(),
                                   max_len > 0 ? std::min(max_len, c.max_seq_len) : c.max_seq_len);
}

void StageEngine::embed(std::span<const int32_t> tokens, float* hidden) const {
  if (!w_->has_embedding()) throw std::runtime_error("embed: this stage does not hold the embedding (layers start at " +
                                                     std::to_string(w_->layer_begin) + ")");
  const int dim = w_->config.dim;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= w_->config.vocab_size)
      throw std::runtime_error("token id " + std::to_string(t) + " is outside the vocabulary of " +
                               std::to_string(w_->config.vocab_size));
    w_->embedding.row_to_f32(t, hidden + i * static_cast<size_t>(dim));
  }
}

void StageEngine::rope(float* vecs, int n_heads, int pos) const {
  const int hd = w_->config.head_dim, half = hd / 2;
  const bool adjacent = w_->config.rope_layout == RopeLayout::Adjacent;
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq_[static_cast<size_t>(i)];
    const float c = std::cos(angle), s = std::sin(angle);
    for (int h = 0; h < n_heads; ++h) {
      float* v = vecs + h * hd;
      const int a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

void StageEngine::attention(const LayerWeights& lw, int slot, std::span<const SeqChunk> batch,
                            const std::vector<int>& pos, std::vector<float>& q, std::vector<float>& k,
                            std::vector<float>& v, std::vector<float>& out) {
  const ModelConfig& c = w_->config;
  const int hd = c.head_dim, nh = c.n_heads, nkv = c.n_kv_heads, Q = c.q_dim(), KV = c.kv_dim();
  const int64_t T = static_cast<int64_t>(pos.size());
  add_bias(q.data(), T, lw.bq);
  add_bias(k.data(), T, lw.bk);
  add_bias(v.data(), T, lw.bv);
  // Per-head RMSNorm (Qwen3), then RoPE, then append K/V to each sequence's cache.
  int64_t row = 0;
  for (const SeqChunk& ch : batch) {
    for (int i = 0; i < ch.n_tokens; ++i, ++row) {
      float* qr = q.data() + row * Q;
      float* kr = k.data() + row * KV;
      if (!lw.q_norm.empty()) {
        for (int h = 0; h < nh; ++h) rmsnorm(qr + h * hd, lw.q_norm.data(), hd, c.rms_eps, qr + h * hd);
        for (int h = 0; h < nkv; ++h) rmsnorm(kr + h * hd, lw.k_norm.data(), hd, c.rms_eps, kr + h * hd);
      }
      rope(qr, nh, pos[static_cast<size_t>(row)]);
      rope(kr, nkv, pos[static_cast<size_t>(row)]);
      std::copy(kr, kr + KV, ch.cache->k(slot, ch.start_pos + i));
      std::copy(v.data() + row * KV, v.data() + (row + 1) * KV, ch.cache->v(slot, ch.start_pos + i));
    }
  }
  // Causal attention: token at position p attends to positions [0, p] of its own sequence.
  // Rows go to the kernel in blocks of up to kAttendBlock consecutive rows of one sequence, so
  // that each cached key and value row is read once per block; results do not depend on blocks.
  constexpr int kAttendBlock = 16;
  struct Block {
    int64_t row;
    int rows;
    const KVCache* cache;
  };
  std::vector<Block> blocks;
  row = 0;
  for (const SeqChunk& ch : batch) {
    for (int i = 0; i < ch.n_tokens; i += kAttendBlock)
      blocks.push_back({row + i, std::min(kAttendBlock, ch.n_tokens - i), ch.cache});
    row += ch.n_tokens;
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int group = nh / nkv;
  double attended = 0;  // cache rows read, for the parallelism decision
  for (int p : pos) attended += p + 1;
  const int64_t nb = static_cast<int64_t>(blocks.size());
  // Jobs head-major (job = h * blocks + b): every head has the same mix of short and long rows,
  // so the threads' contiguous shares of jobs cost about the same under the causal mask.
  pool_.parallel_for(static_cast<size_t>(nb * nh), [&](size_t b, size_t e) {
    thread_local std::vector<float> scratch;
    int n[kAttendBlock];
    for (size_t job = b; job < e; ++job) {
      const Block& blk = blocks[static_cast<size_t>(static_cast<int64_t>(job) % nb)];
      const int h = static_cast<int>(static_cast<int64_t>(job) / nb), kvh = h / group;
      int n_max = 0;
      for (int i = 0; i < blk.rows; ++i) n_max = std::max(n_max, n[i] = pos[static_cast<size_t>(blk.row + i)] + 1);
      scratch.resize(static_cast<size_t>(blk.rows) * static_cast<size_t>(hd + n_max + 1));
      attend_rows(q.data() + blk.row * Q + h * hd, static_cast<size_t>(Q), blk.rows, n, blk.cache->k(slot, 0) + kvh * hd,
                  blk.cache->v(slot, 0) + kvh * hd, static_cast<size_t>(KV), hd, scale, scratch.data(),
                  out.data() + blk.row * Q + h * hd, static_cast<size_t>(Q));
    }
  }, static_cast<double>(attended) * nh * hd * 2);
}

void StageEngine::forward_layers(std::span<const SeqChunk> batch, float* hidden) {
  const ModelConfig& c = w_->config;
  const int D = c.dim, F = c.hidden_dim, Q = c.q_dim(), KV = c.kv_dim();
  std::vector<int> pos;
  for (const SeqChunk& ch : batch) {
    if (!ch.cache) throw std::runtime_error("forward_layers: a sequence has no KV cache");
    if (ch.n_tokens <= 0) throw std::runtime_error("forward_layers: empty chunk");
    if (ch.start_pos > ch.cache->length())
      throw std::runtime_error("forward_layers: step starts at position " + std::to_string(ch.start_pos) +
                               " but the KV cache holds only " + std::to_string(ch.cache->length()) + " tokens");
    ch.cache->reserve(ch.start_pos + ch.n_tokens);
    ch.cache->truncate(ch.start_pos);  // a replayed step overwrites what it computed before
    for (int i = 0; i < ch.n_tokens; ++i) pos.push_back(ch.start_pos + i);
  }
  const int64_t T = static_cast<int64_t>(pos.size());
  std::vector<float> xb(static_cast<size_t>(T * D)), q(static_cast<size_t>(T * Q)), k(static_cast<size_t>(T * KV)),
      v(static_cast<size_t>(T * KV)), att(static_cast<size_t>(T * Q)), proj(static_cast<size_t>(T * D)),
      gate(static_cast<size_t>(T * F)), up(static_cast<size_t>(T * F)), silu(static_cast<size_t>(T * F));
  for (size_t slot = 0; slot < w_->layers.size(); ++slot) {
    const LayerWeights& lw = w_->layers[slot];
    const LayerLinears& ll = linears_[slot];
    for (int64_t r = 0; r < T; ++r) rmsnorm(hidden + r * D, lw.attn_norm.data(), D, c.rms_eps, xb.data() + r * D);
    act_cache_.reset();
    ll.wq.apply(xb.data(), T, q.data(), act_cache_, pool_);
    ll.wk.apply(xb.data(), T, k.data(), act_cache_, pool_);
    ll.wv.apply(xb.data(), T, v.data(), act_cache_, pool_);
    attention(lw, static_cast<int>(slot), batch, pos, q, k, v, att);
    act_cache_.reset();
    ll.wo.apply(att.data(), T, proj.data(), act_cache_, pool_);
    for (int64_t i = 0; i < T * D; ++i) hidden[i] += proj[static_cast<size_t>(i)];

    for (int64_t r = 0; r < T; ++r) rmsnorm(hidden + r * D, lw.ffn_norm.data(), D, c.rms_eps, xb.data() + r * D);
    act_cache_.reset();
    ll.w_gate.apply(xb.data(), T, gate.data(), act_cache_, pool_);
    ll.w_up.apply(xb.data(), T, up.data(), act_cache_, pool_);
    // SiLU(gate) * up = g / (1 + expf(-g)) * u; expf vectorized (same bits as libm's)
    for (int64_t i = 0; i < T * F; ++i) silu[static_cast<size_t>(i)] = -gate[static_cast<size_t>(i)];
    exp_f32(silu.data(), T * F, silu.data());
    for (int64_t i = 0; i < T * F; ++i) {
      const size_t j = static_cast<size_t>(i);
      gate[j] = gate[j] / (1.0f + silu[j]) * up[j];
    }
    act_cache_.reset();
    ll.w_down.apply(gate.data(), T, proj.data(), act_cache_, pool_);
    for (int64_t i = 0; i < T * D; ++i) hidden[i] += proj[static_cast<size_t>(i)];
  }
  for (const SeqChunk& ch : batch) ch.cache->set_length(ch.start_pos + ch.n_tokens);
}

void StageEngine::head(const float* hidden, std::span<const int64_t> rows, float* logits) {
  if (!w_->has_head())
    throw std::runtime_error("head: this stage does not hold the output head (layers end at " +
                             std::to_string(w_->layer_end) + ")");
  const int D = w_->config.dim;
  std::vector<float> xb(rows.size() * static_cast<size_t>(D));
  for (size_t i = 0; i < rows.size(); ++i)
    rmsnorm(hidden + rows[i] * D, w_->final_norm.data(), D, w_->config.rms_eps, xb.data() + i * static_cast<size_t>(D));
  act_cache_.reset();
  head_.apply(xb.data(), static_cast<int64_t>(rows.size()), logits, act_cache_, pool_);
}

}  // namespace fleet
