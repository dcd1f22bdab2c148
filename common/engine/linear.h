#pragma once
// One weight matrix as the engine multiplies it, in the stage's activation mode: the f32
// kernels over the loaded Matrix, or the integer kernels over a copy repacked at load
// (kernels/packed_q8.h). ActivationCache quantizes an input once for every matrix that reads
// it (Q, K and V; gate and up), even when they are of different types (Q4_K_M files mix
// Q4_K and Q6_K).
#include <cstdint>
#include <string>
#include <vector>

#include "engine/kernels/packed_q8.h"
#include "model/weights.h"
#include "util/thread_pool.h"

namespace fleet {

// auto: q8 for block-quantized weights, f32 for f32/f16/bf16 ones. q8: the same today (f32,
// f16 and bf16 matrices have no integer partner format). f32: every matrix in f32.
enum class ActivationMode { Auto, F32, Q8 };
ActivationMode parse_activation_mode(const std::string& s);  // "auto" | "f32" | "q8"; throws otherwise
const char* activation_mode_name(ActivationMode m);

class ActivationCache {
 public:
  void reset() { used_ = 0; }  // the input changed
  const kernels::Q8Activations& get(const float* X, int64_t n_tokens, int64_t cols, const kernels::PackedQ8View& like);

 private:
  std::vector<kernels::Q8Activations> entries_;
  size_t used_ = 0;
};

class Linear {
 public:
  Linear() = default;
  // Repacks W when the mode gives it q8 activations. `release_source`: the file pages behind
  // a zero-copy view are dropped from memory once repacked (they are read again on demand).
  // `blas_prefill`: an f32 matrix multiplies several tokens at once with OpenBLAS's sgemm
  // (faster prefill, but not batch-invariant: its blocking changes with the shape).
  Linear(const Matrix& W, ActivationMode mode, bool release_source, bool blas_prefill = false);
  bool q8() const { return q8_; }
  size_t packed_bytes() const { return q8_ ? packed_.bytes() : 0; }
  void apply(const float* X, int64_t n_tokens, float* Y, ActivationCache& cache, ThreadPool& pool) const;

 private:
  const Matrix* w_ = nullptr;
  bool q8_ = false, blas_ = false;
  kernels::PackedQ8 packed_;
};

}  // namespace fleet
