#include "engine/kernels/packed_q8.h"

#include "engine/kernels/kernel_select.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace fleet::kernels {

namespace {

inline uint16_t f16_bits(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return h;
}

// The 12 scale bytes of Q4_K/Q5_K hold 8 (scale, min) pairs of 6 bits each (as ggml).
inline void scale_min_k4(int j, const uint8_t* q, int* d, int* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

struct Family {
  int bits;  // 4, 5, 6 (nibbles and a high-bit vector) or 8
  bool has_min, k_partner;
  int bias, block;
  bool k_scales() const { return k_partner; }  // K-quants: super-block f16 x block integer
  int blocks_per_super() const { return 256 / block; }
};

// A row's scales as the file stores them: f16 d (and m) per block; for K-quants, f16 d (and
// dmin) per super-block of 256 values and integer sc (and mn) per block.
struct RowScales {
  std::vector<uint16_t> d, m;
  std::vector<int8_t> sc, mn;
};

Family family_of(DType t) {
  switch (t) {
    case DType::Q4_0: return {4, false, false, 8, 32};
    case DType::Q4_1: return {4, true, false, 0, 32};
    case DType::Q4_K: return {4, true, true, 0, 32};
    case DType::Q5_0: return {5, false, false, 16, 32};
    case DType::Q5_1: return {5, true, false, 0, 32};
    case DType::Q5_K: return {5, true, true, 0, 32};
    case DType::Q6_K: return {6, false, true, 32, 16};
    case DType::Q8_0: return {8, false, false, 0, 32};
    default: throw std::runtime_error(std::string("q8 activations: no integer kernel for ") + dtype_name(t) + " weights");
  }
}

// One row of `cols` values (whole blocks) as integers v and its scales: value = d * v + m, as
// ggml dequantizes it (kernel_types.h).
void decode_row(DType t, const uint8_t* x, int64_t cols, int8_t* v, RowScales& rs) {
  uint16_t* d = rs.d.data();
  uint16_t* m = rs.m.data();
  switch (t) {
    case DType::Q4_0:
    case DType::Q4_1: {
      const bool min = t == DType::Q4_1;
      const int bytes = min ? 20 : 18;
      for (int64_t b = 0; b < cols / 32; ++b, x += bytes, v += 32) {
        d[b] = f16_bits(x);
        if (min) m[b] = f16_bits(x + 2);
        const uint8_t* qs = x + (min ? 4 : 2);
        const int off = min ? 0 : 8;
        for (int j = 0; j < 16; ++j) {
          v[j] = static_cast<int8_t>((qs[j] & 0x0F) - off);
          v[j + 16] = static_cast<int8_t>((qs[j] >> 4) - off);
        }
      }
      return;
    }
    case DType::Q5_0:
    case DType::Q5_1: {
      const bool min = t == DType::Q5_1;
      const int bytes = min ? 24 : 22;
      for (int64_t b = 0; b < cols / 32; ++b, x += bytes, v += 32) {
        d[b] = f16_bits(x);
        if (min) m[b] = f16_bits(x + 2);
        uint32_t qh;
        std::memcpy(&qh, x + (min ? 4 : 2), 4);
        const uint8_t* qs = x + (min ? 8 : 6);
        const int off = min ? 0 : 16;
        for (int j = 0; j < 16; ++j) {
          const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
          v[j] = static_cast<int8_t>(((qs[j] & 0x0F) | h0) - off);
          v[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | h1) - off);
        }
      }
      return;
    }
    case DType::Q8_0:
      for (int64_t b = 0; b < cols / 32; ++b, x += 34, v += 32) {
        d[b] = f16_bits(x);
        std::memcpy(v, x + 2, 32);
      }
      return;
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool five = t == DType::Q5_K;
      for (int64_t s = 0; s < cols / 256; ++s, x += five ? 176 : 144) {
        d[s] = f16_bits(x);
        m[s] = f16_bits(x + 2);
        const uint8_t* scales = x + 4;
        const uint8_t* qh = x + 16;
        const uint8_t* ql = x + (five ? 48 : 16);
        for (int j = 0; j < 4; ++j, ql += 32) {  // 64 values: low nibbles (sub-block 2j), high (2j+1)
          for (int half = 0; half < 2; ++half) {
            int sc, mn;
            scale_min_k4(2 * j + half, scales, &sc, &mn);
            const int64_t blk = s * 8 + 2 * j + half;
            rs.sc[static_cast<size_t>(blk)] = static_cast<int8_t>(sc);
            rs.mn[static_cast<size_t>(blk)] = static_cast<int8_t>(mn);
            const unsigned bit = 1u << (2 * j + half);
            for (int l = 0; l < 32; ++l) {
              int q = half ? ql[l] >> 4 : ql[l] & 0xF;
              if (five && (qh[l] & bit)) q += 16;
              v[blk * 32 + l] = static_cast<int8_t>(q);
            }
          }
        }
      }
      return;
    }
    case DType::Q6_K:
      for (int64_t s = 0; s < cols / 256; ++s, x += 210) {
        const uint8_t* ql = x;
        const uint8_t* qh = x + 128;
        const auto* sc = reinterpret_cast<const int8_t*>(x + 192);
        d[s] = f16_bits(x + 208);
        int8_t* y = v + s * 256;
        for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32) {
          for (int l = 0; l < 32; ++l) {
            y[l + 0] = static_cast<int8_t>(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            y[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            y[l + 64] = static_cast<int8_t>(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            y[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
          }
        }
        for (int j = 0; j < 16; ++j) rs.sc[static_cast<size_t>(s * 16 + j)] = sc[j];  // blocks of 16 values
      }
      return;
    default: break;
  }
  throw std::runtime_error(std::string("q8 activations: cannot decode ") + dtype_name(t));
}

}  // namespace

namespace {
// One block of one row (row r of its group) into the group's interleaved layout: value j = 4k + e
// goes to byte 4r + e of vector k (8 bits), or to nibble k % 2 of byte 4r + e of vector k / 2
// with its bits above 4 at bits (BITS - 4) * k of byte 4r + e of vector `nib` (kernel_types.h).
// Every byte of the row is computed whole and stored once.
template <int BITS>
inline void pack_block(const int8_t* vb, int block, int bias, int nib, int64_t r, uint8_t* qb) {
  uint8_t* out = qb + 4 * r;
  if constexpr (BITS == 8) {
    for (int k = 0; k < block / 4; ++k) std::memcpy(out + 64 * k, vb + 4 * k, 4);
  } else {
    uint8_t high[4] = {0, 0, 0, 0};
    for (int k2 = 0; k2 < block / 8; ++k2)
      for (int e = 0; e < 4; ++e) {
        const int lo = vb[8 * k2 + e] + bias, hi = vb[8 * k2 + 4 + e] + bias;  // k = 2 k2 and 2 k2 + 1
        out[64 * k2 + e] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
        if constexpr (BITS > 4)
          high[e] |= static_cast<uint8_t>(((lo >> 4) << ((BITS - 4) * 2 * k2)) | ((hi >> 4) << ((BITS - 4) * (2 * k2 + 1))));
      }
    if constexpr (BITS > 4) std::memcpy(out + 64 * nib, high, 4);
  }
}
}  // namespace

PackedQ8::PackedQ8(const Matrix& W) {
  const Family f = family_of(W.dtype);
  PackedQ8View& p = view_;
  p.bits = f.bits;
  p.has_min = f.has_min;
  p.bias = f.bias;
  p.block = f.block;
  p.k_partner = f.k_partner;
  p.k_scales = f.k_scales();
  p.blocks_per_super = f.k_scales() ? f.blocks_per_super() : 1;
  p.rows = W.rows;
  p.cols = W.blocks_per_row() * dtype_block_size(W.dtype);
  p.groups = (W.rows + kGroupRows - 1) / kGroupRows;
  p.blocks = p.cols / f.block;
  const int nib = f.block / 8;  // nibble vectors per block (bits < 8)
  const int vecs = f.bits == 8 ? f.block / 4 : nib + (f.bits > 4 ? 1 : 0);
  const size_t block_bytes = 64 * static_cast<size_t>(vecs);
  p.group_bytes = block_bytes * static_cast<size_t>(p.blocks);
  quants_.assign(p.group_bytes * static_cast<size_t>(p.groups), 0);
  const int64_t supers = f.k_scales() ? p.blocks / p.blocks_per_super : p.blocks;  // f16 scales per row
  d_.assign(static_cast<size_t>(p.groups * supers * kGroupRows), 0);
  if (f.has_min) m_.assign(d_.size(), 0);
  if (f.k_scales()) {
    sc_.assign(static_cast<size_t>(p.groups * p.blocks * kGroupRows), 0);
    if (f.has_min) mn_.assign(sc_.size(), 0);
  }

  // Each group of kGroupRows rows is written only to its own bytes: the groups are repacked
  // on every core (a one-off at start-up: 1.2 GB of Q4_K took 5.5 s on one thread).
  auto pack_groups = [&](int64_t g_begin, int64_t g_end) {
    std::vector<int8_t> v(static_cast<size_t>(p.cols));
    RowScales rs{std::vector<uint16_t>(static_cast<size_t>(supers)), std::vector<uint16_t>(static_cast<size_t>(supers)),
                 std::vector<int8_t>(static_cast<size_t>(p.blocks)), std::vector<int8_t>(static_cast<size_t>(p.blocks))};
    for (int64_t row = g_begin * kGroupRows; row < std::min<int64_t>(W.rows, g_end * kGroupRows); ++row) {
      decode_row(W.dtype, static_cast<const uint8_t*>(W.data) + static_cast<size_t>(row) * W.row_bytes(), p.cols,
                 v.data(), rs);
      const int64_t g = row / kGroupRows, r = row % kGroupRows;
      for (int64_t s = 0; s < supers; ++s) {
        const size_t si = static_cast<size_t>((g * supers + s) * kGroupRows + r);
        d_[si] = rs.d[static_cast<size_t>(s)];
        if (f.has_min) m_[si] = rs.m[static_cast<size_t>(s)];
      }
      uint8_t* qg = quants_.data() + static_cast<size_t>(g) * p.group_bytes;
      for (int64_t b = 0; b < p.blocks; ++b) {
        if (f.k_scales()) {
          const size_t si = static_cast<size_t>((g * p.blocks + b) * kGroupRows + r);
          sc_[si] = rs.sc[static_cast<size_t>(b)];
          if (f.has_min) mn_[si] = rs.mn[static_cast<size_t>(b)];
        }
        uint8_t* qb = qg + static_cast<size_t>(b) * block_bytes;
        const int8_t* vb = v.data() + b * f.block;
        switch (f.bits) {  // value j = 4k + e (layout: kernel_types.h)
          case 8: pack_block<8>(vb, f.block, f.bias, nib, r, qb); break;
          case 6: pack_block<6>(vb, f.block, f.bias, nib, r, qb); break;
          case 5: pack_block<5>(vb, f.block, f.bias, nib, r, qb); break;
          default: pack_block<4>(vb, f.block, f.bias, nib, r, qb); break;
        }
      }
    }
  };
  const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(1, p.groups / 8));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t)
    pool.emplace_back(pack_groups, p.groups * t / threads, p.groups * (t + 1) / threads);
  pack_groups(0, p.groups / threads);
  for (std::thread& t : pool) t.join();
  p.quants = quants_.data();
  p.d = d_.data();
  p.m = f.has_min ? m_.data() : nullptr;
  p.sc = f.k_scales() ? sc_.data() : nullptr;
  p.mn = f.k_scales() && f.has_min ? mn_.data() : nullptr;
}

