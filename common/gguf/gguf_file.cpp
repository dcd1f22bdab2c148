// GGUF reader (see gguf_file.h). Every read goes through Reader, which checks the bytes left
// before reading or allocating; every count is bounded by what the remaining bytes could hold.
#include "gguf/gguf_file.h"

#include <cstdio>
#include <cstring>

namespace fleet {

namespace {

constexpr uint32_t kMaxArrayDepth = 16;             // nested arrays (ggml itself allows none)
constexpr uint64_t kMaxEntries = uint64_t{1} << 24;  // metadata entries / tensors
constexpr uint32_t kMaxDims = 4;                    // GGML_MAX_DIMS
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;

// Smallest encoding of one value of a type (for bounding counts); 0 for an unknown type.
size_t min_value_bytes(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::Bool: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    case GgufValueType::String: return 8;
    case GgufValueType::Array: return 4 + 8;
  }
  return 0;
}

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::U8 || t == GgufValueType::U16 || t == GgufValueType::U32 || t == GgufValueType::U64;
}

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

class Reader {
 public:
  // `name` prefixes every message; `base_offset` is where `p` lies in the file.
  Reader(const uint8_t* p, size_t size, const std::string& name, size_t base_offset = 0)
      : p_(p), size_(size), name_(name), base_(base_offset) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  const uint8_t* here() const { return p_ + pos_; }
  void set_context(std::string c) { ctx_ = std::move(c); }

  [[noreturn]] void fail(const std::string& what) const {
    throw GgufError(name_ + ": " + (ctx_.empty() ? "" : ctx_ + ": ") + what);
  }

  void need(uint64_t n, const char* what) const {
    if (n > left())
      fail(std::string("truncated file: ") + what + " needs " + std::to_string(n) + " bytes at offset " +
           std::to_string(base_ + pos_) + " but only " + std::to_string(left()) + " remain");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += static_cast<size_t>(n);
  }

  // A u64 length, then that many bytes.
  std::string_view read_string(const char* what) {
    const size_t at = base_ + pos_;
    const uint64_t len = read<uint64_t>(what);
    if (len > left())
      fail(std::string(what) + ": string length " + std::to_string(len) + " at offset " + std::to_string(at) +
           " runs past the end of the data (" + std::to_string(left()) + " bytes left)");
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

  // A count of items of at least `min_bytes` each, bounded by what is left.
  uint64_t read_count(const char* what, size_t min_bytes, uint64_t hard_max) {
    const size_t at = base_ + pos_;
    const uint64_t n = read<uint64_t>(what);
    if (n > hard_max || (min_bytes > 0 && n > left() / min_bytes))
      fail(std::string(what) + " " + std::to_string(n) + " at offset " + std::to_string(at) +
           " is impossible (truncated or corrupt file): the " + std::to_string(left()) + " bytes left hold at most " +
           std::to_string(min_bytes ? std::min<uint64_t>(hard_max, left() / min_bytes) : hard_max));
    return n;
  }

  // Decodes one value of `type`. Arrays are checked (recursively) but kept encoded.
  GgufValue value(uint32_t type, uint32_t depth) {
    GgufValue v;
    v.type = static_cast<GgufValueType>(type);
    switch (v.type) {
      case GgufValueType::U8: v.u = read<uint8_t>("u8 value"); break;
      case GgufValueType::I8: v.i = read<int8_t>("i8 value"); break;
      case GgufValueType::U16: v.u = read<uint16_t>("u16 value"); break;
      case GgufValueType::I16: v.i = read<int16_t>("i16 value"); break;
      case GgufValueType::U32: v.u = read<uint32_t>("u32 value"); break;
      case GgufValueType::I32: v.i = read<int32_t>("i32 value"); break;
      case GgufValueType::U64: v.u = read<uint64_t>("u64 value"); break;
      case GgufValueType::I64: v.i = read<int64_t>("i64 value"); break;
      case GgufValueType::F32: v.f = read<float>("f32 value"); break;
      case GgufValueType::F64: v.f = read<double>("f64 value"); break;
      case GgufValueType::Bool: v.u = read<uint8_t>("bool value") != 0; break;
      case GgufValueType::String: v.s = std::string(read_string("string value")); break;
      case GgufValueType::Array: {
        if (depth >= kMaxArrayDepth) fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth));
        const uint32_t et = read<uint32_t>("array element type");
        const size_t min = min_value_bytes(et);
        if (min == 0) fail("unknown array element type " + std::to_string(et) + " at offset " + std::to_string(base_ + pos_ - 4));
        v.elem_type = static_cast<GgufValueType>(et);
        v.count = read_count("array length", min, UINT64_MAX);
        v.raw = here();
        const size_t start = pos_;
        if (v.elem_type == GgufValueType::String) {
          for (uint64_t k = 0; k < v.count; ++k) (void)read_string("array string element");
        } else if (v.elem_type == GgufValueType::Array) {
          for (uint64_t k = 0; k < v.count; ++k) (void)value(et, depth + 1);
        } else {
          skip(v.count * min, "array elements");  // count <= left() / min: no overflow
        }
        v.raw_bytes = pos_ - start;
        break;
      }
      default:
        fail("unknown value type " + std::to_string(type) + " at offset " + std::to_string(base_ + pos_ - 4));
    }
    return v;
  }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
  size_t base_;
  std::string ctx_;
};

