#pragma once
// Logits at every position of `tokens`, run through a whole-model engine as one prefill chunk.
#include <cstdint>
#include <vector>

#include "engine/stage_engine.h"

namespace fleet::test {

inline std::vector<float> prefill_logits(StageEngine& e, const std::vector<int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size()), D = e.config().dim, V = e.config().vocab_size;
  std::vector<float> hidden(static_cast<size_t>(n) * D), logits(static_cast<size_t>(n) * V);
  e.embed(tokens, hidden.data());
  auto cache = e.new_cache();
  SeqChunk ch{cache.get(), 0, n};
  e.forward_layers({&ch, 1}, hidden.data());
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  e.head(hidden.data(), rows, logits.data());
  return logits;
}

}  // namespace fleet::test
