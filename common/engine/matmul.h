#pragma once
// Y[t, r] = dot(W[r, :], X[t, :]) for every token row t and weight row r.
//
// Batch invariance: each output element is one dot product whose summation order depends only
// on the row length (fixed-width SIMD lanes over k, then a fixed lane reduction, then the scalar
// tail), never on how many tokens are in the batch, how tokens and rows are tiled, or how rows
// are split across threads. So a sequence's results are bitwise identical alone or in any batch.
// This is why the engine does not call a BLAS gemm, whose blocking varies with the shape.
//
// Weights may be f32, bf16, f16 or block-quantized (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
// Q6_K): f16 and quantized rows are dequantized inside the kernel exactly as gguf_dequantize does and then
// take the f32 path, so a quantized matmul equals the f32 matmul of the dequantized matrix.
#include <cstdint>

#include "model/weights.h"
#include "util/thread_pool.h"

namespace fleet {

// The summation order of this build's kernels ("avx512", "avx2-fma" or "scalar"): builds of
// the same variant compute bit-identical results; different variants may differ in the last bits.
const char* kernel_variant();

// X: [n_tokens, W.cols] f32, row stride W.cols. Y: [n_tokens, W.rows] f32.
void matmul(const Matrix& W, const float* X, int64_t n_tokens, float* Y, ThreadPool& pool);

}  // namespace fleet

namespace fleet {
// dot(a, b) over n floats in the same fixed order as matmul's rows.
float dot_f32(const float* a, const float* b, int64_t n);
}  // namespace fleet
