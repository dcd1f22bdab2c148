// The avx2 variant: AVX2 + FMA + F16C (x86-64-v3). Compiled with -mavx2 -mfma -mf16c for this
// file only and chosen at run time (kernel_select.cpp). Results equal kernels_scalar.cpp bit
// for bit: integer block sums by vpmaddubsw/vpmaddwd (no int16 saturation is possible for
// these operands: u <= 63 for 4- to 6-bit values; |v| <= 128 with the sign moved to q).
#include <immintrin.h>

#include <math.h>

#include <cstring>

#include "engine/kernels/kernel_common.h"

namespace fleet::kernels {
namespace {

struct V16 {
  __m256 a, b;  // lanes 0..7 and 8..15
  static V16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static V16 load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static __m256 bf8(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static V16 load_bf16(const uint16_t* p) { return {bf8(p), bf8(p + 8)}; }
  static V16 load_f16(const uint16_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  void store(float* p) const {
    _mm256_storeu_ps(p, a);
    _mm256_storeu_ps(p + 8, b);
  }
  void add_scaled(V16 x, float s) {
    const __m256 k = _mm256_set1_ps(s);
    a = _mm256_add_ps(a, _mm256_mul_ps(k, x.a));
    b = _mm256_add_ps(b, _mm256_mul_ps(k, x.b));
  }
  void fma(V16 x, V16 y) {
    a = _mm256_fmadd_ps(x.a, y.a, a);
    b = _mm256_fmadd_ps(x.b, y.b, b);
  }
  float sum() const {  // s8[i] = v[i] + v[i+8], s4, s2, s1: the order kernels_scalar.cpp defines
    const __m256 s8 = _mm256_add_ps(a, b);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
  }
};

#include "engine/kernels/dequant_avx2.inc"
inline float f16_value(uint16_t h) { return _cvtsh_ss(h); }
constexpr int kTokBlock = 2;  // f32 tiles: 4 rows x 2 tokens of accumulators
#include "engine/kernels/f32_kernels.inc"

// One group of 16 rows against TB tokens, as two halves of 8 lanes (rows 0..7, 8..15).
// Rows 8h..8h+7's scale d and min m of block b of group g (kernel_types.h: f16 per block, or
// K-quant super-block f16 times block integer, m negated).
inline __m256 f16x8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 i8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
template <bool kK>
inline __m256 block_d(const PackedQ8View& W, int64_t g, int64_t b, int h) {
  if constexpr (!kK) return f16x8(W.d + (g * W.blocks + b) * kGroupRows + 8 * h);
  const int64_t supers = W.blocks / W.blocks_per_super;
  return _mm256_mul_ps(f16x8(W.d + (g * supers + b / W.blocks_per_super) * kGroupRows + 8 * h),
                       i8x8(W.sc + (g * W.blocks + b) * kGroupRows + 8 * h));
}
template <bool kK>
inline __m256 block_m(const PackedQ8View& W, int64_t g, int64_t b, int h) {
  if constexpr (!kK) return f16x8(W.m + (g * W.blocks + b) * kGroupRows + 8 * h);
  const int64_t supers = W.blocks / W.blocks_per_super;
  const __m256 p = _mm256_mul_ps(f16x8(W.m + (g * supers + b / W.blocks_per_super) * kGroupRows + 8 * h),
                                 i8x8(W.mn + (g * W.blocks + b) * kGroupRows + 8 * h));
  return _mm256_xor_ps(p, _mm256_set1_ps(-0.0f));
}

// The high bits of 4-value group k from a high-bit vector, moved to bits 4.. of each byte.
template <int kHb>
inline __m256i high_bits(__m256i hv, int k) {
  const int s = kHb * k - 4;
  const __m256i t = s >= 0 ? _mm256_srl_epi16(hv, _mm_cvtsi32_si128(s)) : _mm256_sll_epi16(hv, _mm_cvtsi32_si128(-s));
  return _mm256_and_si256(t, _mm256_set1_epi8(static_cast<char>(((1 << kHb) - 1) << 4)));
}

// One group of 16 rows against TB tokens, as two halves of 8 lanes (rows 0..7, 8..15).
template <int kBits, int kBlock, bool kMin, bool kK, int TB>
inline void q8_group_tile(const PackedQ8View& W, int64_t g, const Q8ActView& X, int64_t t0, float* Y) {
  constexpr int kNib = kBlock / 8;
  constexpr int kVecs = kBits == 8 ? kBlock / 4 : kNib + (kBits > 4 ? 1 : 0);
  constexpr int kGroups = kBlock / 4;
  const uint8_t* qw = W.quants + static_cast<size_t>(g) * W.group_bytes;
  const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const int32_t offset = kBits < 8 ? W.bias : 0;  // 8-bit vectors hold v itself here
  __m256 acc[TB][2];
  for (int t = 0; t < TB; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < W.blocks; ++b, qw += kVecs * 64) {
    for (int h = 0; h < 2; ++h) {
      __m256i w[kGroups], s[kBits < 8 ? 1 : kGroups];
      if constexpr (kBits < 8) {
        for (int c = 0; c < kNib; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + 64 * c + 32 * h));
          w[2 * c] = _mm256_and_si256(v, low);
          w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        }
        if constexpr (kBits > 4) {
          const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + 64 * kNib + 32 * h));
          for (int k = 0; k < kGroups; ++k) w[k] = _mm256_or_si256(w[k], high_bits<kBits - 4>(hv, k));
        }
      } else {
        for (int c = 0; c < kVecs; ++c) {
          s[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + 64 * c + 32 * h));
          w[c] = _mm256_abs_epi8(s[c]);
        }
      }
      const __m256 d = block_d<kK>(W, g, b, h);
      __m256 m = _mm256_setzero_ps();
      if constexpr (kMin) m = block_m<kK>(W, g, b, h);
      for (int t = 0; t < TB; ++t) {
        const int64_t row = (t0 + t) * X.blocks + b;
        const int8_t* xq = X.q + (t0 + t) * X.cols + b * kBlock;
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < kGroups; ++j) {
          int32_t x4;
          std::memcpy(&x4, xq + 4 * j, 4);
          __m256i x = _mm256_set1_epi32(x4);
          if constexpr (kBits == 8) x = _mm256_sign_epi8(x, s[j]);
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(w[j], x), ones));
        }
        if (offset != 0) isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(offset * X.sum[row]));
        __m256 c = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, _mm256_set1_ps(X.dx[row])));
        if constexpr (kMin) c = _mm256_add_ps(c, _mm256_mul_ps(m, _mm256_set1_ps(X.sx[row])));
        acc[t][h] = _mm256_add_ps(acc[t][h], c);
      }
    }
  }
  const int64_t r0 = g * kGroupRows;
  const int64_t n = W.rows - r0 < kGroupRows ? W.rows - r0 : kGroupRows;
  for (int t = 0; t < TB; ++t) {
    float out[kGroupRows];
    _mm256_storeu_ps(out, acc[t][0]);
    _mm256_storeu_ps(out + 8, acc[t][1]);
    std::memcpy(Y + (t0 + t) * W.rows + r0, out, static_cast<size_t>(n) * sizeof(float));
  }
}

