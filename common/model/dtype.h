#pragma once
// Element types of tensors in files and in memory, and exact conversions between them.
#include <cstdint>
#include <cstring>
#include <string>

#include "util/half_float.h"  // bf16_to_f32, f32_to_bf16, f16_to_f32, f32_to_f16

namespace fleet {

enum class DType { F32, F16, BF16, Q8_0 };

const char* dtype_name(DType t);
// Parses "f32", "bf16", "f16", "q8_0" (case-insensitive; safetensors spellings F32/BF16/F16 too).
DType parse_dtype(const std::string& s);

// Q8_0: each row is split into blocks of 32 values with one f32 scale; values are int8.
inline constexpr int kQ8Block = 32;



}  // namespace fleet