std::string ne_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
  return s + "]";
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* const names[] = {"u8",     "i8",    "u16", "i16", "u32", "i32", "f32",
                                      "bool",   "string", "array", "u64", "i64", "f64"};
  const auto k = static_cast<uint32_t>(t);
  return k < sizeof names / sizeof names[0] ? names[k] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64:
      return true;
    default:
      return false;
  }
}

int64_t GgufValue::as_int(const std::string& what) const {
  if (!is_integer()) throw GgufError(what + ": is " + gguf_value_type_name(type) + ", expected an integer");
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(INT64_MAX)) throw GgufError(what + ": value " + std::to_string(u) + " out of range");
    return static_cast<int64_t>(u);
  }
  return i;
}

uint64_t GgufValue::as_uint(const std::string& what) const {
  if (!is_integer()) throw GgufError(what + ": is " + gguf_value_type_name(type) + ", expected an integer");
  if (is_unsigned(type)) return u;
  if (i < 0) throw GgufError(what + ": value " + std::to_string(i) + " is negative");
  return static_cast<uint64_t>(i);
}

double GgufValue::as_double(const std::string& what) const {
  if (!is_float()) throw GgufError(what + ": is " + gguf_value_type_name(type) + ", expected f32 or f64");
  return f;
}

bool GgufValue::as_bool(const std::string& what) const {
  if (type != GgufValueType::Bool) throw GgufError(what + ": is " + gguf_value_type_name(type) + ", expected bool");
  return u != 0;
}

const std::string& GgufValue::as_string(const std::string& what) const {
  if (type != GgufValueType::String) throw GgufError(what + ": is " + gguf_value_type_name(type) + ", expected string");
  return s;
}

std::vector<GgufValue> GgufValue::elements() const {
  if (!is_array()) throw GgufError(std::string("elements() of a ") + gguf_value_type_name(type) + " value");
  static const std::string name = "GGUF array";
  Reader r(raw, raw_bytes, name);
  std::vector<GgufValue> out;
  out.reserve(static_cast<size_t>(count));  // count was bounded by raw_bytes at open
  for (uint64_t k = 0; k < count; ++k) out.push_back(r.value(static_cast<uint32_t>(elem_type), 1));
  return out;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.file_ = std::make_unique<MappedFile>(path);
  f.base_ = f.file_->data();
  f.size_ = f.file_->size();
  f.path_ = path;
  f.parse_all();
  return f;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  GgufFile f;
  f.base_ = data;
  f.size_ = size;
  f.path_ = name;
  f.parse_all();
  return f;
}

