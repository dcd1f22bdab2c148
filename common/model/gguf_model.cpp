#include "model/gguf_model.h"

#include <fstream>

#include "model/dtype.h"
#include "model/gguf_model_meta.h"
#include "model/gguf_names.h"

namespace fleet {

namespace {

class GgufStore : public TensorStore {
 public:
  explicit GgufStore(GgufFile file) : file_(std::move(file)) {
    description_ = file_.path();
    for (const GgufTensorInfo& info : file_.tensors()) {
      std::optional<std::string> name = hf_tensor_name(info.name);
      if (!name) continue;  // rope_freqs.weight etc. are checked by the config reader
      std::optional<DType> dtype = dtype_from_ggml(info.type);
      if (!dtype)
        throw GgufError(file_.path() + ": tensor " + info.name + " has type " + ggml_type_name(info.type) +
                        ", which fleet does not run (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                        "Q4_K, Q5_K, Q6_K)");
      TensorRef t;
      t.name = *name;
      t.dtype = *dtype;
      t.shape.assign(info.ne.rbegin(), info.ne.rend());  // ggml order -> row-major
      t.data = file_.tensor_data(info);
      t.nbytes = info.nbytes;
      t.file = file_.path();
      tensors_[t.name] = std::move(t);
    }
  }

 private:
  GgufFile file_;
};

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string a = f.get<std::string>("general.architecture");
  ModelConfig c;
  if (a == "llama" || a == "mistral") c.architecture = "LlamaForCausalLM";
  else if (a == "qwen2") c.architecture = "Qwen2ForCausalLM";
  else if (a == "qwen3") c.architecture = "Qwen3ForCausalLM";
  else throw GgufError(f.path() + ": general.architecture '" + a + "' is not supported (llama, mistral, qwen2, qwen3)");
  c.rope_layout = gguf_rope_layout(a);
  auto u = [&](const std::string& k) { return f.get<int>(a + "." + k); };
  c.n_layers = u("block_count");
  c.max_seq_len = u("context_length");
  c.dim = u("embedding_length");
  c.hidden_dim = u("feed_forward_length");
  c.n_heads = u("attention.head_count");
  c.n_kv_heads = f.get_or<int>(a + ".attention.head_count_kv", c.n_heads);
  if (c.n_heads <= 0) throw GgufError(f.path() + ": " + a + ".attention.head_count must be positive");
  c.head_dim = f.get_or<int>(a + ".attention.key_length", c.dim / c.n_heads);
  const int rope_dims = f.get_or<int>(a + ".rope.dimension_count", c.head_dim);
  if (rope_dims != c.head_dim)
    throw GgufError(f.path() + ": " + a + ".rope.dimension_count " + std::to_string(rope_dims) +
                    " differs from the head dim " + std::to_string(c.head_dim) + " (partial RoPE is not supported)");
  c.rms_eps = f.get<float>(a + ".attention.layer_norm_rms_epsilon");
  c.rope_theta = f.get_or<float>(a + ".rope.freq_base", 10000.f);
  const std::string scaling = f.get_or<std::string>(a + ".rope.scaling.type", "none");
  if (scaling != "none" || f.get_or<float>(a + ".rope.scaling.factor", 0.f) > 1.f)
    throw GgufError(f.path() + ": " + a + ".rope.scaling." + (scaling != "none" ? "type '" + scaling + "'" : "factor") +
                    " is not supported (only Llama 3 scaling, as rope_freqs.weight)");
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw GgufError(f.path() + ": no tensor token_embd.weight");
  if (const GgufValue* v = f.find(a + ".vocab_size")) c.vocab_size = static_cast<int>(v->as_uint(a + ".vocab_size"));
  else if (const GgufValue* t = f.find("tokenizer.ggml.tokens"); t && t->is_array()) c.vocab_size = static_cast<int>(t->count);
  else c.vocab_size = static_cast<int>(embd->rows());
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  if (c.qk_norm && a != "qwen3") throw GgufError(f.path() + ": q/k norms are only supported for qwen3");
  c.bos_token_id = f.get_or<int>("tokenizer.ggml.bos_token_id", -1);
  c.eos_token_id = f.get_or<int>("tokenizer.ggml.eos_token_id", -1);
  if (const GgufTensorInfo* rf = f.find_tensor("rope_freqs.weight"))
    c.rope_scaling = llama3_scaling_from_factors(f.dequantize(*rf), c.rope_theta, c.head_dim, f.path());
  try {
    c.validate(f.path());
  } catch (const GgufError&) {
    throw;
  } catch (const std::exception& e) {
    throw GgufError(e.what());
  }
  return c;
}

std::unique_ptr<TensorStore> open_gguf(const std::string& path, ModelConfig* config) {
  GgufFile file = GgufFile::open(path);
  *config = gguf_model_config(file);
  return std::make_unique<GgufStore>(std::move(file));
}

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

}  // namespace fleet
