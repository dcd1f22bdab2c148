#pragma once
// The last stage's end of a step: sample the next token from the logits, record it in Redis,
// publish it to the results topic, and either loop it back to stage 0 as the next decode step
// or finish the request (done event, Redis status, release message down the pipeline).
//
// Exactly one event per token index: this worker samples each generation index once (a
// duplicate or replayed step of an index already out is dropped). The order is Redis first,
// then the results topic, then the next step, and the input offsets are committed only after
// delivery, so after a crash only the LAST token a request had in Redis can be missing from the
// results topic (or its done event, once finished). A worker that takes a request over (its
// state rebuilt from Redis with tokens already out) checks the results topic for exactly those
// events and publishes whichever is missing, once.
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "generate/token_stream.h"
#include "grammar/grammar_matcher.h"
#include "contracts/result_events.h"
#include "sampling/logit_adjust.h"
#include "sampling/sampler.h"
#include "stage/stage_context.h"

namespace fleet {

class GenerationTail {
 public:
  struct Sampled {
    const ActivationMsg* step;
    std::span<const float> logits;
  };
  explicit GenerationTail(StageContext& ctx);
  // The steps of one batch that asked for a token, with their logits.
  void on_batch(const std::vector<Sampled>& batch);
  // Forgets the request's sampling state (finished, or its partition moved away).
  void forget(const std::string& id) { active_.erase(id); }
  // Forgets every request's state (after a failed batch: rebuilt from Redis, checked as taken over).
  void forget_all();
  // Ends the request with a done event, finish_reason "cancelled", unless it already ended.
  void cancel(const std::string& id);
  size_t active_requests() const { return active_.size(); }
  uint64_t takeovers() const { return takeovers_; }
  uint64_t republished() const { return republished_; }

 private:
  struct Active {  // per-request sampling state, rebuilt from Redis on first use
    RequestRecord record;  // as loaded (tokens so far)
    SamplingParams sampling;
    int64_t first_token_us = 0;
    int64_t last_token_us = 0;     // when its last token was published here (time per output token)
    std::unique_ptr<TokenStream> stream;
    TokenStream::Pushed last;      // what the last token pushed gave (its event's text)
    bool taken_over = false;       // rebuilt with tokens out: resend the step after the last one once
    std::vector<std::string> replayed_texts;  // rebuilt with tokens out: each one's event text (republishing)
    std::unique_ptr<GrammarMatcher> grammar;  // response_format's constraint, advanced past its tokens
  };
  // The request's response_format as a matcher advanced past `generated` (nullptr: none).
  std::unique_ptr<GrammarMatcher> grammar_for(const RequestParams& params, const std::vector<int32_t>& generated);
  // nullptr when the request is gone (error sent) or finished. A request not held here is checked
  // against the results topic (to_verify) when it has tokens out, has ended, or is `recovering`
  // (a replay's step: it may have ended before its first token, an end Redis can lose).
  Active* lookup(const std::string& id, std::set<std::string>& to_verify, bool recovering = false);
  void verify_taken_over(const std::set<std::string>& ids);
  // A token chosen for a request, not yet stored in Redis nor published.
  struct Chosen {
    Active* active;
    int index = 0, next_pos = 0;
    int32_t token = 0;
    std::optional<TokenLogprobValues> logprobs;
    int64_t recovery_started_us = 0;  // the step ended a replay (ActivationMsg::recovery_started_us)
  };
  // Samples the step's token and pushes it into the request's text stream (nullopt: nothing to
  // publish: a duplicate step, or the request ended here).
  std::optional<Chosen> choose(Active& a, const ActivationMsg& step, std::span<const float> logits);
  // After the token is in Redis: its event, then the end of the request or its next step.
  void publish(Chosen& c);
  bool past_deadline(const Active& a) const;
  void mark_finished(const std::string& id);  // ended here or checked: later steps of it are dropped
  // Queues the request's next decode step; on_batch sends the batch's steps to stage 0 as peers.
  void send_next_step(const Active& a, int32_t token, int index, int next_pos);
  // The token event's logprob fields: the values with each token's text.
  TokenLogprobs event_logprobs(int32_t token, const TokenLogprobValues& values) const;
  // The output read as calls to the request's tools (nullopt: none, or tools not in use); after
  // `reason` "length", the complete calls before the cut.
  std::optional<ToolCallsOutput> tool_calls_of(const Active& a, const std::string& reason) const;
  // Ends the request; a "stop" whose output is calls ends as "tool_calls".
  void finish(Active& a, const std::string& reason);
  void publish_done(Active& a, const std::string& reason, const std::optional<ToolCallsOutput>& calls);

  StageContext& ctx_;
  std::vector<int32_t> stop_tokens_;
  std::map<std::string, std::unique_ptr<Active>> active_;
  std::set<std::string> verified_finished_;  // finished here, or checked after a takeover
  uint64_t takeovers_ = 0, republished_ = 0;
  std::vector<ActivationMsg> next_steps_;  // this batch's decode steps for stage 0
  std::unique_ptr<GrammarVocabulary> grammar_vocab_;  // built at the first request with a response_format
  std::map<std::string, std::string> grammars_;       // response_format (JSON text) -> GBNF, a bounded cache
};

}  // namespace fleet
