#pragma once
// fleet generate's result for a stories260K prompt: the whole model in this process, the
// reference every fleet test compares with. Computed once per (prompt, parameters).
#include <cstdint>
#include <string>
#include <vector>

#include "generate/generate.h"

namespace fleet::test {

// Twenty story openings, the prompts of the fleet tests' workloads.
const std::vector<std::string>& story_prompts();

// Greedy when temperature is 0; otherwise seeded sampling with top_p 1 and top_k 0 (the
// prompts topic's defaults).
const GenerateResult& stories_reference(const std::string& prompt, int max_tokens, float temperature = 0,
                                        uint64_t seed = 0);

}  // namespace fleet::test
