#pragma once
// What happens to a row of logits between the model's head and the sampler's draw, shared by
// the one-process loop (generate()) and the fleet's last stage (GenerationTail) so that both
// pick the same token:
//   1. OpenAI's frequency / presence penalties over the tokens the request generated so far,
//      then its logit_bias (each computed in double, rounded once);
//   2. the draw (sample_token: seeded by (seed, index));
//   3. optionally, the sampled token's log-probability and the most likely alternatives.
// Every step depends only on the row itself and the request's own generated tokens, in a
// fixed operation order: deterministic and batch-invariant (a replayed step gets the same
// token and the same numbers).
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "sampling/sampler.h"

namespace fleet {

// logits[t] -= frequency * count(t) + presence * (count(t) > 0), for each distinct t in
// `generated` (ids outside the row are ignored). The adjustment is computed in double and
// rounded once per token.
void apply_penalties(std::span<float> logits, std::span<const int32_t> generated, double frequency, double presence);

struct TokenLogprobValues {
  double sampled = 0;                             // log p(sampled)
  std::vector<std::pair<int32_t, double>> top;    // (id, log p), most likely first (ties: lower id)
};

// log-softmax of the row at temperature 1 (the model's distribution), in double, summed in id
// order; `top_n` (0..) most likely alternatives.
TokenLogprobValues token_logprobs(std::span<const float> logits, int32_t sampled, int top_n);

struct TokenChoice {
  int32_t token = 0;
  std::optional<TokenLogprobValues> logprobs;  // set when asked for
};

// Penalties and logit_bias (when params has any), then sample_token at `index`; logprobs of the adjusted row
// when top_logprobs >= 0 (-1: none).
TokenChoice choose_token(std::span<const float> logits, const SamplingParams& params,
                         std::span<const int32_t> generated, uint64_t index, int top_logprobs = -1);

}  // namespace fleet
