// GGUF v3 writer (see gguf_writer.h).
#include "gguf/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

namespace fleet {

namespace {

GgufMeta scalar(GgufValueType t) {
  GgufMeta m;
  m.type = t;
  return m;
}

bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Little-endian encoding of the header into a byte string.
class Encoder {
 public:
  std::string out;
  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out.append(s);
  }
  void put_value(const GgufMeta& m) {
    switch (m.type) {
      case GgufValueType::U8: put<uint8_t>(static_cast<uint8_t>(m.u)); break;
      case GgufValueType::I8: put<int8_t>(static_cast<int8_t>(m.i)); break;
      case GgufValueType::U16: put<uint16_t>(static_cast<uint16_t>(m.u)); break;
      case GgufValueType::I16: put<int16_t>(static_cast<int16_t>(m.i)); break;
      case GgufValueType::U32: put<uint32_t>(static_cast<uint32_t>(m.u)); break;
      case GgufValueType::I32: put<int32_t>(static_cast<int32_t>(m.i)); break;
      case GgufValueType::U64: put<uint64_t>(m.u); break;
      case GgufValueType::I64: put<int64_t>(m.i); break;
      case GgufValueType::F32: put<float>(static_cast<float>(m.f)); break;
      case GgufValueType::F64: put<double>(m.f); break;
      case GgufValueType::Bool: put<uint8_t>(m.u ? 1 : 0); break;
      case GgufValueType::String: put_string(m.s); break;
      case GgufValueType::Array:
        put<uint32_t>(static_cast<uint32_t>(m.elem_type));
        put<uint64_t>(m.items.size());
        for (const GgufMeta& e : m.items) put_value(e);
        break;
    }
  }
};

// Checks that every element of an array (recursively) has its array's element type.
void check_array(const GgufMeta& m, const std::string& key) {
  if (m.type != GgufValueType::Array) return;
  for (size_t k = 0; k < m.items.size(); ++k) {
    if (m.items[k].type != m.elem_type)
      throw GgufError("GGUF metadata " + key + "[" + std::to_string(k) + "]: element is " +
                      gguf_value_type_name(m.items[k].type) + ", array holds " + gguf_value_type_name(m.elem_type));
    check_array(m.items[k], key + "[" + std::to_string(k) + "]");
  }
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

GgufMeta GgufMeta::u8(uint8_t v) { auto m = scalar(GgufValueType::U8); m.u = v; return m; }
GgufMeta GgufMeta::i8(int8_t v) { auto m = scalar(GgufValueType::I8); m.i = v; return m; }
GgufMeta GgufMeta::u16(uint16_t v) { auto m = scalar(GgufValueType::U16); m.u = v; return m; }
GgufMeta GgufMeta::i16(int16_t v) { auto m = scalar(GgufValueType::I16); m.i = v; return m; }
GgufMeta GgufMeta::u32(uint32_t v) { auto m = scalar(GgufValueType::U32); m.u = v; return m; }
GgufMeta GgufMeta::i32(int32_t v) { auto m = scalar(GgufValueType::I32); m.i = v; return m; }
GgufMeta GgufMeta::u64(uint64_t v) { auto m = scalar(GgufValueType::U64); m.u = v; return m; }
GgufMeta GgufMeta::i64(int64_t v) { auto m = scalar(GgufValueType::I64); m.i = v; return m; }
GgufMeta GgufMeta::f32(float v) { auto m = scalar(GgufValueType::F32); m.f = v; return m; }
GgufMeta GgufMeta::f64(double v) { auto m = scalar(GgufValueType::F64); m.f = v; return m; }
GgufMeta GgufMeta::boolean(bool v) { auto m = scalar(GgufValueType::Bool); m.u = v ? 1 : 0; return m; }
GgufMeta GgufMeta::string(std::string v) { auto m = scalar(GgufValueType::String); m.s = std::move(v); return m; }

GgufMeta GgufMeta::array(GgufValueType elem_type, std::vector<GgufMeta> items) {
  auto m = scalar(GgufValueType::Array);
  m.elem_type = elem_type;
  m.items = std::move(items);
  return m;
}

GgufMeta GgufMeta::strings(const std::vector<std::string>& v) {
  std::vector<GgufMeta> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(string(s));
  return array(GgufValueType::String, std::move(items));
}

GgufMeta GgufMeta::i32s(const std::vector<int32_t>& v) {
  std::vector<GgufMeta> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(i32(x));
  return array(GgufValueType::I32, std::move(items));
}

GgufMeta GgufMeta::f32s(const std::vector<float>& v) {
  std::vector<GgufMeta> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(f32(x));
  return array(GgufValueType::F32, std::move(items));
}

uint64_t GgufTensorSpec::nbytes() const {
  uint64_t rows = 1;
  for (size_t d = 1; d < ne.size(); ++d) rows *= static_cast<uint64_t>(ne[d]);
  return static_cast<uint64_t>(gguf_row_bytes(type, ne.empty() ? 1 : ne[0])) * rows;
}

void GgufWriter::set_alignment(uint32_t alignment) {
  if (!is_power_of_two(alignment))
    throw GgufError("GGUF alignment " + std::to_string(alignment) + " is not a power of two");
  alignment_ = alignment;
  if (alignment != 32 && !has("general.alignment")) add("general.alignment", GgufMeta::u32(alignment));
}

bool GgufWriter::has(const std::string& key) const {
  for (const auto& kv : kvs_)
    if (kv.first == key) return true;
  return false;
}

void GgufWriter::add(const std::string& key, GgufMeta value) {
  if (has(key)) throw GgufError("GGUF metadata " + key + ": duplicate key");
  check_array(value, key);
  kvs_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(GgufTensorSpec t) {
  const std::string what = "GGUF tensor " + t.name;
  for (const auto& o : tensors_)
    if (o.name == t.name) throw GgufError(what + ": duplicate name");
  if (t.ne.size() > 4) throw GgufError(what + ": " + std::to_string(t.ne.size()) + " dimensions (at most 4)");
  for (int64_t d : t.ne)
    if (d < 0) throw GgufError(what + ": negative dimension");
  const auto& traits = ggml_traits(t.type);
  if (!t.ne.empty() && t.ne[0] % traits.block_size != 0)
    throw GgufError(what + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of " + traits.name +
                    "'s block size " + std::to_string(traits.block_size));
  if (!t.write) throw GgufError(what + ": no data");
  tensors_.push_back(std::move(t));
}

void GgufWriter::write(const std::string& path) const {
  const uint64_t A = alignment_;
  auto pad = [A](uint64_t n) { return (n + A - 1) / A * A; };
  Encoder h;
  h.out.append("GGUF", 4);
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(kvs_.size());
  for (const auto& [key, value] : kvs_) {
    h.put_string(key);
    h.put<uint32_t>(static_cast<uint32_t>(value.type));
    h.put_value(value);
  }
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) h.put<uint64_t>(static_cast<uint64_t>(d));
    h.put<uint32_t>(static_cast<uint32_t>(t.type));
    h.put<uint64_t>(offset);
    offsets.push_back(offset);
    offset = pad(offset + t.nbytes());
  }
  h.out.resize(pad(h.out.size()), '\0');

  const std::string tmp = path + ".partial";
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) throw GgufError(tmp + ": cannot open for writing: " + std::strerror(errno));
  std::setvbuf(f.get(), nullptr, _IOFBF, 1 << 20);
  auto fail = [&](const std::string& what) {
    f.reset();
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw GgufError(path + ": " + what);
  };
  auto put = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f.get()) != n) fail(std::string("write failed: ") + std::strerror(errno));
  };
  put(h.out.data(), h.out.size());
  static const char zeros[64] = {};
  uint64_t at = 0;  // bytes of the data section written
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const GgufTensorSpec& t = tensors_[k];
    const uint64_t want = t.nbytes();
    while (at < offsets[k]) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof zeros, offsets[k] - at));
      put(zeros, n);
      at += n;
    }
    uint64_t got = 0;
    try {
      t.write([&](const void* p, size_t n) {
        if (got + n > want)
          throw GgufError("tensor " + t.name + " produced more than its " + std::to_string(want) + " bytes");
        put(p, n);
        got += n;
      });
    } catch (const std::exception& e) {
      fail(std::string("writing tensor ") + t.name + ": " + e.what());
    }
    if (got != want)
      fail("tensor " + t.name + " produced " + std::to_string(got) + " bytes, expected " + std::to_string(want));
    at += got;
  }
  while (at % A) {  // pad the last tensor, as GGUFWriter does
    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof zeros, pad(at) - at));
    put(zeros, n);
    at += n;
  }
  if (std::fflush(f.get()) != 0) fail(std::string("write failed: ") + std::strerror(errno));
  if (std::fclose(f.release()) != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw GgufError(path + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw GgufError(path + ": cannot rename " + tmp + ": " + ec.message());
}

}  // namespace fleet
