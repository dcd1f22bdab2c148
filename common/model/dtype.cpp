#include "model/dtype.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fleet {

namespace {
struct DTypeInfo {
  DType dtype;
  const char* name;
  GgmlType ggml;
};
constexpr DTypeInfo kTypes[] = {
    {DType::F32, "f32", GgmlType::F32},     {DType::F16, "f16", GgmlType::F16},
    {DType::BF16, "bf16", GgmlType::BF16},  {DType::Q8_0, "q8_0", GgmlType::Q8_0},
    {DType::Q4_0, "q4_0", GgmlType::Q4_0},  {DType::Q4_1, "q4_1", GgmlType::Q4_1},
    {DType::Q5_0, "q5_0", GgmlType::Q5_0},  {DType::Q5_1, "q5_1", GgmlType::Q5_1},
    {DType::Q4_K, "q4_k", GgmlType::Q4_K},  {DType::Q5_K, "q5_k", GgmlType::Q5_K},
    {DType::Q6_K, "q6_k", GgmlType::Q6_K},
};
const DTypeInfo& info(DType t) {
  for (const auto& i : kTypes)
    if (i.dtype == t) return i;
  throw std::logic_error("unknown DType");
}
}  // namespace

const char* dtype_name(DType t) { return info(t).name; }

DType parse_dtype(const std::string& s) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "float32") l = "f32";
  if (l == "float16") l = "f16";
  if (l == "bfloat16") l = "bf16";
  std::string names;
  for (const auto& i : kTypes) {
    if (l == i.name) return i.dtype;
    names += std::string(names.empty() ? "" : ", ") + i.name;
  }
  throw std::runtime_error("unsupported dtype '" + s + "' (supported: " + names + ")");
}

bool dtype_is_quantized(DType t) { return t != DType::F32 && t != DType::F16 && t != DType::BF16; }
GgmlType dtype_to_ggml(DType t) { return info(t).ggml; }

std::optional<DType> dtype_from_ggml(GgmlType t) {
  for (const auto& i : kTypes)
    if (i.ggml == t) return i.dtype;
  return std::nullopt;
}

int64_t dtype_block_size(DType t) { return ggml_traits(dtype_to_ggml(t)).block_size; }
size_t dtype_block_bytes(DType t) { return ggml_traits(dtype_to_ggml(t)).type_size; }

}  // namespace fleet
