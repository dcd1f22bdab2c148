#pragma once
// Producing Hugging Face model directories and GGUF files: from a llama2.c checkpoint or a GGUF
// file, or the other way round (`fleet convert`), and with random weights of a realistic shape
// (`fleet synth`).
#include <cstdint>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "gguf/gguf_types.h"
#include "model/model_config.h"

namespace fleet {

// Writes config.json and model.safetensors (f32, Q and K permuted from llama2.c's adjacent
// RoPE pairs to Hugging Face's half-split layout), plus tokenizer.json and
// tokenizer_config.json made from the llama2.c tokenizer.bin.
void convert_llama2c_to_hf(const std::string& model_file, const std::string& tokenizer_file,
                           const std::string& out_dir);

// Named shapes for synthetic models.
std::vector<std::string> synth_shape_names();
ModelConfig synth_shape(const std::string& name);  // throws listing the known names

// Writes config.json, safetensors (sharded in files of at most shard_bytes) with random
// weights, reproducible from `seed` (each tensor's values depend only on (seed, its name)),
// and a llama2.c tokenizer.bin of synthetic pieces covering the whole vocabulary.
void write_synthetic_model(const ModelConfig& config, DType dtype, uint64_t seed, const std::string& out_dir,
                           uint64_t shard_bytes = 2ull << 30);

// The tensor names and shapes of a model with this config, in file order.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<TensorShape> hf_tensor_shapes(const ModelConfig& config);

// The pieces of the synthetic tokenizer (<unk>, <s>, </s>, the 256 <0xNN> byte pieces, then
// "▁"-prefixed and plain lowercase strings) and each piece's score.
std::vector<std::string> synthetic_token_pieces(int vocab);
float synthetic_token_score(int id);

// Reorders the rows of a Q or K projection (or bias): n_heads blocks of head_dim rows of
// row_bytes each. to_half_split: from adjacent RoPE pairs (llama2.c, llama.cpp's GGUF llama
// files) to Hugging Face's half-split order, i.e. out row h*d + e*d/2 + i = in row h*d + 2i + e;
// otherwise the inverse (what convert_hf_to_gguf.py's LlamaModel.permute does).
void permute_rope_rows(const uint8_t* in, uint8_t* out, int64_t n_heads, int64_t head_dim, size_t row_bytes,
                       bool to_half_split);

// ---- GGUF (gguf_synth.cpp, gguf_convert.cpp) ----

// "q4_k" / "Q4_K" -> GgmlType::Q4_K, for the types fleet writes: f32, f16, bf16, q8_0, q4_0,
// q4_1, q5_0, q5_1, q4_k, q5_k, q6_k. Throws listing them.
GgmlType parse_gguf_write_type(const std::string& s);
// The type a matrix with rows of `row_length` gets when `type` is asked for: llama.cpp's
// fallbacks for K-quants on rows that are not a multiple of 256 (Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0), then F16 for rows that are not a multiple of the block size.
GgmlType gguf_type_for_row(GgmlType type, int64_t row_length);

// A GGUF file of this shape with random weights: every matrix of `type` (gguf_type_for_row),
// norms and biases F32, reproducible from `seed` (values depend only on (seed, tensor name));
// quantized blocks hold random quants with f16 scales bounding values near +-0.035 (the
// range of the safetensors synth); F32/F16/BF16 files hold the same values as
// write_synthetic_model's (Q/K permuted for llama). Includes a "llama" tokenizer (the synthetic
// vocabulary) when the vocabulary has at least 512 entries. Streams tensor data; memory use is
// a few MB whatever the shape.
void write_synthetic_gguf(const ModelConfig& config, GgmlType type, uint64_t seed, const std::string& path);

// GGUF -> Hugging Face directory: config.json and model.safetensors; F32/F16/BF16 tensors keep
// their type, quantized ones are dequantized to F32; llama Q/K rows back in half-split order.
// Writes tokenizer.bin (llama2.c format) for a "llama" (SentencePiece) vocabulary and
// tokenizer_config.json with the chat template when the file has one; a "gpt2" vocabulary is
// not converted (a message says so on stderr).
void convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir);

// Hugging Face directory -> GGUF: matrices as `type` (F32, F16 or BF16), or each in its own
// type when keep_type; 1-D tensors F32 (as llama.cpp writes them), Q/K permuted for llama,
// Llama 3 scaling as rope_freqs.weight. Tokenizer metadata ("llama" model) from a llama2.c
// tokenizer.bin: `tokenizer_bin` when given, else the directory's own tokenizer.bin if any. A
// tokenizer.json is not mapped (its SentencePiece scores are gone; a message says so).
void convert_hf_to_gguf(const std::string& dir, const std::string& out_path, bool keep_type,
                        GgmlType type = GgmlType::F16, const std::string& tokenizer_bin = "");

}  // namespace fleet
