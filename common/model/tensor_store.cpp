#include "model/tensor_store.h"

#include "util/json_file.h"

#include <type_traits>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace fleet {

namespace fs = std::filesystem;

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

std::string layer_tensor_name(int layer, const char* suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

const TensorRef* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorRef& TensorStore::require(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorRef* t = find(name);
  if (!t) throw std::runtime_error(description_ + ": missing tensor " + name);
  if (t->shape != shape)
    throw std::runtime_error(t->file + ": tensor " + name + " has shape " + shape_str(t->shape) +
                             ", expected " + shape_str(shape));
  return *t;
}

namespace {

// A JSON array of integers; a float (1e300 converted to an integer is undefined behaviour) or
// any other value is refused.
template <typename T>
std::vector<T> integers(const nlohmann::json& a, const char* what) {
  if (!a.is_array()) throw std::runtime_error(std::string(what) + " is not an array");
  std::vector<T> out;
  for (const nlohmann::json& v : a) {
    if (!v.is_number_integer() || (std::is_unsigned_v<T> && !v.is_number_unsigned()))
      throw std::runtime_error(std::string(what) + " holds " + v.dump() + ", not a " +
                               (std::is_unsigned_v<T> ? "non-negative " : "") + "integer");
    out.push_back(v.get<T>());
  }
  return out;
}

class SafetensorsStore : public TensorStore {
 public:
  explicit SafetensorsStore(std::string description) { description_ = std::move(description); }
  void add_file(const std::string& path, const std::set<std::string>* only = nullptr);
};

size_t dtype_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

void SafetensorsStore::add_file(const std::string& path, const std::set<std::string>* only) {
  auto file = std::make_unique<MappedFile>(path);
  const uint8_t* base = file->data();
  size_t size = file->size();
  if (size < 8) throw std::runtime_error(path + ": truncated safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len > size - 8 || header_len > (100u << 20))
    throw std::runtime_error(path + ": safetensors header length " + std::to_string(header_len) +
                             " exceeds the file size " + std::to_string(size) + " (truncated or corrupt)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(base + 8, base + 8 + header_len);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": corrupt safetensors header: " + e.what());
  }
  if (!header.is_object()) throw std::runtime_error(path + ": safetensors header is not a JSON object");
  const uint8_t* data = base + 8 + header_len;
  size_t data_size = size - 8 - header_len;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (only && !only->count(name)) continue;
    TensorRef t;
    t.name = name;
    t.file = path;
    try {
      std::string dt = info.at("dtype").get<std::string>();
      if (dt != "F32" && dt != "F16" && dt != "BF16")
        throw std::runtime_error("unsupported dtype " + dt + " (supported: F32, F16, BF16)");
      t.dtype = parse_dtype(dt);
      t.shape = integers<int64_t>(info.at("shape"), "shape");
      auto offs = integers<uint64_t>(info.at("data_offsets"), "data_offsets");
      if (offs.size() != 2 || offs[0] > offs[1]) throw std::runtime_error("bad data_offsets");
      if (offs[1] > data_size)
        throw std::runtime_error("data_offsets end " + std::to_string(offs[1]) + " is past the end of the file's data (" +
                                 std::to_string(data_size) + " bytes): file truncated?");
      for (int64_t d : t.shape)
        if (d < 0) throw std::runtime_error("negative dimension");
      t.nbytes = offs[1] - offs[0];
      if (static_cast<uint64_t>(t.numel()) * dtype_bytes(t.dtype) != t.nbytes)
        throw std::runtime_error("shape " + shape_str(t.shape) + " of " + dt + " needs " +
                                 std::to_string(t.numel() * static_cast<int64_t>(dtype_bytes(t.dtype))) +
                                 " bytes but data_offsets span " + std::to_string(t.nbytes));
      t.data = data + offs[0];
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": tensor " + name + ": " + e.what());
    }
    tensors_[name] = std::move(t);
  }
  files_.push_back(std::move(file));
}

}  // namespace

std::unique_ptr<TensorStore> open_safetensors_file(const std::string& path) {
  auto store = std::make_unique<SafetensorsStore>(path);
  store->add_file(path);
  return store;
}

std::unique_ptr<TensorStore> open_safetensors_dir(const std::string& dir) {
  fs::path single = fs::path(dir) / "model.safetensors";
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(single)) return open_safetensors_file(single.string());
  if (!fs::exists(index))
    throw std::runtime_error(dir + ": neither model.safetensors nor model.safetensors.index.json found");
  nlohmann::json j = read_json_file(index.string());
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    throw std::runtime_error(index.string() + ": missing \"weight_map\"");
  std::map<std::string, std::set<std::string>> by_file;
  for (auto& [name, file] : j["weight_map"].items()) by_file[file.get<std::string>()].insert(name);
  auto store = std::make_unique<SafetensorsStore>(dir);
  for (auto& [file, names] : by_file) {
    store->add_file((fs::path(dir) / file).string(), &names);
    for (auto& n : names)
      if (!store->find(n))
        throw std::runtime_error((fs::path(dir) / file).string() + ": tensor " + n +
                                 " is listed in model.safetensors.index.json but not in the shard");
  }
  return store;
}

}  // namespace fleet
