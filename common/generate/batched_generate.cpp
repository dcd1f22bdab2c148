#include "generate/batched_generate.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>

#include "generate/token_stream.h"
#include "grammar/grammar_matcher.h"

namespace fleet {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One request in flight: its cache, how far its prompt has gone through, the token to feed next.
struct Sequence {
  size_t index = 0;  // into prompts / results
  std::unique_ptr<KVCache> cache;
  std::unique_ptr<TokenStream> stream;
  int pos = 0;              // positions computed so far
  int32_t next_token = -1;  // decode: the token sampled last, fed at `pos`
  SamplingParams sampling;
  std::unique_ptr<GrammarMatcher> grammar;  // params.grammar's state for this sequence (none: no grammar)
  Clock::time_point started, first_token;
};

}  // namespace

BatchedGenerateResult generate_batched(StageEngine& engine, const Tokenizer& tok,
                                       const std::vector<std::vector<int32_t>>& prompts, const GenerateParams& params,
                                       const BatchedGenerateOptions& options) {
  const ModelConfig& c = engine.config();
  if (engine.layer_begin() != 0 || engine.layer_end() != c.n_layers)
    throw std::runtime_error("generate needs the whole model in one engine");
  if (options.parallel < 1) throw std::runtime_error("parallel must be >= 1");
  if (params.max_tokens < 0) throw std::runtime_error("max_tokens must be >= 0");
  const std::vector<int32_t> stops =
      params.stop_token_ids.empty() ? default_stop_tokens(c, tok) : params.stop_token_ids;
  // A response format: one vocabulary view for all sequences, a matcher each.
  std::unique_ptr<GrammarVocabulary> grammar_vocab;
  if (!params.grammar.empty()) grammar_vocab = std::make_unique<GrammarVocabulary>(tok, stops);
  std::vector<float> masked;
  const int chunk = std::max(1, params.prefill_chunk);
  const int max_rows = std::max(1, options.max_batch_tokens);
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw std::runtime_error("prompt " + std::to_string(i + 1) + " is empty (at least BOS is needed)");
    if (static_cast<int>(prompts[i].size()) > c.max_seq_len)
      throw std::runtime_error("prompt " + std::to_string(i + 1) + " of " + std::to_string(prompts[i].size()) +
                               " tokens exceeds the context length " + std::to_string(c.max_seq_len));
  }

  BatchedGenerateResult out;
  out.results.resize(prompts.size());
  std::deque<size_t> queued;
  for (size_t i = 0; i < prompts.size(); ++i) queued.push_back(i);
  std::vector<Sequence> active;
  std::vector<float> hidden, logits;
  const auto t_start = Clock::now();

  // Ends a sequence's generation: flushes its text, records its timings.
  auto finish = [&](Sequence& s, const char* reason) {
    GenerateResult& r = out.results[s.index];
    r.text += s.stream->flush();
    r.finish_reason = reason;
    const auto now = Clock::now();
    r.prefill_seconds = seconds_between(s.started, s.first_token);
    r.decode_seconds = seconds_between(s.first_token, now);
    out.generated += static_cast<int64_t>(r.tokens.size());
  };

  while (!queued.empty() || !active.empty()) {
    while (static_cast<int>(active.size()) < options.parallel && !queued.empty()) {
      Sequence s;
      s.index = queued.front();
      queued.pop_front();
      s.cache = engine.new_cache();
      s.stream = std::make_unique<TokenStream>(tok, stops, params.stop, params.max_tokens);
      s.sampling = params.sampling;
      s.sampling.seed = params.sampling.seed + s.index;
      if (grammar_vocab) s.grammar = std::make_unique<GrammarMatcher>(params.grammar, *grammar_vocab);
      s.started = Clock::now();
      out.results[s.index].prompt_tokens = static_cast<int>(prompts[s.index].size());
      active.push_back(std::move(s));
    }
    // This step's rows: per sequence in order, its next prompt chunk or its decode token, until
    // max_rows (a sequence whose chunk does not fit waits for the next step; the first always runs).
    std::vector<int32_t> ids;
    std::vector<SeqChunk> chunks;
    std::vector<size_t> members;  // indices into active
    bool decode_only = true;
    for (size_t a = 0; a < active.size(); ++a) {
      Sequence& s = active[a];
      const std::vector<int32_t>& prompt = prompts[s.index];
      const bool prefill = s.pos < static_cast<int>(prompt.size());
      const int n = prefill ? std::min(chunk, static_cast<int>(prompt.size()) - s.pos) : 1;
      if (!chunks.empty() && static_cast<int>(ids.size()) + n > max_rows) continue;
      if (prefill) ids.insert(ids.end(), prompt.begin() + s.pos, prompt.begin() + s.pos + n);
      else ids.push_back(s.next_token);
      decode_only = decode_only && !prefill;
      chunks.push_back({s.cache.get(), s.pos, n});
      members.push_back(a);
    }
    const auto t0 = Clock::now();
    hidden.resize(ids.size() * static_cast<size_t>(c.dim));
    engine.embed(ids, hidden.data());
    engine.forward_layers(chunks, hidden.data());
    // Logits for the sequences whose step ends their prompt or is a decode step.
    std::vector<int64_t> rows;
    std::vector<size_t> sampled;
    int64_t row = 0;
    for (size_t m = 0; m < members.size(); ++m) {
      Sequence& s = active[members[m]];
      row += chunks[m].n_tokens;
      s.pos += chunks[m].n_tokens;
      if (s.pos >= static_cast<int>(prompts[s.index].size())) {
        rows.push_back(row - 1);
        sampled.push_back(members[m]);
      }
    }
    const size_t V = static_cast<size_t>(c.vocab_size);
    logits.resize(rows.size() * V);
    if (!rows.empty()) engine.head(hidden.data(), rows, logits.data());
    ++out.steps;
    if (decode_only) {
      out.decode_step_seconds += seconds_between(t0, Clock::now());
      out.decode_step_tokens += static_cast<int64_t>(ids.size());
    }
    std::vector<bool> done(active.size(), false);
    for (size_t k = 0; k < sampled.size(); ++k) {
      Sequence& s = active[sampled[k]];
      GenerateResult& r = out.results[s.index];
      if (r.tokens.empty() && s.stream->generated() == 0) s.first_token = Clock::now();
      const std::span<const float> row{logits.data() + k * V, V};
      const int deciding = tokens_deciding_the_draw(s.sampling, params.top_logprobs >= 0);
      TokenChoice choice = choose_token(s.grammar ? s.grammar->masked(row, masked, deciding) : row, s.sampling, r.tokens,
                                        static_cast<uint64_t>(s.stream->generated()), params.top_logprobs);
      if (s.grammar) s.grammar->accept(choice.token);
      const TokenStream::Pushed p = s.stream->push(choice.token);
      if (p.accepted) {
        r.tokens.push_back(choice.token);
        if (choice.logprobs) r.logprobs.push_back(std::move(*choice.logprobs));
        r.text += p.text;
      }
      if (p.finished) {
        finish(s, p.finish_reason);
        done[sampled[k]] = true;
      } else if (s.pos >= s.cache->max_len()) {
        finish(s, "length");  // context full
        done[sampled[k]] = true;
      } else {
        s.next_token = choice.token;
      }
    }
    for (size_t a = active.size(); a-- > 0;)
      if (done[a]) active.erase(active.begin() + static_cast<long>(a));
  }
  out.seconds = seconds_between(t_start, Clock::now());
  return out;
}

}  // namespace fleet