void GgufFile::parse_all() {
  static const uint8_t empty = 0;
  Reader r(base_ ? base_ : &empty, size_, path_);
  if (size_ < 4) r.fail("not a GGUF file: " + std::to_string(size_) + " bytes, too short for the magic");
  if (std::memcmp(base_, "GGUF", 4) != 0) {
    std::string shown;
    for (int k = 0; k < 4; ++k) shown += (base_[k] >= 32 && base_[k] < 127) ? static_cast<char>(base_[k]) : '?';
    r.fail("not a GGUF file: magic \"" + shown + "\" (" + hex32(static_cast<uint32_t>(base_[0]) | base_[1] << 8 |
           base_[2] << 16 | static_cast<uint32_t>(base_[3]) << 24) + "), expected \"GGUF\"");
  }
  r.skip(4, "magic");
  version_ = r.read<uint32_t>("version");
  if (version_ == 1)
    r.fail("GGUF version 1 is not supported (32-bit lengths; supported versions: 2, 3)");
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xFFFFu) == 0 && (version_ >> 16) != 0)
      r.fail("big-endian GGUF (version field " + hex32(version_) + ") is not supported");
    r.fail("unsupported GGUF version " + std::to_string(version_) + " (supported: 2, 3)");
  }
  const uint64_t n_tensors = r.read_count("tensor count", 8 + 4 + 4 + 8, kMaxEntries);
  const uint64_t n_kv = r.read_count("metadata entry count", 8 + 4 + 1, kMaxEntries);

  kvs_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    r.set_context("metadata entry " + std::to_string(k));
    GgufKV kv;
    kv.key = std::string(r.read_string("key"));
    r.set_context("metadata entry " + std::to_string(k) + " (" + kv.key + ")");
    const uint32_t type = r.read<uint32_t>("value type");
    kv.value = r.value(type, 0);
    if (!kv_index_.emplace(kv.key, kvs_.size()).second) r.fail("duplicate key");
    kvs_.push_back(std::move(kv));
  }

  r.set_context("");
  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer()) r.fail(std::string("general.alignment is ") + gguf_value_type_name(a->type) + ", expected u32");
    const bool negative = !is_unsigned(a->type) && a->i < 0;
    const uint64_t al = negative ? 0 : a->as_uint(path_ + ": general.alignment");
    if (al == 0 || (al & (al - 1)) != 0 || al > kMaxAlignment)
      r.fail("general.alignment " + (negative ? std::to_string(a->i) : std::to_string(al)) +
             " is not a power of two between 1 and 2^30");
    alignment_ = al;
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    r.set_context("tensor info " + std::to_string(k));
    GgufTensorInfo t;
    t.name = std::string(r.read_string("tensor name"));
    r.set_context("tensor " + std::to_string(k) + " (" + t.name + ")");
    const uint32_t n_dims = r.read<uint32_t>("dimension count");
    if (n_dims > kMaxDims) r.fail(std::to_string(n_dims) + " dimensions (at most " + std::to_string(kMaxDims) + ")");
    t.numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t n = r.read<uint64_t>("dimension");
      if (n > static_cast<uint64_t>(INT64_MAX)) r.fail("dimension " + std::to_string(d) + " is " + std::to_string(n) + " (above 2^63 - 1)");
      t.ne.push_back(static_cast<int64_t>(n));
    }
    for (int64_t n : t.ne) {
      if (n != 0 && t.numel > INT64_MAX / n) r.fail("shape " + ne_str(t.ne) + " has more than 2^63 elements");
      t.numel *= n;
    }
    const uint32_t raw_type = r.read<uint32_t>("tensor type");
    const GgmlTypeTraits* tr = ggml_type_traits(raw_type);
    if (!tr) r.fail("unknown ggml tensor type " + std::to_string(raw_type));
    t.type = static_cast<GgmlType>(raw_type);
    t.offset = r.read<uint64_t>("tensor data offset");
    const int64_t row = t.row_length();
    if (row % tr->block_size != 0)
      r.fail(std::string(tr->name) + " shape " + ne_str(t.ne) + ": row length " + std::to_string(row) +
             " is not a multiple of the block size " + std::to_string(tr->block_size));
    const uint64_t blocks = static_cast<uint64_t>(row / tr->block_size);
    if (blocks > UINT64_MAX / tr->type_size) r.fail("shape " + ne_str(t.ne) + ": byte size overflows");
    const uint64_t row_bytes = blocks * tr->type_size;
    const uint64_t rows = row == 0 ? 0 : static_cast<uint64_t>(t.numel / row);
    if (rows != 0 && row_bytes > UINT64_MAX / rows) r.fail("shape " + ne_str(t.ne) + ": byte size overflows");
    t.nbytes = row_bytes * rows;
    if (t.offset % alignment_ != 0)
      r.fail("data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment_));
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) r.fail("duplicate tensor name");
    tensors_.push_back(std::move(t));
  }

  r.set_context("");
  const uint64_t end_of_infos = r.pos();
  data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;  // both < 2^31 + size: no overflow
  const uint64_t data_size = size_ > data_offset_ ? size_ - data_offset_ : 0;
  for (const GgufTensorInfo& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      r.fail("tensor " + t.name + " (" + ggml_type_name(t.type) + " " + ne_str(t.ne) + ", " + std::to_string(t.nbytes) +
             " bytes at data offset " + std::to_string(t.offset) + ") runs past the end of the file (data section: " +
             std::to_string(data_size) + " bytes from offset " + std::to_string(data_offset_) + "): truncated file?");
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::fail_key(std::string_view key, const std::string& what) const {
  throw GgufError(path_ + ": metadata " + std::string(key) + ": " + what);
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
  if (!ggml_traits(t.type).dequantizable)
    throw GgufError(path_ + ": tensor " + t.name + ": cannot dequantize ggml type " + ggml_type_name(t.type));
  std::vector<float> out(static_cast<size_t>(t.numel));
  gguf_dequantize(t.type, tensor_data(t), t.numel, out.data());
  return out;
}

}  // namespace fleet
