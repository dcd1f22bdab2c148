#pragma once
// A GGUF file (llama.cpp's format) as a model the engine runs: its hyper-parameters from the
// architecture metadata, and its tensors under the engine's canonical (Hugging Face) names,
// kept in their stored types (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)
// as zero-copy views of the mapped file. See model/gguf_names.h for names and RoPE layout.
#include <memory>
#include <string>

#include "gguf/gguf_file.h"
#include "model/model_config.h"
#include "model/tensor_store.h"

namespace fleet {

// Reads `general.architecture` and its keys (<arch>.block_count, .embedding_length,
// .feed_forward_length, .attention.head_count[_kv], .attention.key_length,
// .attention.layer_norm_rms_epsilon, .context_length, .rope.freq_base), the vocabulary (from
// <arch>.vocab_size, else the token list, else token_embd's rows), BOS/EOS from
// tokenizer.ggml.*, a tied head when there is no output.weight, Qwen2 biases and Qwen3 q/k
// norms from the tensors present, Llama 3 RoPE scaling recovered from rope_freqs.weight, and
// the RoPE layout the file's Q/K rows are in (gguf_rope_layout). Throws GgufError naming the
// file and key for anything missing or not supported (other RoPE scalings, partial RoPE).
ModelConfig gguf_model_config(const GgufFile& file);

// Opens `path`, fills `config` and returns its tensors. A tensor of a ggml type the engine
// does not support is an error naming it when the store is opened.
std::unique_ptr<TensorStore> open_gguf(const std::string& path, ModelConfig* config);

// True when the file at `path` starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

}  // namespace fleet
