// Reader for llama2.c legacy checkpoints (run.c's format): a 7 x int32 header
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
// means an untied classifier follows), then f32 tensors with all layers stacked. The store
// exposes each layer's slice under the Hugging Face name, in llama2.c's RoPE layout.
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "model/tensor_store.h"

namespace fleet {

namespace {

class Llama2cStore : public TensorStore {
 public:
  Llama2cStore(const std::string& path, ModelConfig* config);

 private:
  size_t offset_ = 0;
  const MappedFile* file_ = nullptr;
  void take(const std::string& name, std::vector<int64_t> shape);
};

void Llama2cStore::take(const std::string& name, std::vector<int64_t> shape) {
  TensorRef t;
  t.name = name;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  t.file = file_->path();
  t.nbytes = static_cast<size_t>(t.numel()) * 4;
  if (offset_ + t.nbytes > file_->size())
    throw std::runtime_error(file_->path() + ": truncated llama2.c checkpoint: tensor " + name + " needs bytes [" +
                             std::to_string(offset_) + ", " + std::to_string(offset_ + t.nbytes) +
                             ") but the file has " + std::to_string(file_->size()));
  t.data = file_->data() + offset_;
  offset_ += t.nbytes;
  tensors_[name] = std::move(t);
}

Llama2cStore::Llama2cStore(const std::string& path, ModelConfig* config) {
  description_ = path;
  files_.push_back(std::make_unique<MappedFile>(path));
  file_ = files_.back().get();
  if (file_->size() < 28)
    throw std::runtime_error(path + ": truncated llama2.c checkpoint (" + std::to_string(file_->size()) +
                             " bytes, header needs 28)");
  int32_t h[7];
  std::memcpy(h, file_->data(), sizeof h);
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tie_embeddings = h[5] > 0;
  if (h[5] == std::numeric_limits<int32_t>::min())  // -h[5] would overflow
    throw std::runtime_error(path + ": not a llama2.c checkpoint (vocab_size " + std::to_string(h[5]) + ")");
  c.vocab_size = h[5] > 0 ? h[5] : -h[5];
  c.max_seq_len = h[6];
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_layout = RopeLayout::Adjacent;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  if (c.dim <= 0 || c.dim > (1 << 16) || c.n_layers <= 0 || c.n_layers > 1024 || c.n_heads <= 0 ||
      c.dim % c.n_heads != 0 || c.max_seq_len <= 0)
    throw std::runtime_error(path + ": not a llama2.c checkpoint (implausible header: dim=" + std::to_string(h[0]) +
                             " hidden_dim=" + std::to_string(h[1]) + " n_layers=" + std::to_string(h[2]) +
                             " n_heads=" + std::to_string(h[3]) + ")");
  c.validate(path);
  offset_ = 28;

  const int64_t L = c.n_layers, D = c.dim, F = c.hidden_dim, V = c.vocab_size;
  const int64_t KV = c.kv_dim();
  take(kEmbedName, {V, D});
  // Stacked per-layer tensors, in file order; each layer gets its own slice.
  struct Stacked { const char* suffix; std::vector<int64_t> shape; };
  const Stacked stacked[] = {
      {"input_layernorm.weight", {D}},          {"self_attn.q_proj.weight", {D, D}},
      {"self_attn.k_proj.weight", {KV, D}},     {"self_attn.v_proj.weight", {KV, D}},
      {"self_attn.o_proj.weight", {D, D}},      {"post_attention_layernorm.weight", {D}},
      {"mlp.gate_proj.weight", {F, D}},         {"mlp.down_proj.weight", {D, F}},
      {"mlp.up_proj.weight", {F, D}},
  };
  for (const auto& s : stacked)
    for (int l = 0; l < L; ++l) take(layer_tensor_name(l, s.suffix), s.shape);
  take(kFinalNormName, {D});
  // Legacy RoPE tables (freq_cis_real, freq_cis_imag), unused: RoPE is computed.
  int64_t table = static_cast<int64_t>(c.max_seq_len) * c.head_dim / 2;
  take("legacy.freq_cis_real", {table});
  take("legacy.freq_cis_imag", {table});
  if (!c.tie_embeddings) take(kHeadName, {V, D});
  *config = c;
}

}  // namespace

std::unique_ptr<TensorStore> open_llama2c(const std::string& path, ModelConfig* config) {
  return std::make_unique<Llama2cStore>(path, config);
}

}  // namespace fleet
