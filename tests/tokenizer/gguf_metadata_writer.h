#pragma once
// Test helper: writes a GGUF v3 file holding metadata only (no tensors), enough for
// tokenizer metadata. Little-endian, as GGUF is.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fleet::test {

class GgufMetadataWriter {
 public:
  GgufMetadataWriter& str(const std::string& key, const std::string& v) {
    begin(key, kString);
    put_str(v);
    return *this;
  }
  GgufMetadataWriter& u32(const std::string& key, uint32_t v) {
    begin(key, kU32);
    put(&v, 4);
    return *this;
  }
  GgufMetadataWriter& boolean(const std::string& key, bool v) {
    begin(key, kBool);
    const uint8_t b = v ? 1 : 0;
    put(&b, 1);
    return *this;
  }
  GgufMetadataWriter& strings(const std::string& key, const std::vector<std::string>& v) {
    begin_array(key, kString, v.size());
    for (const auto& s : v) put_str(s);
    return *this;
  }
  GgufMetadataWriter& f32s(const std::string& key, const std::vector<float>& v) {
    begin_array(key, kF32, v.size());
    put(v.data(), v.size() * 4);
    return *this;
  }
  GgufMetadataWriter& i32s(const std::string& key, const std::vector<int32_t>& v) {
    begin_array(key, kI32, v.size());
    put(v.data(), v.size() * 4);
    return *this;
  }

  void write(const std::string& path) const {
    std::vector<uint8_t> out;
    auto raw = [&](const void* p, size_t n) {
      out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    const uint32_t version = 3;
    const uint64_t n_tensors = 0;
    raw("GGUF", 4);
    raw(&version, 4);
    raw(&n_tensors, 8);
    raw(&n_kv_, 8);
    raw(body_.data(), body_.size());
    out.resize((out.size() + 31) / 32 * 32, 0);  // the (empty) data section starts aligned
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size())))
      throw std::runtime_error("cannot write " + path);
  }

 private:
  enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };
  std::vector<uint8_t> body_;
  uint64_t n_kv_ = 0;

  void put(const void* p, size_t n) {
    body_.insert(body_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  }
  void put_str(const std::string& s) {
    const uint64_t n = s.size();
    put(&n, 8);
    put(s.data(), s.size());
  }
  void begin(const std::string& key, uint32_t type) {
    ++n_kv_;
    put_str(key);
    put(&type, 4);
  }
  void begin_array(const std::string& key, uint32_t elem_type, uint64_t count) {
    begin(key, kArray);
    put(&elem_type, 4);
    put(&count, 8);
  }
};

}  // namespace fleet::test
