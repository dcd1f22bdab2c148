#include "model/dtype.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fleet {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::Q8_0: return "q8_0";
  }
  return "?";
}

DType parse_dtype(const std::string& s) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "f32" || l == "float32") return DType::F32;
  if (l == "f16" || l == "float16") return DType::F16;
  if (l == "bf16" || l == "bfloat16") return DType::BF16;
  if (l == "q8_0") return DType::Q8_0;
  throw std::runtime_error("unsupported dtype '" + s + "' (supported: f32, f16, bf16, q8_0)");
}

}  // namespace fleet
