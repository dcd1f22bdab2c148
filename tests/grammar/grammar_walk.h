#pragma once
// Test helper: a random walk under a grammar's mask on a real vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "grammar/grammar_matcher.h"
#include "tokenizer/tokenizer.h"

namespace fleet {

// A stand-in for a model: seeded random logits, leaning towards closing strings, objects and
// arrays and towards ending, so walks finish within a few dozen tokens.
struct Walk {
  std::vector<int32_t> tokens;
  bool ended = false;
};

inline Walk walk(const Tokenizer& tok, const GrammarVocabulary& vocab, const std::vector<int32_t>& stops,
          const std::string& gbnf, uint32_t seed, int max_steps = 300) {
  GrammarMatcher m(gbnf, vocab);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> logits(tok.vocab_size()), scratch;
  Walk w;
  for (int step = 0; step < max_steps; ++step) {
    for (size_t t = 0; t < logits.size(); ++t) {
      logits[t] = u(rng);
      const std::string_view b = tok.is_ordinary(static_cast<int32_t>(t)) ? tok.token_bytes(static_cast<int32_t>(t), false)
                                                                          : std::string_view();
      if (b.find_first_of("\"}]") != std::string_view::npos) logits[t] += 3.0f;
    }
    for (int32_t s : stops) logits[static_cast<size_t>(s)] += 6.0f;
    std::span<const float> row = m.masked(logits, scratch);
    const auto best = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    EXPECT_TRUE(m.allows(best));
    m.accept(best);
    if (std::find(stops.begin(), stops.end(), best) != stops.end()) {
      w.ended = true;
      EXPECT_TRUE(m.complete());
      break;
    }
    w.tokens.push_back(best);
  }
  return w;
}

}  // namespace fleet
