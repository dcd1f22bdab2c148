#pragma once
// Text generation in one process: prefill the prompt in chunks, then decode one token at a
// time, sampling with the request's parameters, until a stop token, a stop string or
// max_tokens. It calls the same separable steps (embed, forward_layers, head, sample) that
// the stage workers run, so its output is the reference the fleet is tested against.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/stage_engine.h"
#include "sampling/logit_adjust.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace fleet {

struct GenerateParams {
  int max_tokens = 256;
  SamplingParams sampling;
  std::vector<std::string> stop;       // stop strings (not included in the text)
  std::vector<int32_t> stop_token_ids; // empty: the model's defaults (see default_stop_tokens)
  int prefill_chunk = 256;             // prompt tokens per forward call
  // >= 0: record each generated token's logprob and this many alternatives (as the fleet's
  // token events carry them); -1: none. Penalties are in `sampling`.
  int top_logprobs = -1;
  // A grammar the output must follow (GBNF from grammar_for_response_format; "": none), applied
  // to the penalized logits before the draw, as the fleet's last stage does.
  std::string grammar;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, stop token excluded
  std::vector<TokenLogprobValues> logprobs;  // one per entry of tokens when params.top_logprobs >= 0
  std::string text;
  std::string finish_reason;    // "stop" or "length"
  int prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// EOS, the end-of-turn token (Tokenizer::eot_id, e.g. <|eot_id|>), and for llama2.c checkpoints
// BOS too (llama2.c stops when BOS is sampled).
std::vector<int32_t> default_stop_tokens(const ModelConfig& config, const Tokenizer& tok);

// The tokenizer that belongs to a model: the file itself for a GGUF file; its directory for
// Hugging Face models; tokenizer.bin, or the only tok*.bin, beside a llama2.c checkpoint.
// Throws when there is none.
std::string default_tokenizer_path(const std::string& model_path);

// Encodes a prompt: BOS first when the model wants one (Tokenizer::add_bos_by_default: always
// for llama2.c, never for SmolLM2), then the text's tokens.
std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text);

// engine must hold the whole model ([0, n_layers)). on_text receives text as it becomes final.
GenerateResult generate(StageEngine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateParams& params,
                        const std::function<void(const std::string&)>& on_text = nullptr);

}  // namespace fleet