namespace {

// ggml's nearest_int: round half to even through the float mantissa (|x| <= 2^22).
inline int nearest_int(float x) {
  const float val = x + 12582912.f;
  int32_t i;
  std::memcpy(&i, &val, 4);
  return (i & 0x007fffff) - 0x00400000;
}

}  // namespace

void Q8Activations::quantize(const float* X, int64_t n_tokens, int64_t cols, const PackedQ8View& like) {
  const int64_t K = like.cols, B = like.block, nb = K / B;
  if (cols > K) throw std::logic_error("q8 activations: more columns than the matrix holds");
  k_partner_ = like.k_partner;
  q_.assign(static_cast<size_t>(n_tokens * K), 0);
  dx_.resize(static_cast<size_t>(n_tokens * nb));
  sx_.resize(static_cast<size_t>(n_tokens * nb));
  sum_.resize(static_cast<size_t>(n_tokens * nb));
  const int64_t QB = like.k_partner ? 256 : 32;  // values per activation scale
  std::vector<float>& x = row_;  // one row, zero-padded to whole blocks (reused across calls)
  x.assign(static_cast<size_t>(K), 0.f);
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::memcpy(x.data(), X + t * cols, static_cast<size_t>(cols) * sizeof(float));
    int8_t* q = q_.data() + t * K;
    for (int64_t a = 0; a < K; a += QB) {
      float d = 0.f;
      if (!like.k_partner) {  // quantize_row_q8_0_ref / q8_1_ref, by the active kernel variant
        active_kernels().quantize_q8_32(x.data() + a, 1, q + a, &d);
      } else {  // quantize_row_q8_K_ref
        float amax = 0.f, max = 0.f;
        for (int64_t j = a; j < a + QB; ++j) {
          const float ax = std::fabs(x[static_cast<size_t>(j)]);
          if (ax > amax) {
            amax = ax;
            max = x[static_cast<size_t>(j)];
          }
        }
        if (amax != 0.f) {
          const float iscale = -127.f / max;
          for (int64_t j = a; j < a + QB; ++j) q[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[static_cast<size_t>(j)])));
          d = 1 / iscale;
        }
      }
      // Q8_0/Q8_1 store d (and s) as f16; Q8_K keeps an f32 d.
      const float dx = like.k_partner ? d : f16_to_f32(f32_to_f16(d));
      for (int64_t b = a / B; b < (a + QB) / B; ++b) {
        int32_t s = 0;
        for (int64_t j = b * B; j < (b + 1) * B; ++j) s += q[j];
        const size_t i = static_cast<size_t>(t * nb + b);
        dx_[i] = dx;
        sum_[i] = s;
        // Q8_1: s = f16(d * sum), one scale per 32 values; for Q8_K, dx * sum per block.
        sx_[i] = like.k_partner ? dx * static_cast<float>(s) : f16_to_f32(f32_to_f16(d * static_cast<float>(s)));
      }
    }
  }
  view_ = Q8ActView{n_tokens, K, nb, static_cast<int>(B), q_.data(), dx_.data(), sum_.data(), sx_.data()};
}

}  // namespace fleet::kernels
