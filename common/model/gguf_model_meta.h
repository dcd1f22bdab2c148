#pragma once
// A model's hyper-parameters and vocabulary as GGUF metadata, written the way llama.cpp's
// convert_hf_to_gguf.py writes them (gguf-py GGUFWriter key names and value types), and read
// back into a ModelConfig by gguf_model_config (model/gguf_model.h).
//
// Written keys: general.architecture ("llama" for Llama and Mistral, "qwen2", "qwen3"),
// general.type, general.name, <arch>.block_count, .context_length, .embedding_length,
// .feed_forward_length, .attention.head_count, .attention.head_count_kv, .rope.freq_base,
// .attention.layer_norm_rms_epsilon, .attention.key_length / .value_length (only when head_dim
// is not dim / heads, as for Qwen3), general.file_type, <arch>.vocab_size,
// .rope.dimension_count, general.quantization_version (2); all integers u32, floats f32.
//
// Llama 3 RoPE scaling: llama.cpp writes no rope.scaling.* keys for it (a "llama3" scaling type
// would make llama.cpp refuse the file, and a rope.scaling.factor would make it scale linearly
// on top) but a tensor `rope_freqs.weight` (F32, head_dim / 2 values) of per-frequency
// divisors, computed by llama3_rope_factors() exactly as convert_hf_to_gguf.py does.
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/model_config.h"

namespace fleet {

// "llama", "qwen2" or "qwen3" for the config's Hugging Face architecture; throws otherwise.
std::string gguf_architecture(const ModelConfig& c);

// llama.cpp's general.file_type (LlamaFileType) for a file whose matrices are of type t.
uint32_t gguf_file_type(GgmlType t);

// Adds the general.* and <arch>.* keys listed above.
void gguf_add_model_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name, GgmlType main_type);

// convert_hf_to_gguf.py's rope_freqs values for a config with Llama 3 RoPE scaling.
std::vector<float> llama3_rope_factors(const ModelConfig& c);
// The Llama 3 scaling parameters that reproduce `factors` (to 1e-5) for this base and head
// dim: low_freq_factor 1 and high_freq_factor 4 (every Llama 3.x checkpoint's) and the
// original context length solved from the factors. Throws if no such parameters exist.
RopeScaling llama3_scaling_from_factors(const std::vector<float>& factors, double rope_theta, int head_dim,
                                        const std::string& source);

// A SentencePiece-style vocabulary for tokenizer.ggml.model = "llama".
struct GgufLlamaVocab {
  std::vector<std::string> pieces;  // "▁" for spaces, "<0xNN>" byte pieces
  std::vector<float> scores;
  std::vector<int32_t> types;       // gguf TokenType: 1 normal, 2 unknown, 3 control, 6 byte
  int32_t bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_bos = true;
};

// The synthetic vocabulary of write_synthetic_model's tokenizer.bin (see model_writer.h).
GgufLlamaVocab synthetic_llama_vocab(int vocab_size);
// A llama2.c tokenizer.bin, read the way the fleet's tokenizer reads it (" " is "▁", BOS/EOS
// unwrapped from their newlines).
GgufLlamaVocab llama_vocab_from_tokenizer_bin(const std::string& path);
// tokenizer.ggml.model "llama", .pre "default", .tokens, .scores, .token_type, bos/eos/unk ids
// (u32), add_bos_token / add_eos_token, as convert_hf_to_gguf.py's _set_vocab_sentencepiece.
void gguf_add_llama_vocab(GgufWriter& w, const GgufLlamaVocab& v);
// tokenizer.ggml.bos_token_id / eos_token_id from the config, where not written yet.
void gguf_add_special_token_ids(GgufWriter& w, const ModelConfig& c);

}  // namespace fleet
