#include "grammar/grammar_matcher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "llama-grammar.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace fleet {

// Every text token's piece, decoded once: the candidate list the matcher filters at each step.
struct GrammarVocabulary::Pieces {
  std::vector<std::string> bytes;                       // by token id ("" for tokens that never match)
  std::vector<std::vector<uint32_t>> code_points;       // 0-terminated, decoded from an empty UTF-8 state
  std::vector<llama_partial_utf8> partial;              // the UTF-8 state after the piece
  llama_grammar_candidates candidates;                  // index = token id, pointing into code_points
  std::vector<int32_t> position;                        // token id -> index in candidates (-1: none)
};

GrammarVocabulary::GrammarVocabulary(const Tokenizer& tok, std::vector<int32_t> stop_tokens)
    : size_(tok.vocab_size()), stop_tokens_(std::move(stop_tokens)) {
  std::sort(stop_tokens_.begin(), stop_tokens_.end());
  for (bool first : {true, false}) {
    auto p = std::make_unique<Pieces>();
    p->bytes.resize(size_);
    p->code_points.resize(size_);
    p->partial.resize(size_);
    p->position.assign(size_, -1);
    for (size_t i = 0; i < size_; ++i) {
      const auto id = static_cast<int32_t>(i);
      if (std::binary_search(stop_tokens_.begin(), stop_tokens_.end(), id) || !tok.is_ordinary(id)) continue;
      std::string b(tok.token_bytes(id, first));
      if (b.empty() || b[0] == 0) continue;  // matches nothing (llama.cpp rejects these too)
      auto [cps, partial] = decode_utf8(b, {0, 0});
      p->bytes[i] = std::move(b);
      p->code_points[i] = std::move(cps);
      p->partial[i] = partial;
    }
    for (size_t i = 0; i < size_; ++i) {
      if (p->code_points[i].empty()) continue;
      p->position[i] = static_cast<int32_t>(p->candidates.size());
      p->candidates.push_back({i, p->code_points[i].data(), p->partial[i], static_cast<llama_token>(i)});
    }
    (first ? first_ : later_) = std::move(p);
  }
}

GrammarVocabulary::~GrammarVocabulary() = default;

GrammarMatcher::GrammarMatcher(const std::string& gbnf, const GrammarVocabulary& vocab)
    : vocab_(vocab),
      grammar_(llama_grammar_init_impl(nullptr, gbnf.c_str(), "root", false, nullptr, 0, nullptr, 0),
               llama_grammar_free_impl) {
  if (!grammar_) throw std::invalid_argument("grammar does not parse (or has no rule 'root')");
}

GrammarMatcher::~GrammarMatcher() = default;

namespace {

// The candidates no stack of the grammar accepts (llama.cpp's llama_grammar_reject_candidates).
llama_grammar_candidates rejected_by_all(const llama_grammar& g, const llama_grammar_candidates& candidates) {
  if (candidates.empty()) return {};
  if (g.stacks.empty()) return candidates;
  auto rejects = llama_grammar_reject_candidates_for_stack(g.rules, g.stacks.front(), candidates);
  for (size_t i = 1; i < g.stacks.size() && !rejects.empty(); ++i)
    rejects = llama_grammar_reject_candidates_for_stack(g.rules, g.stacks[i], rejects);
  return rejects;
}

}  // namespace

bool GrammarMatcher::complete() const {
  return std::any_of(grammar_->stacks.begin(), grammar_->stacks.end(), [](const auto& s) { return s.empty(); });
}

