#include "model/weights.h"

#include "model/gguf_model.h"
#include "util/json_file.h"
#include "util/progress.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fleet {

namespace fs = std::filesystem;

int64_t Matrix::blocks_per_row() const {
  const int64_t b = dtype_block_size(dtype);
  return (cols + b - 1) / b;
}

size_t Matrix::row_bytes() const { return static_cast<size_t>(blocks_per_row()) * dtype_block_bytes(dtype); }

size_t Matrix::bytes() const { return static_cast<size_t>(rows) * row_bytes(); }

void Matrix::row_to_f32(int64_t r, float* out) const {
  const uint8_t* row = static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes();
  const int64_t padded = blocks_per_row() * dtype_block_size(dtype);
  if (padded == cols) {
    gguf_dequantize(dtype_to_ggml(dtype), row, cols, out);
    return;
  }
  std::vector<float> tmp(static_cast<size_t>(padded));
  gguf_dequantize(dtype_to_ggml(dtype), row, padded, tmp.data());
  std::memcpy(out, tmp.data(), static_cast<size_t>(cols) * 4);
}

namespace {

// A file tensor of shape [rows, cols] (or [n]) viewed as a Matrix, without copying.
Matrix view_of(const TensorRef& t) {
  Matrix m;
  m.dtype = t.dtype;
  m.rows = t.shape.size() == 2 ? t.shape[0] : 1;
  m.cols = t.shape.empty() ? 1 : t.shape.back();
  m.data = t.data;
  return m;
}

std::vector<float> to_f32_vector(const TensorRef& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  gguf_dequantize(dtype_to_ggml(t.dtype), t.data, t.numel(), v.data());
  return v;
}

// ggml's quantize_row_q8_0_ref for one block of n <= 32 values (the rest zero).
void quantize_q8_0_block(const float* x, int64_t n, uint8_t* block) {
  float amax = 0;
  for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  const uint16_t dh = f32_to_f16(d);
  std::memcpy(block, &dh, 2);
  int8_t* q = reinterpret_cast<int8_t*>(block + 2);
  for (int64_t j = 0; j < kQ8Block; ++j) q[j] = j < n ? static_cast<int8_t>(std::roundf(x[j] * id)) : 0;
}

}  // namespace

Matrix matrix_from_tensor(const TensorRef& t, DType want) {
  Matrix src = view_of(t);
  if (want == t.dtype) return src;  // zero-copy view of the mapped file
  Matrix m;
  m.rows = src.rows;
  m.cols = src.cols;
  m.dtype = want;
  m.owned.resize(m.bytes());
  std::vector<float> row(static_cast<size_t>(m.cols));
  for (int64_t r = 0; r < m.rows; ++r) {
    src.row_to_f32(r, row.data());
    uint8_t* out = m.owned.data() + static_cast<size_t>(r) * m.row_bytes();
    switch (want) {
      case DType::F32:
        std::memcpy(out, row.data(), row.size() * 4);
        break;
      case DType::BF16:
        for (int64_t i = 0; i < m.cols; ++i) {
          const uint16_t h = f32_to_bf16(row[static_cast<size_t>(i)]);
          std::memcpy(out + i * 2, &h, 2);
        }
        break;
      case DType::Q8_0:
        for (int64_t b = 0; b < m.blocks_per_row(); ++b)
          quantize_q8_0_block(row.data() + b * kQ8Block, std::min<int64_t>(kQ8Block, m.cols - b * kQ8Block),
                              out + b * dtype_block_bytes(DType::Q8_0));
        break;
      default:
        throw std::runtime_error(std::string("weights cannot be converted to ") + dtype_name(want) +
                                 " at load (use f32, bf16 or q8_0)");
    }
  }
  m.data = m.owned.data();
  return m;
}

DType resolve_weight_dtype(const std::string& option, DType file_dtype) {
  if (option == "auto") return file_dtype;
  DType d = parse_dtype(option);
  if (d != DType::F32 && d != DType::BF16 && d != DType::Q8_0)
    throw std::runtime_error(std::string("weight dtype ") + dtype_name(d) +
                             " is not supported in memory (use auto, f32, bf16 or q8_0)");
  return d;
}

size_t StageWeights::bytes() const {
  size_t n = embedding.bytes() + head.bytes() + final_norm.size() * 4;
  for (const auto& l : layers) {
    n += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.w_gate.bytes() + l.w_up.bytes() +
         l.w_down.bytes();
    n += (l.attn_norm.size() + l.ffn_norm.size() + l.bq.size() + l.bk.size() + l.bv.size() + l.q_norm.size() +
          l.k_norm.size()) * 4;
  }
  return n;
}

ModelSource open_model(const std::string& path) {
  ModelSource src;
  src.path = path;
  if (!fs::exists(path)) throw std::runtime_error(path + ": no such file or directory");
  if (fs::is_directory(path)) {
    fs::path cfg = fs::path(path) / "config.json";
    if (!fs::exists(cfg)) throw std::runtime_error(path + ": not a model directory (no config.json)");
    src.config = ModelConfig::from_hf_json(read_json_file(cfg.string()), cfg.string());
    src.store = open_safetensors_dir(path);
  } else if (is_gguf_file(path)) {
    src.store = open_gguf(path, &src.config);
  } else {
    src.store = open_llama2c(path, &src.config);
  }
  return src;
}

