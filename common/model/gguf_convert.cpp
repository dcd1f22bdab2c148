// `fleet convert` between GGUF files and Hugging Face directories (see model_writer.h).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "log/log.h"
#include "gguf/gguf_file.h"
#include "model/gguf_model.h"
#include "model/gguf_model_meta.h"
#include "model/gguf_names.h"
#include "gguf/gguf_writer.h"
#include "model/model_writer.h"
#include "model/safetensors_writer.h"
#include "model/tensor_store.h"
#include "util/json_file.h"
#include "util/progress.h"

namespace fleet {

namespace fs = std::filesystem;

namespace {

DType dtype_of(GgmlType t) {
  return t == GgmlType::F16 ? DType::F16 : t == GgmlType::BF16 ? DType::BF16 : DType::F32;
}

GgmlType ggml_of(DType d) {
  switch (d) {
    case DType::F32: return GgmlType::F32;
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    default: throw GgufError(std::string("no GGUF type for dtype ") + dtype_name(d));
  }
}

// Rope heads of a Q/K weight or bias of a llama model (0: not permuted).
int64_t rope_heads_of(const std::string& hf_name, const ModelConfig& c, bool llama) {
  if (!llama) return 0;
  if (hf_name.ends_with("q_proj.weight") || hf_name.ends_with("q_proj.bias")) return c.n_heads;
  if (hf_name.ends_with("k_proj.weight") || hf_name.ends_with("k_proj.bias")) return c.n_kv_heads;
  return 0;
}

// Elements [begin, begin + n) of a file tensor as f32.
void load_f32(const TensorRef& t, int64_t begin, int64_t n, float* out) {
  if (t.dtype == DType::F32) {
    std::memcpy(out, t.data + begin * 4, static_cast<size_t>(n) * 4);
    return;
  }
  if (t.dtype != DType::F16 && t.dtype != DType::BF16)
    throw GgufError(t.file + ": tensor " + t.name + " has dtype " + dtype_name(t.dtype) + ", expected f32/f16/bf16");
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + (begin + i) * 2, 2);
    out[i] = t.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// The GGUF vocabulary as a llama2.c tokenizer.bin (pieces as stored, "▁" kept).
void write_tokenizer_bin(const GgufFile& f, const fs::path& path) {
  const auto pieces = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  const auto scores = f.get_or<std::vector<float>>("tokenizer.ggml.scores", std::vector<float>(pieces.size(), 0.f));
  if (scores.size() != pieces.size())
    throw GgufError(f.path() + ": tokenizer.ggml.scores has " + std::to_string(scores.size()) + " entries for " +
                    std::to_string(pieces.size()) + " tokens");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  int32_t max_len = 1;
  for (const auto& p : pieces) max_len = std::max(max_len, static_cast<int32_t>(p.size()));
  out.write(reinterpret_cast<const char*>(&max_len), 4);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const int32_t len = static_cast<int32_t>(pieces[i].size());
    out.write(reinterpret_cast<const char*>(&scores[i]), 4);
    out.write(reinterpret_cast<const char*>(&len), 4);
    out.write(pieces[i].data(), len);
  }
  if (!out) throw GgufError(path.string() + ": write failed");
}

}  // namespace

void convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir) {
  const GgufFile f = GgufFile::open(gguf_path);
  ModelConfig c = gguf_model_config(f);
  const bool llama = c.rope_layout == RopeLayout::Adjacent;
  c.rope_layout = RopeLayout::HalfSplit;  // Q/K rows are un-permuted below
  std::vector<TensorSpec> specs;
  bool all_bf16 = true, all_f16 = true;
  for (const GgufTensorInfo& t : f.tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // became config.json's rope_scaling
    const std::optional<std::string> hf = hf_tensor_name(t.name);
    if (!hf) throw GgufError(gguf_path + ": tensor " + t.name + " has no Hugging Face counterpart");
    std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());
    const DType dt = dtype_of(t.type);
    if (t.ne.size() == 2) {
      all_bf16 = all_bf16 && dt == DType::BF16;
      all_f16 = all_f16 && dt == DType::F16;
    }
    const int64_t heads = rope_heads_of(*hf, c, llama);
    if (heads > 0 && t.rows() != heads * c.head_dim)
      throw GgufError(gguf_path + ": tensor " + t.name + " has " + std::to_string(t.rows()) + " rows, expected " +
                      std::to_string(heads * c.head_dim));
    specs.push_back({*hf, dt, shape, [&f, &t, dt, heads, hd = c.head_dim](std::vector<uint8_t>& out) {
                       std::vector<uint8_t> raw;
                       if (dt == DType::F32) {  // F32 copied, other types dequantized
                         raw.resize(static_cast<size_t>(t.numel) * 4);
                         gguf_dequantize(t.type, f.tensor_data(t), t.numel, reinterpret_cast<float*>(raw.data()));
                       } else {
                         raw.assign(f.tensor_data(t), f.tensor_data(t) + t.nbytes);
                       }
                       if (heads == 0) {
                         out.swap(raw);
                         return;
                       }
                       out.resize(raw.size());
                       permute_rope_rows(raw.data(), out.data(), heads, hd, raw.size() / static_cast<size_t>(t.rows()),
                                         true);
                     }});
  }
  fs::create_directories(out_dir);
  Progress progress("convert " + out_dir, 0);
  track_fills(progress, specs, [](const TensorSpec& s) { return shape_bytes(s.shape, dtype_block_bytes(s.dtype)); });
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), specs);
  progress.done();
  nlohmann::json cfg = c.to_hf_json(all_bf16 ? "bfloat16" : all_f16 ? "float16" : "float32");
  cfg["fleet_converted_from"] = fs::path(gguf_path).filename().string();
  write_text_file((fs::path(out_dir) / "config.json").string(), cfg.dump(2) + "\n");

  const std::string model = f.get_or<std::string>("tokenizer.ggml.model", "");
  if (model == "llama") {
    write_tokenizer_bin(f, fs::path(out_dir) / "tokenizer.bin");
  } else if (!model.empty()) {
    log::logf(log::Level::Warn, "convert: tokenizer.ggml.model '%s' is not converted (only 'llama'); the directory has no "
                 "tokenizer (use the GGUF file itself as the tokenizer)", model.c_str());
  }
  nlohmann::json tc = nlohmann::json::object();
  if (const std::string tpl = f.get_or<std::string>("tokenizer.chat_template", ""); !tpl.empty()) tc["chat_template"] = tpl;
  if (f.find("tokenizer.ggml.add_bos_token")) tc["add_bos_token"] = f.get<bool>("tokenizer.ggml.add_bos_token");
  if (!tc.empty()) write_text_file((fs::path(out_dir) / "tokenizer_config.json").string(), tc.dump(2) + "\n");
}

