#include "engine/matmul.h"

// GCC 12 reports its own AVX-512 intrinsics (_mm512_reduce_add_ps) as reading an
// uninitialized value; a known false positive in the header, not in this file.
#if defined(__GNUC__) && !defined(__clang__)  // clang has no -Wmaybe-uninitialized (and no false positive)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace fleet {

namespace {

// A 16-float accumulator: one AVX-512 register, two AVX2 registers, or plain floats. The
// reduction order is fixed per build, which is all batch invariance needs.
#if defined(__AVX512F__)
struct V16 {
  __m512 v;
  static V16 zero() { return {_mm512_setzero_ps()}; }
  static V16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static V16 load_bf16(const uint16_t* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
  }
  void fma(V16 a, V16 b) { v = _mm512_fmadd_ps(a.v, b.v, v); }
  float sum() const { return _mm512_reduce_add_ps(v); }
};
#elif defined(__AVX2__) && defined(__FMA__)
struct V16 {
  __m256 a, b;
  static V16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static V16 load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static __m256 bf8(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static V16 load_bf16(const uint16_t* p) { return {bf8(p), bf8(p + 8)}; }
  void fma(V16 x, V16 y) {
    a = _mm256_fmadd_ps(x.a, y.a, a);
    b = _mm256_fmadd_ps(x.b, y.b, b);
  }
  float sum() const {
    __m256 s = _mm256_add_ps(a, b);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
  }
};
#else
struct V16 {
  float v[16];
  static V16 zero() { return V16{}; }
  static V16 load(const float* p) { V16 r; std::memcpy(r.v, p, 64); return r; }
  static V16 load_bf16(const uint16_t* p) { V16 r; for (int i = 0; i < 16; ++i) r.v[i] = bf16_to_f32(p[i]); return r; }
  void fma(V16 a, V16 b) { for (int i = 0; i < 16; ++i) v[i] = std::fma(a.v[i], b.v[i], v[i]); }
  float sum() const { float s = 0; for (float x : v) s += x; return s; }
};
#endif

}  // namespace

const char* kernel_variant() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2-fma";
#else
  return "scalar";
#endif
}

namespace {

// Row loaders: the weight row's contribution over [k, k+16) and the scalar tail.
struct F32Row {
  const float* w;
  V16 load(int64_t k) const { return V16::load(w + k); }
  float at(int64_t k) const { return w[k]; }
};
struct BF16Row {
  const uint16_t* w;
  V16 load(int64_t k) const { return V16::load_bf16(w + k); }
  float at(int64_t k) const { return bf16_to_f32(w[k]); }
};

// RB weight rows x TB token rows per tile; every (row, token) pair has its own accumulator
// and visits k in the same order, so the tile shape does not change any result.
template <int RB, int TB, typename Row>
inline void tile_dense(const Row* rows, const float* const* xs, int64_t K, float* const* ys) {
  V16 acc[RB][TB];
  for (auto& a : acc)
    for (auto& b : a) b = V16::zero();
  const int64_t K16 = K / 16 * 16;
  for (int64_t k = 0; k < K16; k += 16) {
    V16 xv[TB];
    for (int t = 0; t < TB; ++t) xv[t] = V16::load(xs[t] + k);
    for (int r = 0; r < RB; ++r) {
      V16 wv = rows[r].load(k);
      for (int t = 0; t < TB; ++t) acc[r][t].fma(wv, xv[t]);
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int t = 0; t < TB; ++t) {
      float s = acc[r][t].sum();
      for (int64_t k = K16; k < K; ++k) s += rows[r].at(k) * xs[t][k];
      ys[t][r] = s;
    }
}

constexpr int kRowBlock = 4;
constexpr int kTokBlock = 4;

// Every token row against RB weight rows, in tiles of kTokBlock tokens.
template <int RB, typename Row>
void run_tokens(const Row* rows, int64_t K, int64_t N, int64_t r0, const float* X, int64_t n_tokens, float* Y) {
  int64_t t = 0;
  const float* xs[kTokBlock];
  float* ys[kTokBlock];
  for (; t + kTokBlock <= n_tokens; t += kTokBlock) {
    for (int i = 0; i < kTokBlock; ++i) {
      xs[i] = X + (t + i) * K;
      ys[i] = Y + (t + i) * N + r0;
    }
    tile_dense<RB, kTokBlock>(rows, xs, K, ys);
  }
  for (; t < n_tokens; ++t) {
    xs[0] = X + t * K;
    ys[0] = Y + t * N + r0;
    tile_dense<RB, 1>(rows, xs, K, ys);
  }
}

// Rows of the most common GGUF types dequantized with SIMD: the same f32 operations, in the same
// order, as gguf_dequantize (q * d, then + m; no FMA), so the values are bit-identical; the
// other types use gguf_dequantize itself.
#if defined(__AVX2__)
inline __m256 f32x8_from_u8(__m128i b) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)); }

void dequantize_q8_0(const uint8_t* x, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, x += 34, y += 32) {
    const __m256 d = _mm256_set1_ps(f16_to_f32(static_cast<uint16_t>(x[0] | x[1] << 8)));
    for (int j = 0; j < 32; j += 8) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + 2 + j));
      _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
    }
  }
}

