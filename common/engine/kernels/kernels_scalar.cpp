// The scalar variant: plain C++ for any x86-64 (or other) CPU, and the definition of every
// kernel's operation order that the SIMD variants reproduce bit for bit:
//  - f32 activations (f32_kernels.inc): 16 lanes of fma over k, a fixed reduction tree, then
//    the scalar tail;
//  - q8 activations: per weight row and block, the exact integer sum of v * q (the stored
//    offset removed), then  acc = acc + ((float)isum * (d * dx))  [+ m * sx, added to the
//    product before it is added to acc], blocks in order.
#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/kernels/kernel_common.h"
#include "util/half_float.h"

namespace fleet::kernels {
namespace {

struct V16 {
  float v[16];
  using Part = V16;  // one part: a tile accumulates all 16 lanes at once
  static constexpr int kParts = 1;
  void set_part(int, V16 x) { *this = x; }
  void keep_in_register() {}
  static V16 zero() { return V16{}; }
  static V16 load(const float* p) {
    V16 r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static V16 load_bf16(const uint16_t* p) {
    V16 r;
    for (int i = 0; i < 16; ++i) {
      const uint32_t u = static_cast<uint32_t>(p[i]) << 16;
      std::memcpy(&r.v[i], &u, 4);
    }
    return r;
  }
  static V16 load_f16(const uint16_t* p) {
    V16 r;
    for (int i = 0; i < 16; ++i) r.v[i] = f16_to_f32(p[i]);
    return r;
  }
  void store(float* p) const { std::memcpy(p, v, sizeof v); }
  void add_scaled(V16 x, float a) {
    for (int i = 0; i < 16; ++i) v[i] = v[i] + a * x.v[i];
  }
  void fma(V16 a, V16 b) {
    for (int i = 0; i < 16; ++i) v[i] = std::fma(a.v[i], b.v[i], v[i]);
  }
  float sum() const {
    float s8[8], s4[4];
    for (int i = 0; i < 8; ++i) s8[i] = v[i] + v[i + 8];
    for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
    const float s2a = s4[0] + s4[2], s2b = s4[1] + s4[3];
    return s2a + s2b;
  }
};

void dequantize_row(int type, const uint8_t* x, int64_t n, float* y) { dequantize_generic(type, x, n, y); }

inline float f16_value(uint16_t h) { return f16_to_f32(h); }
#include "engine/kernels/exp_kernels.inc"

constexpr int kTokBlock = 4;  // f32 tiles: 4 rows x 4 tokens of accumulators
#include "engine/kernels/f32_kernels.inc"

// Row r's scale d and min m of block b of group g (kernel_types.h: f16 per block, or K-quant
// super-block f16 times block integer, m negated).
template <bool kK>
inline float block_d(const PackedQ8View& W, int64_t g, int64_t b, int r) {
  if constexpr (!kK) return f16_to_f32(W.d[(g * W.blocks + b) * kGroupRows + r]);
  const int64_t supers = W.blocks / W.blocks_per_super;
  return f16_to_f32(W.d[(g * supers + b / W.blocks_per_super) * kGroupRows + r]) *
         static_cast<float>(W.sc[(g * W.blocks + b) * kGroupRows + r]);
}
template <bool kK>
inline float block_m(const PackedQ8View& W, int64_t g, int64_t b, int r) {
  if constexpr (!kK) return f16_to_f32(W.m[(g * W.blocks + b) * kGroupRows + r]);
  const int64_t supers = W.blocks / W.blocks_per_super;
  return -(f16_to_f32(W.m[(g * supers + b / W.blocks_per_super) * kGroupRows + r]) *
           static_cast<float>(W.mn[(g * W.blocks + b) * kGroupRows + r]));
}

template <int kBits, int kBlock, bool kMin, bool kK>
void q8_groups(const PackedQ8View& W, int64_t g0, int64_t g1, const Q8ActView& X, float* Y) {
  constexpr int kNib = kBlock / 8;
  constexpr int kVecs = kBits == 8 ? kBlock / 4 : kNib + (kBits > 4 ? 1 : 0);
  constexpr int kHb = kBits - 4;  // high bits per value (5 and 6 bits)
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t r0 = g * kGroupRows;
    const int64_t n = W.rows - r0 < kGroupRows ? W.rows - r0 : kGroupRows;
    for (int64_t t = 0; t < X.tokens; ++t) {
      float acc[kGroupRows] = {};
      const uint8_t* qw = W.quants + static_cast<size_t>(g) * W.group_bytes;
      for (int64_t b = 0; b < W.blocks; ++b, qw += kVecs * 64) {
        const int64_t row = t * X.blocks + b;
        const int8_t* xq = X.q + t * X.cols + b * kBlock;
        int32_t isum[kGroupRows] = {};
        for (int r = 0; r < kGroupRows; ++r)
          for (int j = 0; j < kBlock; ++j) {  // value j = 4k + e of row r
            const int k = j / 4, e = j % 4;
            int32_t u;
            if constexpr (kBits == 8) {
              u = static_cast<int8_t>(qw[64 * k + 4 * r + e]);
            } else {
              const uint8_t nib = qw[64 * (k / 2) + 4 * r + e];
              u = k % 2 ? nib >> 4 : nib & 0x0F;
              if constexpr (kBits > 4) u |= ((qw[64 * kNib + 4 * r + e] >> (kHb * k)) & ((1 << kHb) - 1)) << 4;
            }
            isum[r] += u * xq[j];
          }
        const float dx = X.dx[row];
        for (int r = 0; r < kGroupRows; ++r) {
          if constexpr (kBits < 8) isum[r] -= W.bias * X.sum[row];
          float c = static_cast<float>(isum[r]) * (block_d<kK>(W, g, b, r) * dx);
          if constexpr (kMin) c = c + block_m<kK>(W, g, b, r) * X.sx[row];
          acc[r] = acc[r] + c;
        }
      }
      std::memcpy(Y + t * W.rows + r0, acc, static_cast<size_t>(n) * sizeof(float));
    }
  }
}

#include "engine/kernels/q8_dispatch.inc"

void quantize_q8_32(const float* x, int64_t n_blocks, int8_t* q, float* d_out) {
  for (int64_t b = 0; b < n_blocks; ++b, x += 32, q += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    d_out[b] = d;
    for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

}  // namespace

const KernelTable* scalar_kernels() {
  static const KernelTable table{"scalar", matmul_f32_rows, dot_f32, matmul_q8_groups, quantize_q8_32, attend_rows, exp_f32};
  return &table;
}

}  // namespace fleet::kernels
