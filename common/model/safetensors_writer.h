#pragma once
// Writes a .safetensors file: 8-byte little-endian header length, JSON header (padded with
// spaces to a multiple of 8), then the tensors' bytes in order. Tensors are streamed to disk
// one at a time, so writing a multi-GB model needs memory for one tensor only.
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace fleet {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;  // F32, F16 or BF16
  std::vector<int64_t> shape;
  // Fills `out` with the tensor's little-endian bytes (size = numel * element size).
  std::function<void(std::vector<uint8_t>& out)> fill;
};

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors);

// Converts f32 values to the bytes of `dtype` (F32, BF16 or F16).
void encode_f32(const float* values, size_t n, DType dtype, std::vector<uint8_t>& out);

}  // namespace fleet
