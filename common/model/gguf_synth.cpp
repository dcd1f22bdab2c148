// `fleet synth --format gguf`: GGUF files with random weights of every type the fleet reads
// (see write_synthetic_gguf in model_writer.h).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "model/gguf_model_meta.h"
#include "model/gguf_names.h"
#include "gguf/gguf_writer.h"
#include "model/model_writer.h"
#include "model/safetensors_writer.h"
#include "model/synth_random.h"
#include "util/progress.h"

namespace fleet {

namespace {

// The synth's value range: uniform weights with standard deviation 0.02 lie in +-amp.
const float kAmp = 0.02f * std::sqrt(3.0f);

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

void random_bytes(SynthRng& rng, uint8_t* p, size_t n) {
  for (size_t k = 0; k < n; k += 8) {
    const uint64_t r = rng.next();
    std::memcpy(p + k, &r, std::min<size_t>(8, n - k));
  }
}

// 6-bit scale in [lo, 63].
int random6(SynthRng& rng, int lo) { return lo + static_cast<int>(rng.next() % static_cast<uint64_t>(64 - lo)); }

// Q4_K / Q5_K: 8 sub-blocks, y = d * sc * q - dmin * m with q in [0, qmax]. m is sc plus a
// little jitter and dmin = d * qmax / 2, so each sub-block is centred near 0 and bounded by
// about +-amp.
void random_k_scales(SynthRng& rng, uint8_t* p, int qmax) {
  const float d = 2 * kAmp / static_cast<float>(qmax * 63);
  put_f16(p, d);
  put_f16(p + 2, d * static_cast<float>(qmax) / 2);
  int sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = random6(rng, 1);
    m[j] = std::clamp(sc[j] + static_cast<int>(rng.next() % 5) - 2, 0, 63);
  }
  uint8_t* q = p + 4;  // ggml's get_scale_min_k4 packing
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

// Fills n values (whole blocks) of random quants with scales keeping values within ~+-amp.
void random_blocks(GgmlType t, SynthRng& rng, int64_t n, uint8_t* out) {
  const auto& tr = ggml_traits(t);
  for (int64_t b = 0; b < n / tr.block_size; ++b) {
    uint8_t* p = out + static_cast<size_t>(b) * tr.type_size;
    switch (t) {
      case GgmlType::Q8_0:
        put_f16(p, kAmp / 127);
        for (int k = 0; k < 32; ++k) p[2 + k] = static_cast<uint8_t>(static_cast<int8_t>(static_cast<int>(rng.next() % 255) - 127));
        break;
      case GgmlType::Q4_0:
        put_f16(p, kAmp / 8);
        random_bytes(rng, p + 2, 16);
        break;
      case GgmlType::Q4_1:
        put_f16(p, 2 * kAmp / 15);
        put_f16(p + 2, -kAmp);
        random_bytes(rng, p + 4, 16);
        break;
      case GgmlType::Q5_0:
        put_f16(p, kAmp / 16);
        random_bytes(rng, p + 2, 20);
        break;
      case GgmlType::Q5_1:
        put_f16(p, 2 * kAmp / 31);
        put_f16(p + 2, -kAmp);
        random_bytes(rng, p + 4, 20);
        break;
      case GgmlType::Q4_K:
        random_k_scales(rng, p, 15);
        random_bytes(rng, p + 16, 128);
        break;
      case GgmlType::Q5_K:
        random_k_scales(rng, p, 31);
        random_bytes(rng, p + 16, 32 + 128);
        break;
      case GgmlType::Q6_K: {  // ql[128], qh[64], scales[16] int8, d; y = d * sc * (q - 32)
        random_bytes(rng, p, 192);
        for (int k = 0; k < 16; ++k) {
          const int s = random6(rng, 1) * 2 - 1;  // 1..125, odd
          p[192 + k] = static_cast<uint8_t>(static_cast<int8_t>((rng.next() & 1) ? s : -s));
        }
        put_f16(p + 208, kAmp / (32 * 125));
        break;
      }
      default:
        throw GgufError(std::string("synth: no random blocks for ") + tr.name);
    }
  }
}

bool is_unquantized(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Values of write_synthetic_model for this tensor, `rows` rows of `cols` at a time, encoded as
// `type`; Q/K rows permuted to adjacent RoPE pairs when rope_heads > 0 (chunks of whole heads).
void write_float_tensor(const GgufSink& put, uint64_t seed, const std::string& hf_name, bool is_norm, int64_t rows,
                        int64_t cols, GgmlType type, int64_t rope_heads, int64_t head_dim) {
  SynthRng rng(seed, hf_name);
  const int64_t chunk = rope_heads > 0 ? head_dim : std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(cols, 1));
  std::vector<float> v, permuted;
  std::vector<uint8_t> bytes;
  const DType dt = type == GgmlType::F32 ? DType::F32 : type == GgmlType::F16 ? DType::F16 : DType::BF16;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    v.resize(static_cast<size_t>(n * cols));
    for (auto& x : v) x = is_norm ? 1.0f + 0.1f * rng.uniform() : kAmp * rng.uniform();
    if (rope_heads > 0) {
      permuted.resize(v.size());
      permute_rope_rows(reinterpret_cast<const uint8_t*>(v.data()), reinterpret_cast<uint8_t*>(permuted.data()), 1,
                        head_dim, static_cast<size_t>(cols) * 4, false);
      v.swap(permuted);
    }
    encode_f32(v.data(), v.size(), dt, bytes);
    put(bytes.data(), bytes.size());
  }
}

}  // namespace

