#pragma once
// Plain views of what the kernels read and write. The per-ISA kernel files are compiled with
// their own instruction-set flags (kernels_avx2.cpp with -mavx2, ...), so they see only these
// POD structs and raw pointers: no inline function or template from another header may be
// instantiated there, or the linker could pick that AVX-512 copy for the whole program.
#include <cstddef>
#include <cstdint>

namespace fleet::kernels {

// Rows per interleaved group of a PackedQ8 matrix: one AVX-512 register of int32 or f32 lanes.
inline constexpr int kGroupRows = 16;

// A weight matrix for f32 activations: rows of `dtype` (a DType value) as stored, each
// `row_bytes` long; quantized rows hold `padded_cols` values (a whole number of blocks).
struct F32WeightsView {
  int dtype = 0;  // static_cast<int>(DType)
  const void* data = nullptr;
  int64_t rows = 0, cols = 0, padded_cols = 0;
  size_t row_bytes = 0;
};

// A block-quantized weight matrix repacked for integer dot products with q8 activations
// (engine/kernels/packed_q8.h builds it). Rows are taken 16 at a time ("groups"); within a
// group, the weights of every block are interleaved so that one 64-byte vector holds 4
// consecutive values of each of the 16 rows (row r at bytes 4r..4r+3):
//   4, 5, 6 bits: stored u = v + bias (0 .. 2^bits - 1). A block of `block` values (32 or 16)
//            is block/8 nibble vectors: vector c holds the low 4 bits of values 8c..8c+3 in its
//            low nibbles and of 8c+4..8c+7 in its high nibbles. 5 and 6 bits add one high-bit
//            vector: its byte 4r+e holds, for each 4-value group k of the block, the high bits
//            (u >> 4) of value 4k+e of row r at bits [hb*k, hb*k + hb), hb = bits - 4.
//   8 bits:  a block is block/4 vectors of signed int8 v.
// Each row's value j of block b is  d[b] * v_j + m[b]  (m = 0 when !has_min), exactly the
// value ggml's dequantization gives. The 32-value types store d and m as the file's f16 values
// per block. K-quants store the file's f16 super-block scales (d, dmin per 256 values) and the
// integer sub-block scales (sc, mn per block): d[b] = d * sc, m[b] = -(dmin * mn), products
// that are exact in f32 and computed the same way by every variant.
struct PackedQ8View {
  int bits = 8;          // 4 (Q4_*), 5 (Q5_*), 6 (Q6_K) or 8 (Q8_0)
  bool has_min = false;
  int bias = 0;          // bits < 8: stored u = v + bias
  int block = 32;        // values per block: 32, or 16 (Q6_K)
  bool k_partner = false;  // activations quantized like Q8_K (256 values per scale), else Q8_0
  bool k_scales = false;    // K-quant scales (super-block f16 x block integer), else f16 per block
  int64_t rows = 0, cols = 0;  // cols: a whole number of blocks
  int64_t groups = 0, blocks = 0;
  size_t group_bytes = 0;      // bytes of quants per group (all blocks)
  const uint8_t* quants = nullptr;  // [groups][blocks][block bytes of 16 rows]
  const uint16_t* d = nullptr;      // f16 [groups][blocks][16], or (k_scales) [groups][supers][16]
  const uint16_t* m = nullptr;      // the same for m (dmin with k_scales); has_min only
  const int8_t* sc = nullptr;       // k_scales: [groups][blocks][16]
  const int8_t* mn = nullptr;       // k_scales and has_min: [groups][blocks][16]
  int64_t blocks_per_super = 1;     // k_scales: 8 (Q4_K, Q5_K) or 16 (Q6_K)
};

// Activation rows quantized to int8 for a PackedQ8 matrix of block size `block`:
// q[t][k] (cols values per row, a whole number of blocks, zero-padded), and per row and
// block: the scale dx, the integer sum of the block's q, and sx = dx * (float)sum.
struct Q8ActView {
  int64_t tokens = 0, cols = 0, blocks = 0;
  int block = 32;
  const int8_t* q = nullptr;     // [tokens][cols]
  const float* dx = nullptr;     // [tokens][blocks]
  const int32_t* sum = nullptr;  // [tokens][blocks]
  const float* sx = nullptr;     // [tokens][blocks]
};

// The functions one instruction-set variant provides. All variants compute bit-identical
// results: integer block sums are exact, and every float operation (which ones, in which
// order) is fixed by the definitions in engine/kernels/README.md, not by the vector width.
struct KernelTable {
  const char* name;
  // f32 activations: Y[t][r] for rows [r0, r1) of W, all tokens. scratch: a per-thread
  // buffer of 4 * W.padded_cols floats (dequantized rows).
  void (*matmul_f32_rows)(const F32WeightsView& W, int64_t r0, int64_t r1, const float* X, int64_t n_tokens,
                          float* Y, float* scratch);
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  // q8 activations: Y[t][r] (row stride W.rows) for the row groups [g0, g1), all tokens.
  void (*matmul_q8_groups)(const PackedQ8View& W, int64_t g0, int64_t g1, const Q8ActView& X, float* Y);
  // Q8_0-style quantization of n_blocks blocks of 32 values (llama.cpp's quantize_row_q8_0_ref):
  // d = amax / 127 (d_out[b], before any rounding to f16), q = roundf(x * (d ? 1 / d : 0)).
  void (*quantize_q8_32)(const float* x, int64_t n_blocks, int8_t* q, float* d_out);
  // Causal attention of nq query rows of one head (row i at q + i * q_stride) over the cached
  // keys and values (rows `stride` floats apart); row i sees keys 0 .. n[i] - 1. Each row, alone
  // or with others:
  //   s_j = dot_f32(q, k_j, hd) * scale;  m = max s_j;  e_j = exp_f32(s_j - m);
  //   sum = e_0 + e_1 + ... (in order);  inv = 1 / sum;
  //   out[d] = 0 + (e_0 * inv) * v_0[d] + (e_1 * inv) * v_1[d] + ...  (mul, then add; j in order)
  // Output row i at out + i * out_stride. scratch: nq * (hd + max n + 1) floats.
  void (*attend_rows)(const float* q, size_t q_stride, int nq, const int* n, const float* k, const float* v,
                      size_t stride, int hd, float scale, float* scratch, float* out, size_t out_stride);
  // y[i] = expf(x[i]) for i < n (y may be x), the bits of glibc's expf (engine/kernels/exp_kernels.inc).
  void (*exp_f32)(const float* x, int64_t n, float* y);
};

// The variants compiled into this binary (nullptr where the compiler could not build one).
const KernelTable* scalar_kernels();
const KernelTable* avx2_kernels();
const KernelTable* avx512_kernels();

}  // namespace fleet::kernels