template <int kBits, int kBlock, bool kMin, bool kK>
void q8_groups(const PackedQ8View& W, int64_t g0, int64_t g1, const Q8ActView& X, float* Y) {
  constexpr int kTile = 2;
  for (int64_t g = g0; g < g1; ++g) {
    int64_t t = 0;
    for (; t + kTile <= X.tokens; t += kTile) q8_group_tile<kBits, kBlock, kMin, kK, kTile>(W, g, X, t, Y);
    if (t < X.tokens) q8_group_tile<kBits, kBlock, kMin, kK, 1>(W, g, X, t, Y);
  }
}

#include "engine/kernels/q8_dispatch.inc"

void quantize_q8_32(const float* x, int64_t n_blocks, int8_t* q, float* d_out) {
  const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  for (int64_t b = 0; b < n_blocks; ++b, x += 32, q += 32) {
    __m256 v[4], m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 8 * i);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.f;
    d_out[b] = d;
    const __m256 id = _mm256_set1_ps(d != 0.f ? 1.f / d : 0.f);
    __m256i r32[4];
    for (int i = 0; i < 4; ++i) {  // roundf: trunc, then away from zero when |fraction| >= 0.5
      const __m256 s = _mm256_mul_ps(v[i], id);
      const __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(s, t)), half, _CMP_GE_OQ);
      const __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(one, _mm256_and_ps(sign, s))));
      r32[i] = _mm256_cvtps_epi32(r);
    }
    // int32 -> int8 in order: packs interleave 128-bit lanes, the permute restores the order.
    const __m256i p16a = _mm256_packs_epi32(r32[0], r32[1]), p16b = _mm256_packs_epi32(r32[2], r32[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
}

}  // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table{"avx2", matmul_f32_rows, dot_f32, matmul_q8_groups, quantize_q8_32, attend};
  return &table;
}

}  // namespace fleet::kernels
