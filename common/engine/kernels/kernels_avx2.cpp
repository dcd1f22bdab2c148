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

// 8 lanes: a tile accumulates lanes 0..7 of every 16-lane group over all k, then lanes 8..15,
// so that 4 rows x 3 tokens of accumulators fit the 16 ymm registers.
struct P8 {
  __m256 v;
  static P8 zero() { return {_mm256_setzero_ps()}; }
  static P8 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static P8 load_bf16(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
  }
  static P8 load_f16(const uint16_t* p) { return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))}; }
  void fma(P8 x, P8 y) { v = _mm256_fmadd_ps(x.v, y.v, v); }
  // A weight vector loaded once and used by every token of a tile: without this hint GCC folds
  // the load into each token's FMA, which makes a 4 x 3 tile load-bound (15 loads per 12 FMAs).
  void keep_in_register() { asm("" : "+x"(v)); }
};

struct V16 {
  __m256 a, b;  // lanes 0..7 and 8..15
  using Part = P8;
  static constexpr int kParts = 2;
  void set_part(int p, P8 x) { (p == 0 ? a : b) = x.v; }
  static V16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static V16 load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  void store(float* p) const {
    _mm256_storeu_ps(p, a);
    _mm256_storeu_ps(p + 8, b);
  }
  void add_scaled(V16 x, float s) {
    const __m256 k = _mm256_set1_ps(s);
    a = _mm256_add_ps(a, _mm256_mul_ps(k, x.a));
    b = _mm256_add_ps(b, _mm256_mul_ps(k, x.b));
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
#include "engine/kernels/exp_kernels.inc"

constexpr int kTokBlock = 3;  // f32 tiles: 4 rows x 3 tokens of 8-lane accumulators
#include "engine/kernels/f32_kernels.inc"

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

// How many vpmaddubsw results (each lane u0*q0 + u1*q1, |q| <= 127) may be added in int16
// before one vpmaddwd, with no overflow: |sum| <= n * 2 * umax * 127 <= 32767.
constexpr int pairs_per_madd(int bits) {
  const int umax = bits == 8 ? 128 : (1 << bits) - 1;  // 8 bits: |v|, up to 128
  return 32767 / (2 * umax * 127);
}

// One group of 16 rows against TB tokens, as two halves of 8 lanes (rows 0..7, then 8..15).
// Per half and block, for each 4-value group j (in the order of the nibble vectors): the int16
// products of every token are summed while they cannot overflow, then widened (vpmaddwd):
// an exact integer block sum, as every variant computes it.
template <int kBits, int kBlock, bool kMin, bool kK, int TB>
inline void q8_group_tile(const PackedQ8View& W, int64_t g, const Q8ActView& X, int64_t t0, float* Y) {
  constexpr int kNib = kBlock / 8;
  constexpr int kVecs = kBits == 8 ? kBlock / 4 : kNib + (kBits > 4 ? 1 : 0);
  constexpr int kGroups = kBlock / 4;
  constexpr int kPairs = pairs_per_madd(kBits);
  static_assert(kPairs >= 1);
  const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const int32_t offset = kBits < 8 ? W.bias : 0;  // 8-bit vectors hold v itself here
  const int64_t r0 = g * kGroupRows;
  const int64_t n = W.rows - r0 < kGroupRows ? W.rows - r0 : kGroupRows;
  for (int h = 0; h < 2; ++h) {
    const uint8_t* qw = W.quants + static_cast<size_t>(g) * W.group_bytes + 32 * h;
    __m256 acc[TB];
    for (int t = 0; t < TB; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < W.blocks; ++b, qw += kVecs * 64) {
      __m256i hv = _mm256_setzero_si256();
      if constexpr (kBits > 4 && kBits < 8) hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + 64 * kNib));
      __m256i isum[TB], p16[TB];
      for (int t = 0; t < TB; ++t) isum[t] = p16[t] = _mm256_setzero_si256();
      // Group j of every token: add u x q to the int16 sums; widen them every kPairs groups.
      auto add_group = [&](int j, __m256i w, __m256i sgn) {
        for (int t = 0; t < TB; ++t) {
          int32_t x4;
          std::memcpy(&x4, X.q + (t0 + t) * X.cols + b * kBlock + 4 * j, 4);
          __m256i x = _mm256_set1_epi32(x4);
          if constexpr (kBits == 8) x = _mm256_sign_epi8(x, sgn);
          p16[t] = _mm256_add_epi16(p16[t], _mm256_maddubs_epi16(w, x));
          if ((j + 1) % kPairs == 0 || j + 1 == kGroups) {
            isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p16[t], ones));
            p16[t] = _mm256_setzero_si256();
          }
        }
      };
      if constexpr (kBits < 8) {
        for (int c = 0; c < kNib; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + 64 * c));
          __m256i w0 = _mm256_and_si256(v, low), w1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
          if constexpr (kBits > 4) {
            w0 = _mm256_or_si256(w0, high_bits<kBits - 4>(hv, 2 * c));
            w1 = _mm256_or_si256(w1, high_bits<kBits - 4>(hv, 2 * c + 1));
          }
          add_group(2 * c, w0, w0);
          add_group(2 * c + 1, w1, w1);
        }
      } else {
        for (int c = 0; c < kVecs; ++c) {
          const __m256i sv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qw + 64 * c));
          add_group(c, _mm256_abs_epi8(sv), sv);
        }
      }
      const __m256 d = block_d<kK>(W, g, b, h);
      __m256 m = _mm256_setzero_ps();
      if constexpr (kMin) m = block_m<kK>(W, g, b, h);
      for (int t = 0; t < TB; ++t) {
        const int64_t row = (t0 + t) * X.blocks + b;
        if (offset != 0) isum[t] = _mm256_sub_epi32(isum[t], _mm256_set1_epi32(offset * X.sum[row]));
        __m256 c = _mm256_mul_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(d, _mm256_set1_ps(X.dx[row])));
        if constexpr (kMin) c = _mm256_add_ps(c, _mm256_mul_ps(m, _mm256_set1_ps(X.sx[row])));
        acc[t] = _mm256_add_ps(acc[t], c);
      }
    }
    const int64_t nh = n - 8 * h < 0 ? 0 : (n - 8 * h > 8 ? 8 : n - 8 * h);  // rows of this half
    for (int t = 0; t < TB; ++t) {
      float out[8];
      _mm256_storeu_ps(out, acc[t]);
      std::memcpy(Y + (t0 + t) * W.rows + r0 + 8 * h, out, static_cast<size_t>(nh) * sizeof(float));
    }
  }
}

#include "engine/kernels/q8_tiles.inc"

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
  static const KernelTable table{"avx2", matmul_f32_rows, dot_f32, matmul_q8_groups, quantize_q8_32, attend_rows, exp_f32};
  return &table;
}

}  // namespace fleet::kernels
