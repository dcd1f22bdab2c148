// ModelConfig::from_hf_json (config.json, common/model/model_config.cpp): JSON bytes in memory.
// An accepted config must survive to_hf_json -> from_hf_json with the same shapes.
#include <cstdlib>
#include <exception>

#include <nlohmann/json.hpp>

#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  fleet::ModelConfig c;
  try {
    c = fleet::ModelConfig::from_hf_json(j, "config.json");
  } catch (const std::exception&) {
    return 0;
  }
  const fleet::ModelConfig back = fleet::ModelConfig::from_hf_json(c.to_hf_json("float32"), "round trip");
  if (back.architecture != c.architecture || back.dim != c.dim || back.hidden_dim != c.hidden_dim ||
      back.n_layers != c.n_layers || back.n_heads != c.n_heads || back.n_kv_heads != c.n_kv_heads ||
      back.head_dim != c.head_dim || back.vocab_size != c.vocab_size || back.max_seq_len != c.max_seq_len ||
      back.tie_embeddings != c.tie_embeddings || back.qkv_bias != c.qkv_bias || back.qk_norm != c.qk_norm)
    std::abort();
  return 0;
}
