#pragma once
// Next-token selection: greedy, temperature, top-k, top-p. The random draw for the token at
// generation index i depends only on (seed, i), never on earlier draws, so any step can be
// recomputed identically (replay after a worker failure, at-least-once delivery).
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace fleet {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // nucleus: smallest set of tokens whose probability reaches top_p
  int top_k = 0;             // 0: no limit
  uint64_t seed = 0;
  // OpenAI's penalties over the request's generated tokens (sampling/logit_adjust.h's
  // choose_token applies them; sample_token itself ignores them). 0: off.
  double frequency_penalty = 0;
  double presence_penalty = 0;
  // OpenAI's logit_bias: (token id, bias) added after the penalties (choose_token). Empty: none.
  std::vector<std::pair<int32_t, double>> logit_bias;
};

// A uniform double in [0, 1) from (seed, index): splitmix64 of a counter.
double uniform_from(uint64_t seed, uint64_t index);

int32_t sample_token(std::span<const float> logits, const SamplingParams& params, uint64_t index);

}  // namespace fleet
