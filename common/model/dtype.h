#pragma once
// Element types of tensors in files and in memory, and exact conversions between them.
//
// The block-quantized types are ggml's (gguf/gguf_types.h has their layouts): a row is a
// sequence of blocks of 32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) or 256 (Q4_K, Q5_K, Q6_K) values.
// Weights of these types stay in that compact form in memory and are dequantized inside the
// matmul kernel (engine/matmul.h); Q8_0 is also what `weight_dtype: q8_0` quantizes f32/bf16
// checkpoints to at load (ggml's quantize_row_q8_0_ref), so there is one Q8_0 layout.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "gguf/gguf_types.h"
#include "util/half_float.h"  // bf16_to_f32, f32_to_bf16, f16_to_f32, f32_to_f16

namespace fleet {

enum class DType { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K };

const char* dtype_name(DType t);
// Parses "f32", "bf16", "f16", "q8_0", "q4_0", ... "q6_k" (case-insensitive; safetensors
// spellings F32/BF16/F16 too).
DType parse_dtype(const std::string& s);

bool dtype_is_quantized(DType t);  // a ggml block type
GgmlType dtype_to_ggml(DType t);
std::optional<DType> dtype_from_ggml(GgmlType t);  // nullopt for ggml types the engine lacks
int64_t dtype_block_size(DType t);                 // values per block (1 for f32/f16/bf16)
size_t dtype_block_bytes(DType t);                 // bytes per block

// Q8_0 blocks: 32 values.
inline constexpr int kQ8Block = 32;

}  // namespace fleet
