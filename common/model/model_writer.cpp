#include "model/model_writer.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "model/safetensors_writer.h"
#include "model/tensor_store.h"
#include "tokenizer/tokenizer.h"
#include "util/json_file.h"
#include "util/progress.h"

namespace fleet {

namespace fs = std::filesystem;

void permute_rope_rows(const uint8_t* in, uint8_t* out, int64_t n_heads, int64_t head_dim, size_t row_bytes,
                       bool to_half_split) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t e = 0; e < 2; ++e)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t split = h * head_dim + e * half + i, adjacent = h * head_dim + 2 * i + e;
        const int64_t dst = to_half_split ? split : adjacent, src = to_half_split ? adjacent : split;
        std::memcpy(out + static_cast<size_t>(dst) * row_bytes, in + static_cast<size_t>(src) * row_bytes, row_bytes);
      }
}

std::vector<TensorShape> hf_tensor_shapes(const ModelConfig& c) {
  const int64_t D = c.dim, F = c.hidden_dim, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim(), HD = c.head_dim;
  std::vector<TensorShape> t = {{kEmbedName, {V, D}}};
  for (int l = 0; l < c.n_layers; ++l) {
    auto n = [&](const char* s) { return layer_tensor_name(l, s); };
    t.push_back({n("input_layernorm.weight"), {D}});
    t.push_back({n("self_attn.q_proj.weight"), {Q, D}});
    t.push_back({n("self_attn.k_proj.weight"), {KV, D}});
    t.push_back({n("self_attn.v_proj.weight"), {KV, D}});
    if (c.qkv_bias) {
      t.push_back({n("self_attn.q_proj.bias"), {Q}});
      t.push_back({n("self_attn.k_proj.bias"), {KV}});
      t.push_back({n("self_attn.v_proj.bias"), {KV}});
    }
    if (c.qk_norm) {
      t.push_back({n("self_attn.q_norm.weight"), {HD}});
      t.push_back({n("self_attn.k_norm.weight"), {HD}});
    }
    t.push_back({n("self_attn.o_proj.weight"), {D, Q}});
    t.push_back({n("post_attention_layernorm.weight"), {D}});
    t.push_back({n("mlp.gate_proj.weight"), {F, D}});
    t.push_back({n("mlp.up_proj.weight"), {F, D}});
    t.push_back({n("mlp.down_proj.weight"), {D, F}});
  }
  t.push_back({kFinalNormName, {D}});
  if (!c.tie_embeddings) t.push_back({kHeadName, {V, D}});
  return t;
}

void convert_llama2c_to_hf(const std::string& model_file, const std::string& tokenizer_file,
                           const std::string& out_dir) {
  ModelConfig c;
  auto store = open_llama2c(model_file, &c);
  auto tok = Tokenizer::load(tokenizer_file);
  if (static_cast<int>(tok->vocab_size()) != c.vocab_size)
    throw std::runtime_error(tokenizer_file + ": vocabulary of " + std::to_string(tok->vocab_size()) +
                             " tokens does not match the model's " + std::to_string(c.vocab_size));
  fs::create_directories(out_dir);
  c.rope_layout = RopeLayout::HalfSplit;
  std::vector<TensorSpec> specs;
  for (const auto& ts : hf_tensor_shapes(c)) {
    const TensorRef& src = store->require(ts.name, ts.shape);
    const bool is_q = ts.name.ends_with("q_proj.weight"), is_k = ts.name.ends_with("k_proj.weight");
    const int64_t heads = is_q ? c.n_heads : c.n_kv_heads;
    specs.push_back({ts.name, DType::F32, ts.shape, [&src, is_q, is_k, heads, hd = c.head_dim](std::vector<uint8_t>& out) {
                       out.resize(src.nbytes);
                       if (is_q || is_k)
                         permute_rope_rows(src.data, out.data(), heads, hd, static_cast<size_t>(src.shape[1]) * 4,
                                           true);
                       else
                         std::memcpy(out.data(), src.data, src.nbytes);
                     }});
  }
  Progress progress("convert " + out_dir, 0);
  track_fills(progress, specs, [](const TensorSpec& s) { return shape_bytes(s.shape, dtype_block_bytes(s.dtype)); });
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), specs);
  progress.done();
  write_text_file((fs::path(out_dir) / "config.json").string(), c.to_hf_json("float32").dump(2) + "\n");
  write_text_file((fs::path(out_dir) / "tokenizer.json").string(), tok->to_hf_tokenizer_json());
  write_text_file((fs::path(out_dir) / "tokenizer_config.json").string(), tok->to_hf_tokenizer_config_json());
}

}  // namespace fleet
