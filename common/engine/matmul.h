#pragma once
// Y[t, r] = dot(W[r, :], X[t, :]) for every token row t and weight row r, in one of two
// activation modes (docs/kernels.md):
//
//  f32: activations stay f32; f16, bf16 and block-quantized weights are widened exactly, so a
//       quantized matmul equals the f32 matmul of the dequantized matrix.
//  q8:  activation rows are quantized per block to the weight type's partner (Q8_0, Q8_1 or
//       Q8_K, llama.cpp's reference quantization) and every block is an exact integer dot
//       product, scaled once per block (weights repacked at load: kernels/packed_q8.h).
//
// Batch invariance: each output element's operations depend only on the row length, never on
// how many tokens are in the batch, how tokens and rows are tiled, or how rows are split across
// threads. Variant invariance: the scalar, avx2 and avx512 kernels (kernels/) run the same IEEE
// operations, so every CPU gives the same bits. This is why the engine does not call a BLAS
// gemm, whose blocking varies with the shape.
#include <cstdint>

#include "engine/kernels/packed_q8.h"
#include "model/weights.h"
#include "util/thread_pool.h"

namespace fleet {

// The kernel variant this process runs ("avx512", "avx2" or "scalar"; kernels/kernel_select.h).
const char* kernel_variant();

// f32 mode. X: [n_tokens, W.cols] f32, row stride W.cols. Y: [n_tokens, W.rows] f32.
void matmul(const Matrix& W, const float* X, int64_t n_tokens, float* Y, ThreadPool& pool);

// q8 mode: X was quantized for W (X.fits(W.view())). Y: [tokens, W.rows] f32.
void matmul_q8(const kernels::PackedQ8& W, const kernels::Q8Activations& X, float* Y, ThreadPool& pool);

// dot(a, b) over n floats in the same fixed order as the f32 matmul's rows.
float dot_f32(const float* a, const float* b, int64_t n);

// Causal attention of nq query rows of one head over the cached keys and values (rows `stride`
// floats apart; row i sees keys 0 .. n[i] - 1), in the fixed order kernels/kernel_types.h
// defines: each row's outputs are the same alone or with others. scratch: nq * (head_dim +
// max n + 1) floats.
void attend_rows(const float* q, size_t q_stride, int nq, const int* n, const float* k, const float* v, size_t stride,
                 int head_dim, float scale, float* scratch, float* out, size_t out_stride);

// y[i] = expf(x[i]) for i < n (y may be x): glibc's expf bits on any CPU, vectorized.
void exp_f32(const float* x, int64_t n, float* y);

}  // namespace fleet
