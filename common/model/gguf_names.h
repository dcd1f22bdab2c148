#pragma once
// How a llama.cpp GGUF file names and lays out what a Hugging Face checkpoint holds.
//
// Tensor names: llama.cpp's (token_embd.weight, blk.N.attn_q.weight, ...) <-> Hugging Face's
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...), the engine's
// canonical names (model/tensor_store.h).
//
// RoPE layout: llama.cpp's converter permutes the rows of Q and K of `llama` (and Mistral,
// written as `llama`) models from Hugging Face's half-split pairs (i, i + d/2) into adjacent
// pairs (2i, 2i+1), so a GGUF llama model is RopeLayout::Adjacent and its Q/K rows are used as
// they are (no un-permuting at load). `qwen2` / `qwen3` files keep Hugging Face's order
// (llama.cpp's NEOX rope): RopeLayout::HalfSplit.
#include <optional>
#include <string>

#include "model/model_config.h"

namespace fleet {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; nullopt for a name
// without a GGUF counterpart.
std::optional<std::string> gguf_tensor_name(const std::string& hf_name);
// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; nullopt for a name the
// engine does not use (rope_freqs.weight, ...).
std::optional<std::string> hf_tensor_name(const std::string& gguf_name);

// The RoPE layout of a GGUF file of this general.architecture ("llama", "qwen2", ...); throws
// for an architecture the engine does not run.
RopeLayout gguf_rope_layout(const std::string& architecture);

}  // namespace fleet
