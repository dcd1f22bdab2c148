// Model hyper-parameters and vocabularies as GGUF metadata (see gguf_model_meta.h).
#include "model/gguf_model_meta.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numbers>

#include "model/model_writer.h"

namespace fleet {

namespace {

constexpr int32_t kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokByte = 6;

bool is_byte_piece(const std::string& p) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
  return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && hex(p[3]) && hex(p[4]);
}

void classify(GgufLlamaVocab& v) {
  v.types.assign(v.pieces.size(), kTokNormal);
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    const std::string& p = v.pieces[i];
    const auto id = static_cast<int32_t>(i);
    if (p == "<unk>") {
      v.types[i] = kTokUnknown;
      v.unk_id = id;
    } else if (p == "<s>" || p == "</s>") {
      v.types[i] = kTokControl;
      (p == "<s>" ? v.bos_id : v.eos_id) = id;
    } else if (is_byte_piece(p)) {
      v.types[i] = kTokByte;
    }
  }
}

}  // namespace

std::string gguf_architecture(const ModelConfig& c) {
  if (c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM") return "llama";
  if (c.architecture == "Qwen2ForCausalLM") return "qwen2";
  if (c.architecture == "Qwen3ForCausalLM") return "qwen3";
  throw GgufError("no GGUF architecture for " + c.architecture);
}

uint32_t gguf_file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q5_0: return 8;
    case GgmlType::Q5_1: return 9;
    case GgmlType::Q4_K: return 14;  // MOSTLY_Q4_K_S: every matrix Q4_K
    case GgmlType::Q5_K: return 16;  // MOSTLY_Q5_K_S
    case GgmlType::Q6_K: return 18;
    case GgmlType::BF16: return 32;
    default: throw GgufError(std::string("no llama.cpp file type for ") + ggml_type_name(t));
  }
}

void gguf_add_model_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, GgmlType main_type) {
  const std::string a = gguf_architecture(c);
  auto u32 = [](int v) { return GgufMeta::u32(static_cast<uint32_t>(v)); };
  w.add("general.architecture", GgufMeta::string(a));
  w.add("general.type", GgufMeta::string("model"));
  w.add("general.name", GgufMeta::string(name));
  w.add(a + ".block_count", u32(c.n_layers));
  w.add(a + ".context_length", u32(c.max_seq_len));
  w.add(a + ".embedding_length", u32(c.dim));
  w.add(a + ".feed_forward_length", u32(c.hidden_dim));
  w.add(a + ".attention.head_count", u32(c.n_heads));
  w.add(a + ".attention.head_count_kv", u32(c.n_kv_heads));
  w.add(a + ".rope.freq_base", GgufMeta::f32(static_cast<float>(c.rope_theta)));
  w.add(a + ".attention.layer_norm_rms_epsilon", GgufMeta::f32(c.rms_eps));
  if (c.head_dim * c.n_heads != c.dim) {
    w.add(a + ".attention.key_length", u32(c.head_dim));
    w.add(a + ".attention.value_length", u32(c.head_dim));
  }
  w.add("general.file_type", GgufMeta::u32(gguf_file_type(main_type)));
  w.add(a + ".vocab_size", u32(c.vocab_size));
  w.add(a + ".rope.dimension_count", u32(c.head_dim));
  w.add("general.quantization_version", GgufMeta::u32(2));
}

std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  std::vector<float> out;
  for (int i = 0; i < c.head_dim; i += 2) {
    // torch: base ** (arange(0, dim, 2, float32) / dim), in f32
    const float e = static_cast<float>(i) / static_cast<float>(c.head_dim);
    const float freq = 1.0f / std::pow(static_cast<float>(c.rope_theta), e);
    const double wavelen = 2 * std::numbers::pi / static_cast<double>(freq);
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(static_cast<float>(s.factor));
    } else {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / s.factor + smooth)));
    }
  }
  return out;
}