std::vector<std::string> layer_tensor_suffixes(const ModelConfig& c) {
  std::vector<std::string> s = {"input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                                "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};
  if (c.qkv_bias)
    for (const char* b : {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}) s.push_back(b);
  if (c.qk_norm)
    for (const char* b : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"}) s.push_back(b);
  return s;
}

size_t layer_file_bytes(const ModelSource& source, int begin, int end) {
  size_t n = 0;
  for (int l = begin; l < end; ++l)
    for (const auto& s : layer_tensor_suffixes(source.config))
      if (const TensorRef* t = source.store->find(layer_tensor_name(l, s.c_str()))) n += t->nbytes;
  return n;
}

StageWeights load_stage_weights(const ModelSource& source, const LoadOptions& options) {
  const ModelConfig& c = source.config;
  const TensorStore& st = *source.store;
  StageWeights w;
  w.config = c;
  w.store = source.store;
  w.layer_begin = options.layer_begin;
  w.layer_end = options.layer_end < 0 ? c.n_layers : options.layer_end;
  if (w.layer_begin < 0 || w.layer_begin >= w.layer_end || w.layer_end > c.n_layers)
    throw std::runtime_error("layer range [" + std::to_string(w.layer_begin) + ", " + std::to_string(w.layer_end) +
                             ") is not within the model's " + std::to_string(c.n_layers) + " layers");
  const int64_t D = c.dim, F = c.hidden_dim, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), HD = c.head_dim;
  // Progress over the bytes read at load: vectors and converted matrices (views are not read).
  Progress progress("load " + source.path + " layers " + std::to_string(w.layer_begin) + "-" +
                    std::to_string(w.layer_end - 1), 0);
  auto count = [&](const std::string& n) {
    const TensorRef* t = st.find(n);
    if (t && (t->shape.size() < 2 || resolve_weight_dtype(options.weight_dtype, t->dtype) != t->dtype))
      progress.add_total(t->nbytes);
  };
  for (int l = w.layer_begin; l < w.layer_end; ++l)
    for (const auto& s : layer_tensor_suffixes(c)) count(layer_tensor_name(l, s.c_str()));
  if (w.layer_begin == 0) count(kEmbedName);
  if (w.layer_end == c.n_layers)
    for (const char* n : {kFinalNormName, c.tie_embeddings ? kEmbedName : kHeadName}) count(n);
  auto matrix = [&](const std::string& name, std::vector<int64_t> shape) {
    const TensorRef& t = st.require(name, shape);
    Matrix m = matrix_from_tensor(t, resolve_weight_dtype(options.weight_dtype, t.dtype));
    if (m.dtype != t.dtype) progress.advance(t.nbytes);
    return m;
  };
  auto vec = [&](const std::string& name, int64_t n) {
    const TensorRef& t = st.require(name, {n});
    progress.advance(t.nbytes);
    return to_f32_vector(t);
  };

  if (w.layer_begin == 0) w.embedding = matrix(kEmbedName, {V, D});
  for (int l = w.layer_begin; l < w.layer_end; ++l) {
    LayerWeights lw;
    lw.index = l;
    auto name = [&](const char* suffix) { return layer_tensor_name(l, suffix); };
    lw.attn_norm = vec(name("input_layernorm.weight"), D);
    lw.wq = matrix(name("self_attn.q_proj.weight"), {Q, D});
    lw.wk = matrix(name("self_attn.k_proj.weight"), {KV, D});
    lw.wv = matrix(name("self_attn.v_proj.weight"), {KV, D});
    lw.wo = matrix(name("self_attn.o_proj.weight"), {D, Q});
    if (c.qkv_bias) {
      lw.bq = vec(name("self_attn.q_proj.bias"), Q);
      lw.bk = vec(name("self_attn.k_proj.bias"), KV);
      lw.bv = vec(name("self_attn.v_proj.bias"), KV);
    }
    if (c.qk_norm) {
      lw.q_norm = vec(name("self_attn.q_norm.weight"), HD);
      lw.k_norm = vec(name("self_attn.k_norm.weight"), HD);
    }
    lw.ffn_norm = vec(name("post_attention_layernorm.weight"), D);
    lw.w_gate = matrix(name("mlp.gate_proj.weight"), {F, D});
    lw.w_up = matrix(name("mlp.up_proj.weight"), {F, D});
    lw.w_down = matrix(name("mlp.down_proj.weight"), {D, F});
    w.layers.push_back(std::move(lw));
  }
  if (w.layer_end == c.n_layers) {
    w.final_norm = vec(kFinalNormName, D);
    if (!c.tie_embeddings && !st.find(kHeadName))
      throw std::runtime_error(st.description() + ": missing tensor " + kHeadName);
    // A tied head reads the embedding tensor: a view of the same pages, or its own copy
    // when converted.
    w.head = matrix(c.tie_embeddings ? kEmbedName : kHeadName, {V, D});
  }
  progress.done();
  return w;
}

}  // namespace fleet
