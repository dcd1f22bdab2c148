#include "model/weights.h"

#include "util/json_file.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fleet {

namespace fs = std::filesystem;

size_t Matrix::bytes() const {
  switch (dtype) {
    case DType::F32: return static_cast<size_t>(rows * cols) * 4;
    case DType::F16:
    case DType::BF16: return static_cast<size_t>(rows * cols) * 2;
    case DType::Q8_0: return static_cast<size_t>(rows * blocks_per_row()) * (kQ8Block + 4);
  }
  return 0;
}

void Matrix::row_to_f32(int64_t r, float* out) const {
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, static_cast<const float*>(data) + r * cols, static_cast<size_t>(cols) * 4);
      return;
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + r * cols;
      for (int64_t i = 0; i < cols; ++i) out[i] = bf16_to_f32(p[i]);
      return;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(data) + r * cols;
      for (int64_t i = 0; i < cols; ++i) out[i] = f16_to_f32(p[i]);
      return;
    }
    case DType::Q8_0: {
      const int64_t nb = blocks_per_row();
      const int8_t* q = static_cast<const int8_t*>(data) + r * nb * kQ8Block;
      const float* s = scales + r * nb;
      for (int64_t i = 0; i < cols; ++i) out[i] = s[i / kQ8Block] * static_cast<float>(q[i]);
      return;
    }
  }
}

namespace {

// Element i of a file tensor as f32.
inline float load_elem(const TensorRef& t, int64_t i) {
  if (t.dtype == DType::F32) {
    float f;
    std::memcpy(&f, t.data + i * 4, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, t.data + i * 2, 2);
  return t.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

std::vector<float> to_f32_vector(const TensorRef& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = load_elem(t, i);
  return v;
}

Matrix make_matrix(const TensorRef& t, DType want) {
  Matrix m;
  m.rows = t.shape[0];
  m.cols = t.shape[1];
  m.dtype = want;
  const int64_t n = t.numel();
  if (want == t.dtype) {  // zero-copy view of the mapped file
    m.data = t.data;
    return m;
  }
  switch (want) {
    case DType::F32: {
      m.owned.resize(static_cast<size_t>(n) * 4);
      float* out = reinterpret_cast<float*>(m.owned.data());
      for (int64_t i = 0; i < n; ++i) out[i] = load_elem(t, i);
      break;
    }
    case DType::BF16: {
      m.owned.resize(static_cast<size_t>(n) * 2);
      uint16_t* out = reinterpret_cast<uint16_t*>(m.owned.data());
      for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(load_elem(t, i));
      break;
    }
    case DType::Q8_0: {
      const int64_t nb = m.blocks_per_row();
      m.owned.assign(static_cast<size_t>(m.rows * nb * kQ8Block), 0);
      m.owned_scales.assign(static_cast<size_t>(m.rows * nb), 0.f);
      int8_t* q = reinterpret_cast<int8_t*>(m.owned.data());
      for (int64_t r = 0; r < m.rows; ++r) {
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t c0 = b * kQ8Block, c1 = std::min(m.cols, c0 + kQ8Block);
          float amax = 0;
          for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(load_elem(t, r * m.cols + c)));
          const float scale = amax / 127.f;
          const float inv = scale > 0 ? 1.f / scale : 0.f;
          m.owned_scales[static_cast<size_t>(r * nb + b)] = scale;
          for (int64_t c = c0; c < c1; ++c)
            q[r * nb * kQ8Block + c] = static_cast<int8_t>(std::lrintf(load_elem(t, r * m.cols + c) * inv));
        }
      }
      m.scales = m.owned_scales.data();
      break;
    }
    case DType::F16:
      throw std::runtime_error("f16 is not supported as an in-memory weight dtype (use f32, bf16 or q8_0)");
  }
  m.data = m.owned.data();
  return m;
}

DType resolve_dtype(const std::string& option, DType file_dtype) {
  if (option == "auto") return file_dtype == DType::BF16 ? DType::BF16 : DType::F32;
  DType d = parse_dtype(option);
  if (d == DType::F16) throw std::runtime_error("weight dtype f16 is not supported in memory (use f32, bf16 or q8_0)");
  return d;
}

}  // namespace

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
  } else {
    src.store = open_llama2c(path, &src.config);
  }
  return src;
}

static std::vector<std::string> layer_tensor_suffixes(const ModelConfig& c) {
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
  auto matrix = [&](const std::string& name, std::vector<int64_t> shape) {
    const TensorRef& t = st.require(name, shape);
    return make_matrix(t, resolve_dtype(options.weight_dtype, t.dtype));
  };
  auto vec = [&](const std::string& name, int64_t n) { return to_f32_vector(st.require(name, {n})); };

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
  return w;
}

}  // namespace fleet
