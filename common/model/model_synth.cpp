// `fleet synth`: Hugging Face directories with random weights of realistic shapes, for speed
// and memory work where real weights of that size are not available.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "model/model_writer.h"
#include "model/safetensors_writer.h"
#include "model/synth_random.h"
#include "util/progress.h"

namespace fleet {

namespace fs = std::filesystem;

namespace {

ModelConfig shape(const char* arch, int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int ctx,
                  bool tied) {
  ModelConfig c;
  c.architecture = arch;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab_size = vocab;
  c.max_seq_len = ctx;
  c.tie_embeddings = tied;
  c.rms_eps = 1e-5f;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

const std::map<std::string, ModelConfig>& shapes() {
  static const std::map<std::string, ModelConfig> m = [] {
    std::map<std::string, ModelConfig> s;
    // llama2.c's stories110M: dim 768, 12 layers, MHA, 32k vocabulary, tied head.
    s["llama2c-110m"] = shape("LlamaForCausalLM", 768, 2048, 12, 12, 12, 32000, 1024, true);
    // TinyLlama-1.1B: dim 2048, 22 layers, GQA 32/4, 32k vocabulary.
    s["llama-1b"] = shape("LlamaForCausalLM", 2048, 5632, 22, 32, 4, 32000, 2048, false);
    // Llama-3.1-8B: dim 4096, 32 layers, GQA 32/8, 128k vocabulary, untied head (benchmarks:
    // `fleet synth --shape llama-8b --type q4_k` is ~4.6 GB).
    ModelConfig l8 = shape("LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192, false);
    l8.rope_theta = 500000;
    s["llama-8b"] = l8;
    // The same widths in 4 layers with a tied head (~0.24B parameters): layer-range memory tests
    // of every GGUF type (every row a multiple of 256, as K-quants need).
    s["llama-1b-4l"] = shape("LlamaForCausalLM", 2048, 5632, 4, 32, 4, 32000, 2048, true);
    // Small shapes exercising each supported architecture's features (tests).
    ModelConfig l3 = shape("LlamaForCausalLM", 128, 320, 4, 8, 2, 1024, 8192, false);
    l3.rope_theta = 500000;
    l3.rope_scaling = {8.0, 1.0, 4.0, 64.0};  // small original context so every branch is used
    s["tiny-llama3"] = l3;
    // Rows that are multiples of 256, so GGUF K-quants are used as such (tests).
    s["tiny-k256"] = shape("LlamaForCausalLM", 256, 768, 2, 4, 2, 600, 2048, false);
    ModelConfig mistral = shape("MistralForCausalLM", 128, 352, 3, 4, 2, 1000, 4096, false);
    s["tiny-mistral"] = mistral;
    ModelConfig q2 = shape("Qwen2ForCausalLM", 96, 224, 3, 6, 2, 1100, 4096, true);
    q2.qkv_bias = true;
    q2.rope_theta = 1000000;
    s["tiny-qwen2"] = q2;
    ModelConfig q3 = shape("Qwen3ForCausalLM", 128, 384, 3, 4, 2, 1200, 4096, true);
    q3.qk_norm = true;
    q3.head_dim = 48;  // Qwen3 decouples head_dim from dim / n_heads
    q3.rope_theta = 1000000;
    s["tiny-qwen3"] = q3;
    return s;
  }();
  return m;
}

// A llama2.c tokenizer.bin with `vocab` pieces (synthetic_token_pieces), so a synthetic model
// comes with a tokenizer that can decode every id it may sample.
void write_synthetic_tokenizer(int vocab, const fs::path& path) {
  const std::vector<std::string> pieces = synthetic_token_pieces(vocab);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  int32_t max_len = 0;
  for (const auto& p : pieces) max_len = std::max(max_len, static_cast<int32_t>(p.size()));
  out.write(reinterpret_cast<const char*>(&max_len), 4);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const float score = synthetic_token_score(static_cast<int>(i));
    const int32_t len = static_cast<int32_t>(pieces[i].size());
    out.write(reinterpret_cast<const char*>(&score), 4);
    out.write(reinterpret_cast<const char*>(&len), 4);
    out.write(pieces[i].data(), len);
  }
  if (!out) throw std::runtime_error(path.string() + ": write failed");
}

}  // namespace

// <unk>, <s>, </s>, the 256 byte tokens, then "\u2581"-prefixed and plain lowercase strings,
// each reachable by merging its prefix.
std::vector<std::string> synthetic_token_pieces(int vocab) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    pieces.push_back(buf);
  }
  const std::string space = "\xe2\x96\x81";  // U+2581, SentencePiece's space
  std::vector<std::string> level = {""};
  while (static_cast<int>(pieces.size()) < vocab) {
    std::vector<std::string> next;
    for (const std::string& stem : level)
      for (char c = 'a'; c <= 'z'; ++c) next.push_back(stem + c);
    for (const std::string& w : next) {
      if (static_cast<int>(pieces.size()) < vocab) pieces.push_back(space + w);
      if (static_cast<int>(pieces.size()) < vocab) pieces.push_back(w);
    }
    level = std::move(next);
  }
  if (vocab == 1 || static_cast<int>(pieces.size()) > vocab) pieces.resize(static_cast<size_t>(vocab));
  return pieces;
}

