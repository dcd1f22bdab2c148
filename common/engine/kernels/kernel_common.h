#pragma once
// Shared by the per-ISA kernel files (and only by them): the DType numbers as plain ints and
// the one dequantizer every variant may call for the types it has no SIMD decoder for.
#include <cstdint>

#include "engine/kernels/kernel_types.h"
#include "model/dtype.h"

namespace fleet::kernels {

inline constexpr int kDTypeF32 = static_cast<int>(DType::F32);
inline constexpr int kDTypeF16 = static_cast<int>(DType::F16);
inline constexpr int kDTypeBF16 = static_cast<int>(DType::BF16);
inline constexpr int kDTypeQ8_0 = static_cast<int>(DType::Q8_0);
inline constexpr int kDTypeQ4_0 = static_cast<int>(DType::Q4_0);
inline constexpr int kDTypeQ4_1 = static_cast<int>(DType::Q4_1);

// gguf_dequantize of n values of DType `type` (compiled for the baseline ISA).
void dequantize_generic(int type, const uint8_t* x, int64_t n, float* y);

}  // namespace fleet::kernels
