#pragma once
// Many requests in one process with continuous batching: every step runs one forward pass over
// a batch holding the next prompt chunk or the next decode token of each request in flight;
// a request that ends leaves the batch and the next queued one joins. The in-process baseline
// for the fleet's throughput (`fleet generate --parallel N`, bench/fleet-throughput): the same
// engine, kernels and sampling as generate(), so each request's text equals generate()'s.
#include <cstdint>
#include <vector>

#include "generate/generate.h"

namespace fleet {

struct BatchedGenerateOptions {
  int parallel = 1;             // requests in flight at once
  int max_batch_tokens = 512;   // rows per forward pass (a prompt chunk longer than this runs alone)
};

struct BatchedGenerateResult {
  std::vector<GenerateResult> results;  // one per prompt, in order (prefill/decode_seconds: that request's span)
  double seconds = 0;                   // wall time of all steps
  int64_t steps = 0;                    // forward passes
  int64_t generated = 0;                // tokens generated, all requests
  // Steps whose rows were all decode tokens: their time and tokens (the figure comparable with
  // fleet_bench_engine --test batchN, llama-batched-bench's S_TG).
  double decode_step_seconds = 0;
  int64_t decode_step_tokens = 0;
};

// Requests run in prompt order; params.sampling.seed is offset by the prompt's index, so copies
// of one prompt sampled at temperature > 0 differ (greedy copies are identical).
BatchedGenerateResult generate_batched(StageEngine& engine, const Tokenizer& tok,
                                       const std::vector<std::vector<int32_t>>& prompts, const GenerateParams& params,
                                       const BatchedGenerateOptions& options);

}  // namespace fleet