float synthetic_token_score(int id) { return id < 259 ? 0.0f : -static_cast<float>(id); }  // shorter pieces merge first

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> n;
  for (auto& [k, v] : shapes()) n.push_back(k);
  return n;
}

ModelConfig synth_shape(const std::string& name) {
  auto it = shapes().find(name);
  if (it == shapes().end()) {
    std::string known;
    for (auto& n : synth_shape_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::runtime_error("unknown synthetic shape '" + name + "' (known: " + known + ")");
  }
  return it->second;
}

void write_synthetic_model(const ModelConfig& c, DType dtype, uint64_t seed, const std::string& out_dir,
                           uint64_t shard_bytes) {
  if (dtype == DType::Q8_0) throw std::runtime_error("synth: dtype must be f32, bf16 or f16");
  c.validate("synthetic shape");
  fs::create_directories(out_dir);
  const size_t elem = dtype == DType::F32 ? 4 : 2;
  // Uniform weights with the standard deviation of common initialisations (0.02); norms near 1.
  const float amp = 0.02f * std::sqrt(3.0f);
  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t shard_size = 0;
  for (const auto& ts : hf_tensor_shapes(c)) {
    uint64_t n = 1;
    for (int64_t d : ts.shape) n *= static_cast<uint64_t>(d);
    if (shard_size > 0 && shard_size + n * elem > shard_bytes) {
      shards.emplace_back();
      shard_size = 0;
    }
    shard_size += n * elem;
    const bool is_norm = ts.shape.size() == 1 && ts.name.find("bias") == std::string::npos;
    shards.back().push_back({ts.name, dtype, ts.shape, [=](std::vector<uint8_t>& out) {
                               SynthRng rng(seed, ts.name);
                               std::vector<float> v(n);
                               for (auto& x : v) x = is_norm ? 1.0f + 0.1f * rng.uniform() : amp * rng.uniform();
                               encode_f32(v.data(), v.size(), dtype, out);
                             }});
  }
  Progress progress("synth " + out_dir, 0);
  for (auto& shard : shards)
    track_fills(progress, shard, [](const TensorSpec& s) { return shape_bytes(s.shape, dtype_block_bytes(s.dtype)); });
  const std::string torch_dtype = dtype == DType::F32 ? "float32" : dtype == DType::BF16 ? "bfloat16" : "float16";
  if (shards.size() == 1) {
    write_safetensors((fs::path(out_dir) / "model.safetensors").string(), shards[0]);
  } else {
    nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
    for (size_t i = 0; i < shards.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      write_safetensors((fs::path(out_dir) / name).string(), shards[i]);
      for (const auto& t : shards[i]) index["weight_map"][t.name] = name;
    }
    std::ofstream(fs::path(out_dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  }
  progress.done();
  if (c.vocab_size >= 512) write_synthetic_tokenizer(c.vocab_size, fs::path(out_dir) / "tokenizer.bin");
  nlohmann::json cfg = c.to_hf_json(torch_dtype);
  cfg["fleet_synthetic"] = {{"seed", seed}};
  std::ofstream out(fs::path(out_dir) / "config.json", std::ios::trunc);
  out << cfg.dump(2) << "\n";
  if (!out) throw std::runtime_error(out_dir + "/config.json: write failed");
}

}  // namespace fleet