// Q4_0 (offset 8, no min) and Q4_1 (min m): values j and j+16 are the low and high nibbles of qs[j].
template <bool kHasMin>
void dequantize_q4(const uint8_t* x, int64_t nb, float* y) {
  constexpr int kBytes = kHasMin ? 20 : 18;
  const __m128i low = _mm_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i, x += kBytes, y += 32) {
    const __m256 d = _mm256_set1_ps(f16_to_f32(static_cast<uint16_t>(x[0] | x[1] << 8)));
    const __m256 m = _mm256_set1_ps(kHasMin ? f16_to_f32(static_cast<uint16_t>(x[2] | x[3] << 8)) : 0.f);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + (kHasMin ? 4 : 2)));
    const __m128i lo = _mm_and_si128(qs, low), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int p = 0; p < 4; ++p) {
      __m256 v = f32x8_from_u8(parts[p]);
      if constexpr (!kHasMin) v = _mm256_sub_ps(v, _mm256_set1_ps(8.f));  // (q - 8) is exact
      v = _mm256_mul_ps(v, d);
      if constexpr (kHasMin) v = _mm256_add_ps(v, m);
      _mm256_storeu_ps(y + p * 8, v);
    }
  }
}
#endif

void dequantize_row(DType type, const uint8_t* x, int64_t n, float* y) {
#if defined(__F16C__)
  if (type == DType::F16) {  // f16 -> f32 is exact, whichever instruction does it
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 2 * i))));
    if (i < n) gguf_dequantize(GgmlType::F16, x + 2 * i, n - i, y + i);
    return;
  }
#endif
#if defined(__AVX2__)
  switch (type) {
    case DType::Q8_0: return dequantize_q8_0(x, n / 32, y);
    case DType::Q4_0: return dequantize_q4<false>(x, n / 32, y);
    case DType::Q4_1: return dequantize_q4<true>(x, n / 32, y);
    default: break;
  }
#endif
  gguf_dequantize(dtype_to_ggml(type), x, n, y);
}

// Block-quantized weights (Q8_0, Q4_0, ..., Q6_K) and f16: the RB rows are dequantized once, exactly
// as gguf_dequantize does, into a per-thread scratch, and multiplied as f32 rows. So results
// are bit-identical to the f32 matmul of the dequantized matrix, and batch-invariant like it;
// activations stay f32.
template <int RB>
void run_rows_quantized(const Matrix& W, int64_t r0, const float* X, int64_t n_tokens, float* Y) {
  thread_local std::vector<float> scratch;
  const int64_t padded = W.blocks_per_row() * dtype_block_size(W.dtype);
  scratch.resize(static_cast<size_t>(RB * padded));
  F32Row rows[RB];
  for (int r = 0; r < RB; ++r) {
    float* out = scratch.data() + r * padded;
    dequantize_row(W.dtype, static_cast<const uint8_t*>(W.data) + static_cast<size_t>(r0 + r) * W.row_bytes(), padded,
                    out);
    rows[r].w = out;
  }
  run_tokens<RB>(rows, W.cols, W.rows, r0, X, n_tokens, Y);
}

template <int RB>
void run_rows(const Matrix& W, int64_t r0, const float* X, int64_t n_tokens, float* Y) {
  const int64_t K = W.cols;
  if (W.dtype == DType::BF16) {
    BF16Row rows[RB];
    for (int r = 0; r < RB; ++r) rows[r].w = static_cast<const uint16_t*>(W.data) + (r0 + r) * K;
    run_tokens<RB>(rows, K, W.rows, r0, X, n_tokens, Y);
  } else if (W.dtype == DType::F32) {
    F32Row rows[RB];
    for (int r = 0; r < RB; ++r) rows[r].w = static_cast<const float*>(W.data) + (r0 + r) * K;
    run_tokens<RB>(rows, K, W.rows, r0, X, n_tokens, Y);
  } else {
    run_rows_quantized<RB>(W, r0, X, n_tokens, Y);
  }
}

}  // namespace

void matmul(const Matrix& W, const float* X, int64_t n_tokens, float* Y, ThreadPool& pool) {
  const int64_t row_blocks = (W.rows + kRowBlock - 1) / kRowBlock;
  pool.parallel_for(static_cast<size_t>(row_blocks), [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      const int64_t r0 = static_cast<int64_t>(b) * kRowBlock;
      if (r0 + kRowBlock <= W.rows) {
        run_rows<kRowBlock>(W, r0, X, n_tokens, Y);
      } else {
        for (int64_t r = r0; r < W.rows; ++r) run_rows<1>(W, r, X, n_tokens, Y);
      }
    }
  }, static_cast<double>(W.rows) * static_cast<double>(W.cols) * static_cast<double>(n_tokens));
}

}  // namespace fleet

namespace fleet {
float dot_f32(const float* a, const float* b, int64_t n) {
  float y;
  const float* xs[1] = {b};
  float* ys[1] = {&y};
  F32Row row{a};
  tile_dense<1, 1>(&row, xs, n, ys);
  return y;
}
}  // namespace fleet
