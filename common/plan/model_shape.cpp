#include "plan/model_shape.h"

#include <filesystem>
#include <stdexcept>

#include "model/dtype.h"
#include "model/tensor_store.h"
#include "model/weights.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace fleet {
namespace {

void set_macs(ModelShape& s) {
  const ModelConfig& c = s.config;
  const uint64_t D = static_cast<uint64_t>(c.dim), H = static_cast<uint64_t>(c.hidden_dim);
  s.layer_macs = D * static_cast<uint64_t>(c.q_dim()) * 2 + D * static_cast<uint64_t>(c.kv_dim()) * 2 + 3 * D * H;
  s.head_macs = D * static_cast<uint64_t>(c.vocab_size);
}


uint64_t elems_bytes(int64_t numel, DType d) {
  const int64_t bs = dtype_block_size(d);
  return static_cast<uint64_t>((numel + bs - 1) / bs) * dtype_block_bytes(d);
}

// A tensor's bytes in memory: vectors (norms, biases) as f32; matrices in the memory dtype
// (a quantized GGUF matrix stays in its stored blocks).
uint64_t tensor_memory_bytes(const TensorRef& t, const std::string& weights, std::string* dtype_used) {
  if (t.shape.size() < 2) return static_cast<uint64_t>(t.numel()) * 4;
  if (dtype_is_quantized(t.dtype) && t.dtype != DType::Q8_0 && weights == "auto") {
    *dtype_used = "as stored";
    return t.nbytes;
  }
  DType d = resolve_weight_dtype(weights, t.dtype);
  if (dtype_used->empty()) *dtype_used = dtype_name(d);
  // Blocks never straddle rows: each row is rounded up to whole blocks (as the loader does).
  const int64_t cols = t.shape.back();
  return static_cast<uint64_t>(cols ? t.numel() / cols : 0) * elems_bytes(cols, d);
}

ModelShape from_config_only(const std::string& path, const std::string& config_path, const std::string& weights) {
  nlohmann::json j = read_json_file(config_path);
  ModelShape s;
  s.path = path;
  s.source = "config.json";
  s.config = ModelConfig::from_hf_json(j, config_path);
  const ModelConfig& c = s.config;
  std::string torch_dtype = j.value("torch_dtype", "bfloat16");
  DType file = torch_dtype == "float32" ? DType::F32 : torch_dtype == "float16" ? DType::F16 : DType::BF16;
  DType d = resolve_weight_dtype(weights, file);
  s.dtype = dtype_name(d);
  const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size;
  int64_t vectors = 2 * D;
  if (c.qkv_bias) vectors += c.q_dim() + 2 * c.kv_dim();
  if (c.qk_norm) vectors += 2 * c.head_dim;
  // Per matrix, as the loader converts each one (block rounding per row for Q8_0).
  auto matrix = [&](int64_t rows, int64_t cols) { return static_cast<uint64_t>(rows) * elems_bytes(cols, d); };
  uint64_t layer = matrix(c.q_dim(), D) + 2 * matrix(c.kv_dim(), D) + matrix(D, c.q_dim()) + 2 * matrix(H, D) +
                   matrix(D, H) + static_cast<uint64_t>(vectors) * 4;
  s.layer_bytes.assign(static_cast<size_t>(c.n_layers), layer);
  s.embedding_bytes = matrix(V, D);
  s.head_bytes = matrix(V, D) + static_cast<uint64_t>(D) * 4;
  set_macs(s);
  return s;
}

}  // namespace

uint64_t ModelShape::stage_macs(int first, int end) const {
  return static_cast<uint64_t>(end - first) * layer_macs + (end == n_layers() ? head_macs : 0);
}

uint64_t ModelShape::total_bytes() const { return stage_bytes(0, n_layers()); }

uint64_t ModelShape::stage_bytes(int first, int end) const {
  uint64_t n = 0;
  for (int l = first; l < end; ++l) n += layer_bytes[static_cast<size_t>(l)];
  if (first == 0) n += embedding_bytes;
  if (end == n_layers()) n += head_bytes;
  return n;
}

ModelShape read_model_shape(const std::string& path, const std::string& weights) {
  if (!fs::exists(path)) throw std::runtime_error(path + ": no such file or directory");
  if (weights != "auto") (void)parse_dtype(weights);  // a bad name throws here
  const fs::path p(path);
  // config.json alone: the file itself, or a directory without weight files.
  if (!fs::is_directory(p) && p.filename() == "config.json") {
    ModelShape s = from_config_only(path, path, weights);
    s.name = p.parent_path().filename().string();
    return s;
  }
  if (fs::is_directory(p)) {
    bool has_weights = false;
    for (const auto& e : fs::directory_iterator(p))
      if (e.path().extension() == ".safetensors") has_weights = true;
    if (!has_weights) {
      if (!fs::exists(p / "config.json")) throw std::runtime_error(path + ": not a model directory (no config.json)");
      ModelShape s = from_config_only(path, (p / "config.json").string(), weights);
      s.name = fs::canonical(p).filename().string();
      return s;
    }
  }
  ModelSource src = open_model(path);
  ModelShape s;
  s.path = path;
  s.config = src.config;
  s.weights_present = true;
  s.source = fs::is_directory(p) ? "safetensors" : (p.extension() == ".gguf" ? "gguf" : "llama2.c");
  s.name = fs::is_directory(p) ? fs::canonical(p).filename().string() : p.stem().string();
  const ModelConfig& c = s.config;
  const TensorStore& st = *src.store;
  for (int l = 0; l < c.n_layers; ++l) {
    uint64_t n = 0;
    for (const std::string& suffix : layer_tensor_suffixes(c))
      if (const TensorRef* t = st.find(layer_tensor_name(l, suffix.c_str()))) n += tensor_memory_bytes(*t, weights, &s.dtype);
    s.layer_bytes.push_back(n);
  }
  const TensorRef* emb = st.find(kEmbedName);
  if (!emb) throw std::runtime_error(st.description() + ": missing tensor " + kEmbedName);
  s.embedding_bytes = tensor_memory_bytes(*emb, weights, &s.dtype);
  const TensorRef* head = c.tie_embeddings ? emb : st.find(kHeadName);
  if (!head) throw std::runtime_error(st.description() + ": missing tensor " + kHeadName);
  s.head_bytes = tensor_memory_bytes(*head, weights, &s.dtype) + static_cast<uint64_t>(c.dim) * 4;
  set_macs(s);
  return s;
}

}  // namespace fleet
