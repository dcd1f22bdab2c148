#pragma once
// Grammar-constrained sampling: which tokens may come next so that the output stays a prefix of
// the grammar's language (llama.cpp's GBNF pushdown matcher, third_party/llama-grammar).
//
// GrammarVocabulary: the vocabulary as the grammar sees it, built once per tokenizer: each
// token's code points as it would appear in the output (as the first text of the output, and
// later), and which tokens end a generation. Control, unknown and added tokens never match text.
//
// GrammarMatcher: one request's position in the grammar. Its state is a function of the grammar
// and the tokens accepted so far, so a worker that takes a request over rebuilds it from the
// request's response_format and its tokens in Redis, and a batch masks each row from that row's
// state alone (batch-invariant).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

struct llama_grammar;
struct llama_grammar_candidate;

namespace fleet {

class Tokenizer;
struct SamplingParams;

// How many of the highest allowed tokens decide a draw with these parameters: 1 when greedy,
// top_k when set; 0 (every allowed token: the full mask) when the draw or the reported logprobs
// need the whole masked distribution, or when penalties or logit_bias change the order after the mask.
int tokens_deciding_the_draw(const SamplingParams& p, bool logprobs);

class GrammarVocabulary {
 public:
  // stop_tokens: the tokens that end a generation; allowed only where the grammar is complete.
  GrammarVocabulary(const Tokenizer& tok, std::vector<int32_t> stop_tokens);
  ~GrammarVocabulary();
  GrammarVocabulary(const GrammarVocabulary&) = delete;
  GrammarVocabulary& operator=(const GrammarVocabulary&) = delete;

  size_t size() const { return size_; }

 private:
  friend class GrammarMatcher;
  struct Pieces;  // code points of every text token, and the candidate lists pointing into them
  size_t size_;
  std::vector<int32_t> stop_tokens_;
  std::unique_ptr<Pieces> first_, later_;  // as the output's first text / after some text
};

class GrammarMatcher {
 public:
  // gbnf: a grammar with root rule "root" (grammar_for_response_format). Throws
  // std::invalid_argument when it does not parse.
  GrammarMatcher(const std::string& gbnf, const GrammarVocabulary& vocab);
  ~GrammarMatcher();
  GrammarMatcher(const GrammarMatcher&) = delete;
  GrammarMatcher& operator=(const GrammarMatcher&) = delete;

  // Sets logits[t] = -inf for every token the grammar does not allow next; returns how many it
  // allows (0: a dead end; the caller ends the request).
  size_t mask(std::span<float> logits) const;
  // The row with every token the grammar does not allow next at -inf, copied into `scratch`;
  // throws std::runtime_error when it allows none (a dead end). With `best` > 0 (at most 16) the
  // highest tokens are checked first (ties: lower id first, as the sampler orders them); when the
  // `best` highest allowed ones are among the first 16, only they are kept: the same draw as the
  // full mask when the draw only looks at that many (greedy: 1; top_k: k; see
  // tokens_deciding_the_draw), usually after one check instead of the whole vocabulary.
  // Otherwise the full mask.
  std::span<const float> masked(std::span<const float> logits, std::vector<float>& scratch, int best = 0) const;
  // Whether `token` may come next (one candidate: cheap).
  bool allows(int32_t token) const;
  // Advances past `token`; throws std::runtime_error when the grammar does not allow it. A stop
  // token leaves the state as it is.
  void accept(int32_t token);
  // Whether the output so far is a complete sentence of the grammar (a stop token is allowed).
  bool complete() const;

 private:
  const GrammarVocabulary& vocab_;
  std::unique_ptr<llama_grammar, void (*)(llama_grammar*)> grammar_;
  bool seen_text_ = false;  // the output has text (later pieces keep a leading space)
};

}  // namespace fleet