size_t GrammarMatcher::mask(std::span<float> logits) const {
  const auto& p = seen_text_ ? *vocab_.later_ : *vocab_.first_;
  const llama_partial_utf8 carried = grammar_->partial_utf8;
  // Mid-character (a byte token left a UTF-8 sequence open): decode every piece from that state.
  std::vector<std::vector<uint32_t>> redecoded;
  llama_grammar_candidates recarried;
  const llama_grammar_candidates* candidates = &p.candidates;
  if (carried.n_remain != 0) {
    redecoded.reserve(p.candidates.size());
    recarried.reserve(p.candidates.size());
    for (const auto& c : p.candidates) {
      auto [cps, partial] = decode_utf8(p.bytes[c.index], carried);
      redecoded.push_back(std::move(cps));
      recarried.push_back({c.index, redecoded.back().data(), partial, c.id});
    }
    candidates = &recarried;
  }
  std::vector<uint8_t> allowed(logits.size(), 0);
  for (const auto& c : *candidates)
    if (c.index < allowed.size()) allowed[c.index] = 1;
  for (const auto& r : rejected_by_all(*grammar_, *candidates))
    if (r.index < allowed.size()) allowed[r.index] = 0;
  if (complete())
    for (int32_t t : vocab_.stop_tokens_)
      if (t >= 0 && static_cast<size_t>(t) < allowed.size()) allowed[static_cast<size_t>(t)] = 1;
  size_t n = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (allowed[i]) ++n;
    else logits[i] = -std::numeric_limits<float>::infinity();
  }
  return n;
}

int tokens_deciding_the_draw(const SamplingParams& p, bool logprobs) {
  if (logprobs || p.frequency_penalty != 0 || p.presence_penalty != 0 || !p.logit_bias.empty()) return 0;
  if (p.temperature == 0 || p.top_k == 1) return 1;
  return p.top_k;
}

std::span<const float> GrammarMatcher::masked(std::span<const float> logits, std::vector<float>& scratch, int best) const {
  // The highest tokens first: a model mostly prefers a token the grammar allows, so one check
  // usually decides. When the first kLazyChecks do not hold `best` allowed ones (a model that
  // fights the grammar), the full mask is cheaper than checking on one at a time.
  constexpr size_t kLazyChecks = 16;
  const size_t n = logits.size();
  std::vector<int32_t> kept;
  if (best > 0 && static_cast<size_t>(best) <= kLazyChecks) {
    const auto top = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (best == 1 && allows(top)) {
      kept.push_back(top);
    } else {
      auto higher = [&](int32_t a, int32_t b) {
        return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
               (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
      };
      std::vector<int32_t> order(n);
      for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
      const size_t window = std::min(n, kLazyChecks);
      std::partial_sort(order.begin(), order.begin() + static_cast<long>(window), order.end(), higher);
      for (size_t i = 0; i < window && kept.size() < static_cast<size_t>(best); ++i)
        if (allows(order[i])) kept.push_back(order[i]);
      if (kept.size() < static_cast<size_t>(best)) kept.clear();  // not decided by the window
    }
  }
  if (kept.empty()) {
    scratch.assign(logits.begin(), logits.end());
    if (mask(scratch) == 0) throw std::runtime_error("the response_format grammar allows no token here");
    return scratch;
  }
  scratch.assign(n, -std::numeric_limits<float>::infinity());
  for (int32_t t : kept) scratch[static_cast<size_t>(t)] = logits[static_cast<size_t>(t)];
  return scratch;
}

bool GrammarMatcher::allows(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= vocab_.size_) return false;
  if (std::binary_search(vocab_.stop_tokens_.begin(), vocab_.stop_tokens_.end(), token)) return complete();
  const auto& p = seen_text_ ? *vocab_.later_ : *vocab_.first_;
  const int32_t at = p.position[static_cast<size_t>(token)];
  if (at < 0) return false;
  const llama_partial_utf8 carried = grammar_->partial_utf8;
  llama_grammar_candidates one{p.candidates[static_cast<size_t>(at)]};
  std::pair<std::vector<uint32_t>, llama_partial_utf8> decoded;
  if (carried.n_remain != 0) {
    decoded = decode_utf8(p.bytes[static_cast<size_t>(token)], carried);
    one[0].code_points = decoded.first.data();
    one[0].partial_utf8 = decoded.second;
  }
  return rejected_by_all(*grammar_, one).empty();
}

void GrammarMatcher::accept(int32_t token) {
  if (!allows(token)) throw std::runtime_error("token " + std::to_string(token) + " does not fit the grammar here");
  if (std::binary_search(vocab_.stop_tokens_.begin(), vocab_.stop_tokens_.end(), token)) return;
  const auto& p = seen_text_ ? *vocab_.later_ : *vocab_.first_;
  llama_grammar_accept_token(*grammar_, token, p.bytes[static_cast<size_t>(token)]);
  seen_text_ = true;
}

}  // namespace fleet
