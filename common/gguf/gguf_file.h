#pragma once
// Reader for GGUF files (llama.cpp's checkpoint format), versions 2 and 3, little-endian.
//
// Layout: "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count metadata entries
// (string key, u32 value type, value); tensor_count tensor infos (string name, u32 n_dims,
// u64 ne[n_dims], u32 ggml type, u64 offset); padding to the alignment (metadata
// `general.alignment`, u32, default 32); then the tensor data, each tensor at its offset from
// the start of that data section. A string is a u64 byte length and its bytes (no NUL).
//
//   GgufFile f = GgufFile::open(path);           // mmaps the file, parses and checks all metadata
//   f.get<uint32_t>("llama.block_count");        // throws when missing / of the wrong type
//   f.get_or<float>("llama.rope.freq_base", 10000.f);
//   for (const GgufTensorInfo& t : f.tensors())  // file order
//     gguf_dequantize(t.type, f.tensor_data(t), t.numel, out);
//
// Opening validates everything it can without reading tensor bytes: every length and count is
// checked against the bytes left before anything is allocated (and capped: 2^24 metadata
// entries / tensors, arrays nested 16 deep, 4 dimensions, alignment a power of two <= 2^30);
// tensor types, shapes, sizes (overflow-checked) and offsets (aligned, inside the file); no
// duplicate keys or tensor names. Tensors may lie in any order and with gaps (llama.cpp also
// insists on packing; here only alignment and bounds matter). Every problem throws GgufError
// (a std::runtime_error) whose message starts with the file's path and says what is wrong and
// where (byte offset, metadata key, tensor name). Tensor bytes are not touched at open.
//
// Shapes are in ggml order: ne[0] is the row length (the fastest-varying dimension), so a
// PyTorch/safetensors tensor of shape [rows, cols] is ne = {cols, rows} here.
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gguf/gguf_types.h"
#include "util/mapped_file.h"

namespace fleet {

// Metadata value types (gguf_type).
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);  // "u32", "string", "array", ...

// One metadata value. Integers are held widened (unsigned in `u`, signed in `i`), floats as
// double (an f32 widens exactly), so `type` still tells what the file said. An array is not
// decoded at open (only checked): it keeps its element type, count and a pointer to its
// encoded elements inside the file's bytes, and elements() decodes one level on demand. A
// value therefore refers to the file's bytes and is valid only while its GgufFile lives.
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  uint64_t u = 0;  // U8, U16, U32, U64, Bool (0 or 1)
  int64_t i = 0;   // I8, I16, I32, I64
  double f = 0;    // F32, F64
  std::string s;   // String
  GgufValueType elem_type = GgufValueType::U8;  // Array: element type
  uint64_t count = 0;                           // Array: number of elements
  const uint8_t* raw = nullptr;                 // Array: encoded elements
  size_t raw_bytes = 0;                         // Array: their size

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }
  bool is_array() const { return type == GgufValueType::Array; }
  std::vector<GgufValue> elements() const;  // Array: its elements, decoded (arrays stay lazy)
  // Converting accessors; each throws GgufError (naming `what`) on a type mismatch:
  int64_t as_int(const std::string& what) const;     // any integer type (u64 must fit int64)
  uint64_t as_uint(const std::string& what) const;   // any integer type (must be >= 0)
  double as_double(const std::string& what) const;   // F32 or F64
  bool as_bool(const std::string& what) const;       // Bool
  const std::string& as_string(const std::string& what) const;  // String
};

struct GgufKV {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order, ne[0] = row length; 0 to 4 dimensions (ggml's limit)
  uint64_t offset = 0;      // from the start of the data section (a multiple of the alignment)
  uint64_t nbytes = 0;      // gguf_row_bytes(type, ne[0]) * rows
  int64_t numel = 0;
  int64_t row_length() const { return ne.empty() ? 1 : ne[0]; }
  int64_t rows() const { return ne.empty() ? 1 : ne[0] == 0 ? 0 : numel / ne[0]; }
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws GgufError (or std::runtime_error from the mapping: missing
  // file, not a regular file) naming the path.
  static GgufFile open(const std::string& path);
  // Parses a GGUF image already in memory; `name` stands for the path in messages. The bytes
  // are not copied: they must outlive the GgufFile.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& name);

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
  size_t file_size() const { return size_; }

  // Metadata in file order (the header fields GGUF.* of the Python reader are not entries).
  const std::vector<GgufKV>& metadata() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;
  // The value of `key` converted to T: an integral type (range-checked; any GGUF integer
  // type converts), float/double (F32 or F64), bool, std::string, or std::vector of one of
  // these (an array of convertible elements). Throws GgufError naming the file and key when
  // the key is missing or does not convert.
  template <typename T>
  T get(std::string_view key) const;
  // Same, but `fallback` when the key is missing (a present value of the wrong type throws).
  template <typename T>
  T get_or(std::string_view key, T fallback) const {
    return find(key) ? get<T>(key) : fallback;
  }

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // First byte of the tensor's data (nbytes bytes, checked at open to lie inside the file).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return base_ + data_offset_ + t.offset; }
  // The whole tensor dequantized to f32, ne[0] fastest (throws for types gguf_dequantize lacks).
  std::vector<float> dequantize(const GgufTensorInfo& t) const;

 private:
  GgufFile() = default;
  void parse_all();
  [[noreturn]] void fail_key(std::string_view key, const std::string& what) const;

  std::unique_ptr<MappedFile> file_;  // null for parse()
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKV> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;

  template <typename T>
  T convert(const GgufValue& v, const std::string& what) const;
};

template <typename T>
T GgufFile::get(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "missing");
  return convert<T>(*v, path_ + ": metadata " + std::string(key));
}

template <typename T>
struct gguf_is_vector : std::false_type {};
template <typename T>
struct gguf_is_vector<std::vector<T>> : std::true_type {};

template <typename T>
T GgufFile::convert(const GgufValue& v, const std::string& what) const {
  if constexpr (std::is_same_v<T, bool>) {
    return v.as_bool(what);
  } else if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_signed_v<T>) {
      const int64_t x = v.as_int(what);
      if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          x > static_cast<int64_t>(std::numeric_limits<T>::max()))
        throw GgufError(what + ": value " + std::to_string(x) + " out of range");
      return static_cast<T>(x);
    } else {
      const uint64_t x = v.as_uint(what);
      if (x > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        throw GgufError(what + ": value " + std::to_string(x) + " out of range");
      return static_cast<T>(x);
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v.as_double(what));
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v.as_string(what);
  } else if constexpr (gguf_is_vector<T>::value) {
    if (!v.is_array()) throw GgufError(what + ": is " + gguf_value_type_name(v.type) + ", expected an array");
    const std::vector<GgufValue> items = v.elements();
    T out;
    out.reserve(items.size());
    for (size_t k = 0; k < items.size(); ++k)
      out.push_back(convert<typename T::value_type>(items[k], what + "[" + std::to_string(k) + "]"));
    return out;
  } else {
    static_assert(sizeof(T) == 0, "GgufFile::get: unsupported type");
  }
}

}  // namespace fleet
