#pragma once
// Writer for GGUF v3 files (the layout GgufFile reads; see gguf_file.h), byte-compatible with
// llama.cpp's gguf-py GGUFWriter: metadata in insertion order, then the tensor infos, padding
// to the alignment, then each tensor's data at an aligned offset (zero padding between and
// after tensors). `general.alignment` (u32) is written only for a non-default alignment.
//
//   GgufWriter w;
//   w.add("general.architecture", GgufMeta::string("llama"));
//   w.add("llama.block_count", GgufMeta::u32(22));
//   w.add("tokenizer.ggml.tokens", GgufMeta::strings(pieces));
//   w.add_tensor({"token_embd.weight", GgmlType::Q8_0, {2048, 32000}, [&](const GgufSink& put) {
//     for (each chunk of rows) put(bytes, n);  // streamed: never the whole tensor at once
//   }});
//   w.write("model.gguf");  // writes model.gguf.partial, then renames it
//
// Tensor data is streamed: each tensor's callback is called once, in order, while the file
// is written, and may hand over its bytes in any number of pieces; the writer checks that the
// total equals the size the type and shape imply. Errors throw GgufError naming the file and
// the key or tensor.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"

namespace fleet {

// A metadata value to write. Arrays hold their elements (all of elem_type; arrays of arrays
// are allowed, as in the format, though ggml itself never writes them).
struct GgufMeta {
  GgufValueType type = GgufValueType::U8;
  uint64_t u = 0;    // U8, U16, U32, U64, Bool
  int64_t i = 0;     // I8, I16, I32, I64
  double f = 0;      // F32, F64
  std::string s;     // String
  GgufValueType elem_type = GgufValueType::U8;  // Array
  std::vector<GgufMeta> items;                  // Array

  static GgufMeta u8(uint8_t v);
  static GgufMeta i8(int8_t v);
  static GgufMeta u16(uint16_t v);
  static GgufMeta i16(int16_t v);
  static GgufMeta u32(uint32_t v);
  static GgufMeta i32(int32_t v);
  static GgufMeta u64(uint64_t v);
  static GgufMeta i64(int64_t v);
  static GgufMeta f32(float v);
  static GgufMeta f64(double v);
  static GgufMeta boolean(bool v);
  static GgufMeta string(std::string v);
  // An array of elements of elem_type (each item's type must equal it).
  static GgufMeta array(GgufValueType elem_type, std::vector<GgufMeta> items);
  static GgufMeta strings(const std::vector<std::string>& v);
  static GgufMeta i32s(const std::vector<int32_t>& v);
  static GgufMeta f32s(const std::vector<float>& v);
};

// Receives a tensor's bytes, in order.
using GgufSink = std::function<void(const void* data, size_t n)>;

struct GgufTensorSpec {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the row length (multiple of the block size)
  std::function<void(const GgufSink& put)> write;  // hands over exactly nbytes() bytes
  uint64_t nbytes() const;  // gguf_row_bytes(type, ne[0]) * rows
};

class GgufWriter {
 public:
  // Sets the data alignment (a power of two; 32 by default) and, when it is not 32, the
  // `general.alignment` key (added where this is called, as GGUFWriter does).
  void set_alignment(uint32_t alignment);
  // Appends a metadata entry; throws on a duplicate key or an array whose items do not all
  // have its element type.
  void add(const std::string& key, GgufMeta value);
  // Appends a tensor; throws on a duplicate name, more than 4 dimensions, a negative
  // dimension or a row length that is not a multiple of the type's block size.
  void add_tensor(GgufTensorSpec tensor);

  bool has(const std::string& key) const;
  uint32_t alignment() const { return alignment_; }
  const std::vector<GgufTensorSpec>& tensors() const { return tensors_; }

  // Writes the file (path + ".partial", renamed to path once complete).
  void write(const std::string& path) const;

 private:
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufMeta>> kvs_;
  std::vector<GgufTensorSpec> tensors_;
};

}  // namespace fleet
