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

#include <math.h>

#include <cstring>

#include "engine/kernels/kernel_common.h"

namespace fleet::kernels {
namespace {

struct V16 {
  __m512 v;
  using Part = V16;  // one part: a tile accumulates all 16 lanes at once
  static constexpr int kParts = 1;
  void set_part(int, V16 x) { *this = x; }
  void keep_in_register() {}
  static V16 zero() { return {_mm512_setzero_ps()}; }
  static V16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static V16 load_bf16(const uint16_t* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
  }
  static V16 load_f16(const uint16_t* p) {
    return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void fma(V16 a, V16 b) { v = _mm512_fmadd_ps(a.v, b.v, v); }
  void add_scaled(V16 x, float a) { v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(a), x.v)); }
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
inline float f16_value(uint16_t h) { return _cvtsh_ss(h); }
#include "engine/kernels/exp_kernels.inc"  // its AVX2 loop: 8 floats per step are plenty here

constexpr int kTokBlock = 6;  // f32 tiles: 4 rows x 6 tokens of accumulators
#include "engine/kernels/f32_kernels.inc"

// One group of 16 rows against TB tokens: lane r of every register belongs to row r. Per block:
// the int32 sums of (stored u) x (activation q) by vpdpbusd, the offset removed exactly, then
// acc = acc + ((float)isum * (d * dx) [+ m * sx]), the order every variant uses.
// The 16 rows' scale d and min m of block b of group g (kernel_types.h: f16 per block, or
// K-quant super-block f16 times block integer, m negated).
inline __m512 f16x16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline __m512 i8x16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
template <bool kK>
inline __m512 block_d(const PackedQ8View& W, int64_t g, int64_t b) {
  if constexpr (!kK) return f16x16(W.d + (g * W.blocks + b) * kGroupRows);
  const int64_t supers = W.blocks / W.blocks_per_super;
  return _mm512_mul_ps(f16x16(W.d + (g * supers + b / W.blocks_per_super) * kGroupRows),
                       i8x16(W.sc + (g * W.blocks + b) * kGroupRows));
}
template <bool kK>
inline __m512 block_m(const PackedQ8View& W, int64_t g, int64_t b) {
  if constexpr (!kK) return f16x16(W.m + (g * W.blocks + b) * kGroupRows);
  const int64_t supers = W.blocks / W.blocks_per_super;
  const __m512 p = _mm512_mul_ps(f16x16(W.m + (g * supers + b / W.blocks_per_super) * kGroupRows),
                                 i8x16(W.mn + (g * W.blocks + b) * kGroupRows));
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(p), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
}

// The high bits of 4-value group k from a high-bit vector, moved to bits 4.. of each byte.
template <int kHb>
inline __m512i high_bits(__m512i hv, int k) {
  const int s = kHb * k - 4;
  const __m512i t = s >= 0 ? _mm512_srl_epi16(hv, _mm_cvtsi32_si128(s)) : _mm512_sll_epi16(hv, _mm_cvtsi32_si128(-s));
  return _mm512_and_si512(t, _mm512_set1_epi8(static_cast<char>(((1 << kHb) - 1) << 4)));
}

template <int kBits, int kBlock, bool kMin, bool kK, int TB>
inline void q8_group_tile(const PackedQ8View& W, int64_t g, const Q8ActView& X, int64_t t0, float* Y) {
  constexpr int kNib = kBlock / 8;                              // nibble vectors per block
  constexpr int kVecs = kBits == 8 ? kBlock / 4 : kNib + (kBits > 4 ? 1 : 0);  // 64-byte vectors per block
  constexpr int kGroups = kBlock / 4;                           // 4-value groups per block
  const uint8_t* qw = W.quants + static_cast<size_t>(g) * W.group_bytes;
  const __m512i low = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int32_t offset = kBits < 8 ? W.bias : 128;  // what the stored u adds to each value
  __m512 acc[TB];
  for (int t = 0; t < TB; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < W.blocks; ++b, qw += kVecs * 64) {
    __m512i w[kGroups];
    if constexpr (kBits < 8) {
      for (int c = 0; c < kNib; ++c) {
        const __m512i v = _mm512_loadu_si512(qw + 64 * c);
        w[2 * c] = _mm512_and_si512(v, low);
        w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
      if constexpr (kBits > 4) {
        const __m512i hv = _mm512_loadu_si512(qw + 64 * kNib);
        for (int k = 0; k < kGroups; ++k) w[k] = _mm512_or_si512(w[k], high_bits<kBits - 4>(hv, k));
      }
    } else {
      for (int c = 0; c < kVecs; ++c) w[c] = _mm512_xor_si512(_mm512_loadu_si512(qw + 64 * c), flip);
    }
    const __m512 d = block_d<kK>(W, g, b);
    __m512 m = _mm512_setzero_ps();
    if constexpr (kMin) m = block_m<kK>(W, g, b);
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

#include "engine/kernels/q8_tiles.inc"

#include "engine/kernels/q8_dispatch.inc"

void quantize_q8_32(const float* x, int64_t n_blocks, int8_t* q, float* d_out) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u)), one = _mm512_set1_epi32(0x3f800000);
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int64_t b = 0; b < n_blocks; ++b, x += 32, q += 32) {
    const __m512 a = _mm512_loadu_ps(x), c = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
    const float d = amax / 127.f;
    d_out[b] = d;
    const __m512 id = _mm512_set1_ps(d != 0.f ? 1.f / d : 0.f);
    for (int h = 0; h < 2; ++h) {  // roundf: trunc, then away from zero when |fraction| >= 0.5
      const __m512 v = _mm512_mul_ps(h ? c : a, id);
      __m512 r = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, r)), half, _CMP_GE_OQ);
      const __m512 step = _mm512_castsi512_ps(_mm512_or_si512(one, _mm512_and_si512(sign, _mm512_castps_si512(v))));
      r = _mm512_mask_add_ps(r, up, r, step);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * h), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(r)));
    }
  }
}

}  // namespace

const KernelTable* avx512_kernels() {
  static const KernelTable table{"avx512", matmul_f32_rows, dot_f32, matmul_q8_groups, quantize_q8_32, attend_rows, exp_f32};
  return &table;
}

}  // namespace fleet::kernels
