#include "model/gguf_model.h"

#include <fstream>

#include "model/dtype.h"
#include "model/gguf_names.h"

namespace fleet {

namespace {

std::string arch_name(const std::string& arch) {
  if (arch == "llama" || arch == "mistral") return "LlamaForCausalLM";
  if (arch == "qwen2") return "Qwen2ForCausalLM";
  if (arch == "qwen3") return "Qwen3ForCausalLM";
  return arch;
}

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
  const std::string arch = f.get<std::string>("general.architecture");
  const RopeLayout layout = gguf_rope_layout(arch);
  auto key = [&](const char* k) { return arch + "." + k; };
  ModelConfig c;
  c.architecture = arch_name(arch);
  c.rope_layout = layout;
  c.n_layers = f.get<int>(key("block_count"));
  c.dim = f.get<int>(key("embedding_length"));
  c.hidden_dim = f.get<int>(key("feed_forward_length"));
  c.n_heads = f.get<int>(key("attention.head_count"));
  c.n_kv_heads = f.get_or<int>(key("attention.head_count_kv"), c.n_heads);
  c.head_dim = f.get_or<int>(key("attention.key_length"), c.n_heads > 0 ? c.dim / c.n_heads : 0);
  c.max_seq_len = f.get_or<int>(key("context_length"), 2048);
  c.rms_eps = f.get_or<float>(key("attention.layer_norm_rms_epsilon"), 1e-5f);
  c.rope_theta = f.get_or<double>(key("rope.freq_base"), 10000.0);
  const std::string scaling = f.get_or<std::string>(key("rope.scaling.type"), "none");
  if (scaling != "none")
    throw GgufError(f.path() + ": " + key("rope.scaling.type") + " = '" + scaling + "' is not supported yet");
  if (f.find_tensor("rope_freqs.weight"))
    throw GgufError(f.path() + ": rope_freqs.weight (llama3-style RoPE scaling factors) is not supported yet");
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2) throw GgufError(f.path() + ": missing 2-D tensor token_embd.weight");
  c.vocab_size = static_cast<int>(embd->ne[1]);
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  c.bos_token_id = f.get_or<int>("tokenizer.ggml.bos_token_id", -1);
  c.eos_token_id = f.get_or<int>("tokenizer.ggml.eos_token_id", -1);
  try {
    c.validate(f.path());
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
