#include "model/model_config.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace fleet {

namespace {

// An integer JSON value that fits in int (a float with an integral value, e.g. 4.0, counts).
// json's get<int>() would convert any float by a cast (undefined behaviour out of range) and
// wrap a large integer; both are errors here.
int checked_int(const nlohmann::json& v, const char* key, const std::string& source) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= std::numeric_limits<int>::min() && d <= std::numeric_limits<int>::max()) || d != std::trunc(d))
      throw std::runtime_error(source + ": \"" + key + "\" must be an integer, got " + v.dump());
    return static_cast<int>(d);
  }
  if (!v.is_number_integer()) throw std::runtime_error(source + ": \"" + key + "\" must be an integer");
  const bool fits = v.is_number_unsigned()
                        ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int>::max())
                        : v.get<int64_t>() >= std::numeric_limits<int>::min() &&
                              v.get<int64_t>() <= std::numeric_limits<int>::max();
  if (!fits) throw std::runtime_error(source + ": \"" + key + "\" is out of range: " + v.dump());
  return static_cast<int>(v.get<int64_t>());
}

int require_int(const nlohmann::json& j, const char* key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer())
    throw std::runtime_error(source + ": missing or non-integer \"" + key + "\"");
  return checked_int(*it, key, source);
}

template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  static_assert(!std::is_same_v<T, int>, "use get_int_or");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

int get_int_or(const nlohmann::json& j, const char* key, int fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return checked_int(*it, key, source);
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const nlohmann::json& j, const std::string& source) {
  ModelConfig c;
  if (!j.is_object()) throw std::runtime_error(source + ": not a JSON object");
  auto arch = j.find("architectures");
  if (arch == j.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string())
    throw std::runtime_error(source + ": missing \"architectures\"");
  c.architecture = (*arch)[0].get<std::string>();
  if (c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM") {
    c.qkv_bias = get_or<bool>(j, "attention_bias", false);
  } else if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;
  } else if (c.architecture == "Qwen3ForCausalLM") {
    c.qk_norm = true;
    c.qkv_bias = get_or<bool>(j, "attention_bias", false);
  } else {
    throw std::runtime_error(source + ": unsupported architecture \"" + c.architecture +
                             "\" (supported: LlamaForCausalLM, MistralForCausalLM, "
                             "Qwen2ForCausalLM, Qwen3ForCausalLM)");
  }
  std::string act = get_or<std::string>(j, "hidden_act", "silu");
  if (act != "silu") throw std::runtime_error(source + ": unsupported hidden_act \"" + act + "\"");
  c.dim = require_int(j, "hidden_size", source);
  c.hidden_dim = require_int(j, "intermediate_size", source);
  c.n_layers = require_int(j, "num_hidden_layers", source);
  c.n_heads = require_int(j, "num_attention_heads", source);
  c.n_kv_heads = get_int_or(j, "num_key_value_heads", c.n_heads, source);
  c.head_dim = get_int_or(j, "head_dim", c.n_heads > 0 ? c.dim / c.n_heads : 0, source);
  c.vocab_size = require_int(j, "vocab_size", source);
  c.max_seq_len = get_int_or(j, "max_position_embeddings", 2048, source);
  c.rms_eps = get_or<float>(j, "rms_norm_eps", 1e-6f);
  c.rope_theta = get_or<double>(j, "rope_theta", 10000.0);
  c.tie_embeddings = get_or<bool>(j, "tie_word_embeddings", false);
  c.bos_token_id = get_int_or(j, "bos_token_id", -1, source);
  auto eos = j.find("eos_token_id");
  if (eos != j.end() && eos->is_array() && !eos->empty()) c.eos_token_id = checked_int((*eos)[0], "eos_token_id", source);
  else c.eos_token_id = get_int_or(j, "eos_token_id", -1, source);
  c.rope_layout = RopeLayout::HalfSplit;
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && rs->is_object()) {
    std::string type = get_or<std::string>(*rs, "rope_type", get_or<std::string>(*rs, "type", ""));
    if (type == "llama3") {
      c.rope_scaling.factor = get_or<double>(*rs, "factor", 8.0);
      c.rope_scaling.low_freq_factor = get_or<double>(*rs, "low_freq_factor", 1.0);
      c.rope_scaling.high_freq_factor = get_or<double>(*rs, "high_freq_factor", 4.0);
      c.rope_scaling.original_max_position_embeddings =
          get_or<double>(*rs, "original_max_position_embeddings", 8192.0);
    } else if (type != "default" && !type.empty()) {
      throw std::runtime_error(source + ": unsupported rope_scaling type \"" + type + "\"");
    }
  }
  c.validate(source);
  return c;
}

void ModelConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& what) { throw std::runtime_error(source + ": " + what); };
  if (dim <= 0 || hidden_dim <= 0 || n_layers <= 0 || n_heads <= 0 || vocab_size <= 0)
    fail("non-positive dimension in config");
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0)
    fail("num_attention_heads must be a multiple of num_key_value_heads");
  if (head_dim <= 0 || head_dim % 2 != 0) fail("head_dim must be positive and even");
  if (max_seq_len <= 0) fail("max_position_embeddings must be positive");
}

nlohmann::json ModelConfig::to_hf_json(const std::string& torch_dtype) const {
  nlohmann::json j = {
      {"architectures", {architecture}},
      {"model_type", architecture == "Qwen2ForCausalLM"   ? "qwen2"
                     : architecture == "Qwen3ForCausalLM" ? "qwen3"
                     : architecture == "MistralForCausalLM" ? "mistral"
                                                            : "llama"},
      {"hidden_size", dim},
      {"intermediate_size", hidden_dim},
      {"num_hidden_layers", n_layers},
      {"num_attention_heads", n_heads},
      {"num_key_value_heads", n_kv_heads},
      {"head_dim", head_dim},
      {"vocab_size", vocab_size},
      {"max_position_embeddings", max_seq_len},
      {"rms_norm_eps", rms_eps},
      {"rope_theta", rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", tie_embeddings},
      {"attention_bias", qkv_bias},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
      {"torch_dtype", torch_dtype},
  };
  if (rope_scaling.factor > 0) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_scaling.factor},
                         {"low_freq_factor", rope_scaling.low_freq_factor},
                         {"high_freq_factor", rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings",
                          static_cast<int64_t>(rope_scaling.original_max_position_embeddings)}};
  }
  return j;
}

}  // namespace fleet