GgmlType parse_gguf_write_type(const std::string& s) {
  std::string u;
  for (char c : s) u.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1,
                     GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    if (u == ggml_type_name(t)) return t;
  throw GgufError("unknown GGUF tensor type '" + s + "' (one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, "
                  "q5_k, q6_k)");
}

GgmlType gguf_type_for_row(GgmlType type, int64_t row_length) {
  if (row_length % 256 != 0) {
    if (type == GgmlType::Q4_K) type = GgmlType::Q5_0;
    if (type == GgmlType::Q5_K) type = GgmlType::Q5_1;
    if (type == GgmlType::Q6_K) type = GgmlType::Q8_0;
  }
  if (row_length % ggml_traits(type).block_size != 0) type = GgmlType::F16;
  return type;
}

void write_synthetic_gguf(const ModelConfig& c, GgmlType type, uint64_t seed, const std::string& path) {
  c.validate("synthetic shape");
  parse_gguf_write_type(ggml_type_name(type));  // one of the written types
  const bool llama = gguf_architecture(c) == "llama";
  GgufWriter w;
  Progress progress("synth " + path, 0);
  auto add_tensor = [&](GgufTensorSpec t) { w.add_tensor(track_writes(progress, std::move(t))); };
  gguf_add_model_metadata(w, c, "fleet synthetic " + std::string(ggml_type_name(type)), type);
  w.add("fleet.synthetic.seed", GgufMeta::u64(seed));
  if (c.vocab_size >= 512) {
    GgufLlamaVocab v = synthetic_llama_vocab(c.vocab_size);
    v.bos_id = c.bos_token_id;
    v.eos_id = c.eos_token_id;
    gguf_add_llama_vocab(w, v);
  }
  gguf_add_special_token_ids(w, c);
  if (c.rope_scaling.factor > 0) {
    const std::vector<float> f = llama3_rope_factors(c);
    add_tensor({"rope_freqs.weight", GgmlType::F32, {static_cast<int64_t>(f.size())},
                  [f](const GgufSink& put) { put(f.data(), f.size() * 4); }});
  }
  for (const TensorShape& ts : hf_tensor_shapes(c)) {
    const std::optional<std::string> name = gguf_tensor_name(ts.name);
    if (!name) throw GgufError("synth: no GGUF name for " + ts.name);
    const bool matrix = ts.shape.size() == 2;
    const int64_t rows = matrix ? ts.shape[0] : 1, cols = ts.shape.back();
    if (!matrix) {
      const bool is_norm = ts.name.find("bias") == std::string::npos;
      add_tensor({*name, GgmlType::F32, {cols}, [=, hf = ts.name](const GgufSink& put) {
                      write_float_tensor(put, seed, hf, is_norm, 1, cols, GgmlType::F32, 0, 0);
                    }});
      continue;
    }
    const GgmlType t = gguf_type_for_row(type, cols);
    int64_t rope_heads = 0;
    if (llama && ts.name.ends_with("q_proj.weight")) rope_heads = c.n_heads;
    if (llama && ts.name.ends_with("k_proj.weight")) rope_heads = c.n_kv_heads;
    add_tensor({*name, t, {cols, rows}, [=, hf = ts.name, hd = c.head_dim](const GgufSink& put) {
                    if (is_unquantized(t)) {
                      write_float_tensor(put, seed, hf, false, rows, cols, t, rope_heads, hd);
                      return;
                    }
                    SynthRng rng(seed, hf);
                    std::vector<uint8_t> row(gguf_row_bytes(t, cols));
                    for (int64_t r = 0; r < rows; ++r) {
                      random_blocks(t, rng, cols, row.data());
                      put(row.data(), row.size());
                    }
                  }});
  }
  w.write(path);
  progress.done();
}

}  // namespace fleet
