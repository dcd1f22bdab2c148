#pragma once
// Random weight matrices of every type the engine holds, for kernel tests: random quants with
// small f16 scales (every other byte random), f16/f32/bf16 values in a sane range; and the f32
// matrix of their dequantized values.
#include <cstring>
#include <random>
#include <vector>

#include "model/weights.h"

namespace fleet::test {

// Offsets of the f16 scale fields in one block of each type (set to small sane values so the
// products stay bounded; every other byte is random).
inline std::vector<size_t> scale_offsets(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: return {0};
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q6_K: return {208};
    default: return {};
  }
}

inline Matrix random_matrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  Matrix m;
  m.dtype = t;
  m.rows = rows;
  m.cols = cols;
  m.owned.resize(m.bytes());
  std::mt19937 rng(seed);
  for (auto& b : m.owned) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  if (t == DType::F16 || t == DType::F32 || t == DType::BF16) {  // plain values in [-0.01, 0.01)
    const size_t width = t == DType::F32 ? 4 : 2;
    for (size_t i = 0; i < m.owned.size(); i += width) {
      const float v = scale(rng) - 0.01f;
      const uint16_t h = t == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(m.owned.data() + i, width == 4 ? static_cast<const void*>(&v) : &h, width);
    }
  }
  const size_t bb = dtype_block_bytes(t);
  for (size_t off = 0; off < m.owned.size(); off += bb)
    for (size_t s : scale_offsets(t)) {
      const uint16_t h = f32_to_f16(scale(rng));
      std::memcpy(m.owned.data() + off + s, &h, 2);
    }
  m.data = m.owned.data();
  return m;
}

inline Matrix dequantized(const Matrix& q) {
  Matrix m;
  m.dtype = DType::F32;
  m.rows = q.rows;
  m.cols = q.cols;
  m.owned.resize(m.bytes());
  for (int64_t r = 0; r < q.rows; ++r) q.row_to_f32(r, reinterpret_cast<float*>(m.owned.data()) + r * q.cols);
  m.data = m.owned.data();
  return m;
}

}  // namespace fleet::test
