#include "model/safetensors_writer.h"

#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace fleet {

static size_t element_bytes(DType t) {
  if (t == DType::F32) return 4;
  if (t == DType::F16 || t == DType::BF16) return 2;
  throw std::runtime_error(std::string("safetensors cannot store dtype ") + dtype_name(t));
}

void encode_f32(const float* values, size_t n, DType dtype, std::vector<uint8_t>& out) {
  out.resize(n * element_bytes(dtype));
  if (dtype == DType::F32) {
    std::memcpy(out.data(), values, n * 4);
  } else if (dtype == DType::BF16 || dtype == DType::F16) {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  } else {
    throw std::runtime_error("encode_f32: unsupported dtype");
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    uint64_t n = element_bytes(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    std::string dt = t.dtype == DType::F32 ? "F32" : t.dtype == DType::BF16 ? "BF16" : "F16";
    header[t.name] = {{"dtype", dt}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    sizes.push_back(n);
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  uint64_t len = h.size();
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out.write(len_bytes, 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    tensors[i].fill(buf);
    if (buf.size() != sizes[i])
      throw std::runtime_error(path + ": tensor " + tensors[i].name + " produced " + std::to_string(buf.size()) +
                               " bytes, expected " + std::to_string(sizes[i]));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  }
  out.close();
  if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace fleet
