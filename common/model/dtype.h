#pragma once
// Element types of tensors in files and in memory, and exact conversions between them.
#include <cstdint>
#include <cstring>
#include <string>

namespace fleet {

enum class DType { F32, F16, BF16, Q8_0 };

const char* dtype_name(DType t);
// Parses "f32", "bf16", "f16", "q8_0" (case-insensitive; safetensors spellings F32/BF16/F16 too).
DType parse_dtype(const std::string& s);

// Q8_0: each row is split into blocks of 32 values with one f32 scale; values are int8.
inline constexpr int kQ8Block = 32;

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even; overflow to infinity

}  // namespace fleet