RopeScaling llama3_scaling_from_factors(const std::vector<float>& factors, double rope_theta, int head_dim,
                                        const std::string& source) {
  if (factors.size() * 2 != static_cast<size_t>(head_dim))
    throw GgufError(source + ": rope_freqs.weight has " + std::to_string(factors.size()) +
                    " values, expected head_dim / 2 = " + std::to_string(head_dim / 2));
  float factor = 1;
  for (float r : factors) factor = std::max(factor, r);
  RopeScaling s;
  s.factor = factor;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  auto wavelen = [&](size_t k) {
    const float e = static_cast<float>(2 * k) / static_cast<float>(head_dim);
    return 2 * std::numbers::pi / static_cast<double>(1.0f / std::pow(static_cast<float>(rope_theta), e));
  };
  const float tol = 1e-5f;
  double lo = 0, hi = 1e300;  // bounds on the original context length when no factor is smoothed
  bool solved = false;
  for (size_t k = 0; k < factors.size(); ++k) {
    const double r = factors[k], wl = wavelen(k);
    if (std::fabs(r - 1) <= tol) {
      lo = std::max(lo, 4 * wl);  // wavelen < orig / 4
    } else if (std::fabs(r - factor) <= tol * factor) {
      hi = std::min(hi, wl);  // wavelen > orig
    } else if (!solved) {  // smooth = (orig / wavelen - 1) / 3 = (1/r - 1/factor) / (1 - 1/factor)
      const double smooth = (1 / r - 1 / factor) / (1 - 1 / factor);
      s.original_max_position_embeddings = (3 * smooth + 1) * wl;
      solved = true;
    }
  }
  if (!solved) s.original_max_position_embeddings = std::sqrt(std::max(lo, 1.0) * std::min(hi, 1e12));
  auto reproduces = [&](double original) {
    ModelConfig check;
    check.head_dim = head_dim;
    check.rope_theta = rope_theta;
    check.rope_scaling = s;
    check.rope_scaling.original_max_position_embeddings = original;
    const std::vector<float> again = llama3_rope_factors(check);
    for (size_t k = 0; k < factors.size(); ++k)
      if (std::fabs(again[k] - factors[k]) > 1e-5f * std::max(1.0f, factors[k])) return false;
    return true;
  };
  // config.json holds an integer: prefer the nearest one when it reproduces the factors too.
  const double rounded = std::round(s.original_max_position_embeddings);
  if (reproduces(rounded)) s.original_max_position_embeddings = rounded;
  else if (!reproduces(s.original_max_position_embeddings))
    throw GgufError(source + ": rope_freqs.weight is not a Llama 3 RoPE scaling with low_freq_factor 1 and "
                    "high_freq_factor 4; cannot express it in config.json");
  return s;
}

GgufLlamaVocab synthetic_llama_vocab(int vocab_size) {
  GgufLlamaVocab v;
  v.pieces = synthetic_token_pieces(vocab_size);
  for (size_t i = 0; i < v.pieces.size(); ++i) v.scores.push_back(synthetic_token_score(static_cast<int>(i)));
  classify(v);
  return v;
}

GgufLlamaVocab llama_vocab_from_tokenizer_bin(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw GgufError(path + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& what) { return GgufError(path + ": not a llama2.c tokenizer.bin: " + what); };
  if (bytes.size() < 4) throw fail("file too short");
  GgufLlamaVocab v;
  for (size_t off = 4; off < bytes.size();) {
    if (bytes.size() - off < 8) throw fail("truncated entry for token " + std::to_string(v.pieces.size()));
    float score;
    int32_t len;
    std::memcpy(&score, bytes.data() + off, 4);
    std::memcpy(&len, bytes.data() + off + 4, 4);
    off += 8;
    if (len < 0 || static_cast<size_t>(len) > bytes.size() - off)
      throw fail("bad length " + std::to_string(len) + " for token " + std::to_string(v.pieces.size()));
    std::string piece = bytes.substr(off, static_cast<size_t>(len));
    off += static_cast<size_t>(len);
    if (piece == "\n<s>\n") piece = "<s>";
    if (piece == "\n</s>\n") piece = "</s>";
    std::string sp;
    for (char ch : piece) {
      if (ch == ' ') sp.append("\xE2\x96\x81");
      else sp.push_back(ch);
    }
    v.pieces.push_back(std::move(sp));
    v.scores.push_back(score);
  }
  if (v.pieces.empty()) throw fail("no tokens");
  classify(v);
  return v;
}

void gguf_add_special_token_ids(GgufWriter& w, const ModelConfig& c) {
  if (c.bos_token_id >= 0 && !w.has("tokenizer.ggml.bos_token_id"))
    w.add("tokenizer.ggml.bos_token_id", GgufMeta::u32(static_cast<uint32_t>(c.bos_token_id)));
  if (c.eos_token_id >= 0 && !w.has("tokenizer.ggml.eos_token_id"))
    w.add("tokenizer.ggml.eos_token_id", GgufMeta::u32(static_cast<uint32_t>(c.eos_token_id)));
}

void gguf_add_llama_vocab(GgufWriter& w, const GgufLlamaVocab& v) {
  w.add("tokenizer.ggml.model", GgufMeta::string("llama"));
  w.add("tokenizer.ggml.pre", GgufMeta::string("default"));
  w.add("tokenizer.ggml.tokens", GgufMeta::strings(v.pieces));
  w.add("tokenizer.ggml.scores", GgufMeta::f32s(v.scores));
  w.add("tokenizer.ggml.token_type", GgufMeta::i32s(v.types));
  if (v.bos_id >= 0) w.add("tokenizer.ggml.bos_token_id", GgufMeta::u32(static_cast<uint32_t>(v.bos_id)));
  if (v.eos_id >= 0) w.add("tokenizer.ggml.eos_token_id", GgufMeta::u32(static_cast<uint32_t>(v.eos_id)));
  if (v.unk_id >= 0) w.add("tokenizer.ggml.unknown_token_id", GgufMeta::u32(static_cast<uint32_t>(v.unk_id)));
  w.add("tokenizer.ggml.add_bos_token", GgufMeta::boolean(v.add_bos));
  w.add("tokenizer.ggml.add_eos_token", GgufMeta::boolean(false));
}

}  // namespace fleet
