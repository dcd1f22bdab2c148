#pragma once
// The hyper-parameters of a decoder-only transformer (Llama / Mistral / Qwen2 / Qwen3 family).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace fleet {

// Which elements RoPE rotates together inside a head of size d:
//   Adjacent  (llama2.c, Meta checkpoints): (2i, 2i+1)
//   HalfSplit (Hugging Face):               (i, i + d/2)
enum class RopeLayout { Adjacent, HalfSplit };

struct RopeScaling {  // rope_scaling of type "llama3"; factor == 0 means none
  double factor = 0;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  double original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  int dim = 0;         // hidden_size
  int hidden_dim = 0;  // intermediate_size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_seq_len = 0;
  float rms_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeLayout rope_layout = RopeLayout::HalfSplit;
  RopeScaling rope_scaling;
  bool tie_embeddings = false;
  bool qkv_bias = false;  // Qwen2
  bool qk_norm = false;   // Qwen3
  int bos_token_id = 1;
  int eos_token_id = 2;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }

  // Parses a Hugging Face config.json; `source` names the file in errors.
  static ModelConfig from_hf_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_hf_json(const std::string& torch_dtype) const;
  void validate(const std::string& source) const;  // throws on inconsistent shapes
};

}  // namespace fleet