void convert_hf_to_gguf(const std::string& dir, const std::string& out_path, bool keep_type, GgmlType type,
                        const std::string& tokenizer_bin) {
  const fs::path cfg_path = fs::path(dir) / "config.json";
  if (!fs::exists(cfg_path)) throw GgufError(dir + ": not a Hugging Face model directory (no config.json)");
  const ModelConfig c = ModelConfig::from_hf_json(read_json_file(cfg_path.string()), cfg_path.string());
  if (!keep_type && type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16)
    throw GgufError(std::string("convert: GGUF type ") + ggml_type_name(type) + " is not written by conversion (f32, f16, bf16)");
  const std::shared_ptr<TensorStore> store = open_safetensors_dir(dir);
  const bool llama = gguf_architecture(c) == "llama";
  const std::vector<TensorShape> shapes = hf_tensor_shapes(c);
  const GgmlType main_type = keep_type ? ggml_of(store->require(shapes[0].name, shapes[0].shape).dtype) : type;

  GgufWriter w;
  Progress progress("convert " + out_path, 0);
  auto add_tensor = [&](GgufTensorSpec t) { w.add_tensor(track_writes(progress, std::move(t))); };
  std::string name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(dir).lexically_normal().parent_path().filename().string();
  gguf_add_model_metadata(w, c, name, main_type);
  const std::string tok = !tokenizer_bin.empty() ? tokenizer_bin : (fs::path(dir) / "tokenizer.bin").string();
  if (!tokenizer_bin.empty() || fs::exists(tok)) {
    GgufLlamaVocab v = llama_vocab_from_tokenizer_bin(tok);
    if (static_cast<int>(v.pieces.size()) != c.vocab_size)
      throw GgufError(tok + ": " + std::to_string(v.pieces.size()) + " tokens, the model has " +
                      std::to_string(c.vocab_size));
    gguf_add_llama_vocab(w, v);
  } else if (fs::exists(fs::path(dir) / "tokenizer.json")) {
    log::logf(log::Level::Warn, "convert: %s/tokenizer.json is not mapped to GGUF tokenizer metadata; the GGUF file has no "
                 "tokenizer (give a llama2.c tokenizer.bin with --tokenizer, or pass the tokenizer at run time)", dir.c_str());
  }
  gguf_add_special_token_ids(w, c);
  if (llama && c.rope_scaling.factor > 0) {
    const std::vector<float> f = llama3_rope_factors(c);
    add_tensor({"rope_freqs.weight", GgmlType::F32, {static_cast<int64_t>(f.size())},
                [f](const GgufSink& put) { put(f.data(), f.size() * 4); }});
  }
  for (const TensorShape& ts : shapes) {
    const TensorRef& src = store->require(ts.name, ts.shape);
    const std::optional<std::string> gname = gguf_tensor_name(ts.name);
    if (!gname) throw GgufError(dir + ": tensor " + ts.name + " has no GGUF name");
    const bool matrix = ts.shape.size() == 2;
    const int64_t rows = ts.shape[0], cols = matrix ? ts.shape[1] : 1;
    const GgmlType t = !matrix ? GgmlType::F32 : keep_type ? ggml_of(src.dtype) : type;
    const int64_t heads = rope_heads_of(ts.name, c, llama);
    std::vector<int64_t> ne = matrix ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{rows};
    add_tensor({*gname, t, ne, [&src, t, rows, cols, heads, hd = c.head_dim](const GgufSink& put) {
                    // Chunks of whole heads (Q/K) or of ~64K values; each converted, then permuted.
                    const int64_t chunk = heads > 0 ? hd : std::max<int64_t>(1, (1 << 16) / cols);
                    const DType want = t == GgmlType::F32 ? DType::F32 : t == GgmlType::F16 ? DType::F16 : DType::BF16;
                    std::vector<float> v;
                    std::vector<uint8_t> bytes, permuted;
                    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
                      const int64_t n = std::min(chunk, rows - r0);
                      if (src.dtype == want) {
                        const size_t eb = want == DType::F32 ? 4 : 2;
                        bytes.assign(src.data + static_cast<size_t>(r0 * cols) * eb,
                                     src.data + static_cast<size_t>((r0 + n) * cols) * eb);
                      } else {
                        v.resize(static_cast<size_t>(n * cols));
                        load_f32(src, r0 * cols, n * cols, v.data());
                        encode_f32(v.data(), v.size(), want, bytes);
                      }
                      if (heads > 0) {
                        permuted.resize(bytes.size());
                        permute_rope_rows(bytes.data(), permuted.data(), 1, hd, bytes.size() / static_cast<size_t>(n),
                                          false);
                        bytes.swap(permuted);
                      }
                      put(bytes.data(), bytes.size());
                    }
                  }});
  }
  w.write(out_path);
  progress.done();
}

}  // namespace fleet
