// The avx512 variant: AVX-512 F/BW/VL with VNNI (Zen 4, Ice Lake and later Intel). Compiled
// with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c for this file only
// and chosen at run time (kernel_select.cpp). Results equal kernels_scalar.cpp bit for bit.
// GCC 12 reports its own AVX-512 intrinsics (_mm512_setzero_*, conversions) as reading an
// uninitialized value; a known false positive in the header, not in this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "engine/kernels/kernel_common.h"

namespace fleet::kernels {
namespace {

struct V16 {
  __m512 v;
  static V16 zero() { return {_mm512_setzero_ps()}; }
  static V16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static V16 load_bf16(const uint16_t* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
  }
  void fma(V16 a, V16 b) { v = _mm512_fmadd_ps(a.v, b.v, v); }
  float sum() const {  // s8[i] = v[i] + v[i+8], s4, s2, s1: the order kernels_scalar.cpp defines
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
  }
};

#include "engine/kernels/dequant_avx2.inc"
#include "engine/kernels/f32_kernels.inc"

// One group of 16 rows against TB tokens: lane r of every register belongs to row r. Per block:
// the int32 sums of (stored u) x (activation q) by vpdpbusd, the offset removed exactly, then
// acc = acc + ((float)isum * (d * dx) [+ m * sx]), the order every variant uses.
template <bool kNibbles, int kBlock, bool kMin, int TB>
inline void q8_group_tile(const PackedQ8View& W, int64_t g, const Q8ActView& X, int64_t t0, float* Y) {
  constexpr int kVecs = kNibbles ? 4 : kBlock / 4;     // 64-byte vectors per block
  constexpr int kGroups = kBlock / 4;                  // 4-value groups per block
  const uint8_t* qw = W.quants + static_cast<size_t>(g) * W.group_bytes;
  const float* dw = W.d + g * W.blocks * kGroupRows;
  const float* mw = kMin ? W.m + g * W.blocks * kGroupRows : nullptr;
  const __m512i low = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int32_t offset = kNibbles ? W.bias : 128;  // what the stored u adds to each value
  __m512 acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < W.blocks; ++b, qw += kVecs * 64) {
    __m512i w[kGroups];
    if constexpr (kNibbles) {
      for (int c = 0; c < 4; ++c) {
        const __m512i v = _mm512_loadu_si512(qw + 64 * c);
        w[2 * c] = _mm512_and_si512(v, low);
        w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
    } else {
      for (int c = 0; c < kVecs; ++c) w[c] = _mm512_xor_si512(_mm512_loadu_si512(qw + 64 * c), flip);
    }
    const __m512 d = _mm512_loadu_ps(dw + b * kGroupRows);
    __m512 m = _mm512_setzero_ps();
    if constexpr (kMin) m = _mm512_loadu_ps(mw + b * kGroupRows);
    for (int t = 0; t < TB; ++t) {
      const int64_t row = (t0 + t) * X.blocks + b;
      const int8_t* xq = X.q + (t0 + t) * X.cols + b * kBlock;
      __m512i isum = _mm512_setzero_si512();
      for (int j = 0; j < kGroups; ++j) {
        int32_t x4;
        std::memcpy(&x4, xq + 4 * j, 4);
        isum = _mm512_dpbusd_epi32(isum, w[j], _mm512_set1_epi32(x4));
      }
      if (offset != 0) isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(offset * X.sum[row]));
      __m512 c = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, _mm512_set1_ps(X.dx[row])));
      if constexpr (kMin) c = _mm512_add_ps(c, _mm512_mul_ps(m, _mm512_set1_ps(X.sx[row])));
      acc[t] = _mm512_add_ps(acc[t], c);
    }
  }
  const int64_t r0 = g * kGroupRows;
  const int64_t n = W.rows - r0 < kGroupRows ? W.rows - r0 : kGroupRows;
  const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
  for (int t = 0; t < TB; ++t) _mm512_mask_storeu_ps(Y + (t0 + t) * W.rows + r0, mask, acc[t]);
}

template <bool kNibbles, int kBlock, bool kMin>
void q8_groups(const PackedQ8View& W, int64_t g0, int64_t g1, const Q8ActView& X, float* Y) {
  constexpr int kTile = 4;
  for (int64_t g = g0; g < g1; ++g) {
    int64_t t = 0;
    for (; t + kTile <= X.tokens; t += kTile) q8_group_tile<kNibbles, kBlock, kMin, kTile>(W, g, X, t, Y);
    switch (X.tokens - t) {
      case 3: q8_group_tile<kNibbles, kBlock, kMin, 3>(W, g, X, t, Y); break;
      case 2: q8_group_tile<kNibbles, kBlock, kMin, 2>(W, g, X, t, Y); break;
      case 1: q8_group_tile<kNibbles, kBlock, kMin, 1>(W, g, X, t, Y); break;
      default: break;
    }
  }
}

#include "engine/kernels/q8_dispatch.inc"

}  // namespace

const KernelTable* avx512_kernels() {
  static const KernelTable table{"avx512", matmul_f32_rows, dot_f32, matmul_q8_groups};
  return &table;
}

}  // namespace fleet::kernels
