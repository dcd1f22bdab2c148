#include "model/gguf_names.h"

#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace fleet {

namespace {

// Per-layer tensors: Hugging Face suffix after "model.layers.N." <-> GGUF suffix after "blk.N.".
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
constexpr std::pair<const char*, const char*> kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// "<prefix><digits>.<rest>" -> (layer, rest); nullopt when `name` has another form.
std::optional<std::pair<int, std::string>> split_layer(const std::string& name, const std::string& prefix) {
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && j - i < 6 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return std::nullopt;
  return std::make_pair(std::atoi(name.substr(i, j - i).c_str()), name.substr(j + 1));
}

}  // namespace

std::optional<std::string> gguf_tensor_name(const std::string& hf_name) {
  for (const auto& [hf, gguf] : kGlobalNames)
    if (hf_name == hf) return gguf;
  if (auto l = split_layer(hf_name, "model.layers."))
    for (const auto& [hf, gguf] : kLayerNames)
      if (l->second == hf) return "blk." + std::to_string(l->first) + "." + gguf;
  return std::nullopt;
}

std::optional<std::string> hf_tensor_name(const std::string& gguf_name) {
  for (const auto& [hf, gguf] : kGlobalNames)
    if (gguf_name == gguf) return hf;
  if (auto l = split_layer(gguf_name, "blk."))
    for (const auto& [hf, gguf] : kLayerNames)
      if (l->second == gguf) return "model.layers." + std::to_string(l->first) + "." + hf;
  return std::nullopt;
}

RopeLayout gguf_rope_layout(const std::string& architecture) {
  if (architecture == "llama" || architecture == "mistral") return RopeLayout::Adjacent;
  if (architecture == "qwen2" || architecture == "qwen3") return RopeLayout::HalfSplit;
  throw std::runtime_error("GGUF architecture '" + architecture +
                           "' is not supported (supported: llama, mistral, qwen2, qwen3)");
}

}  // namespace fleet
