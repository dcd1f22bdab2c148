#include "stage/generation_tail.h"

#include <algorithm>
#include <optional>

#include "contracts/result_events.h"
#include "generate/generate.h"
#include "grammar/response_format.h"
#include "grammar/tool_call_grammar.h"
#include "stage/worker_identity.h"
#include "tools/tool_calls.h"

namespace fleet {

namespace {
// Clock skew allowed between the workers that wrote a request's events and the one scanning
// for them (wall clocks of the same deployment are assumed to agree within it).
constexpr int64_t kPublishedSlackMs = 10000;
}  // namespace

GenerationTail::GenerationTail(StageContext& ctx) : ctx_(ctx) {
  stop_tokens_ = default_stop_tokens(ctx_.engine->config(), *ctx_.tokenizer);
}

GenerationTail::Active* GenerationTail::lookup(const std::string& id, std::set<std::string>& to_verify,
                                               bool recovering) {
  auto it = active_.find(id);
  if (it != active_.end()) return it->second.get();
  std::optional<RequestRecord> rec = ctx_.requests->load(id);
  if (!rec) {
    ctx_.fail_request(id, {error_code::kKvCacheMissing, "request " + id + " has no state in Redis (expired or deleted)"});
    return nullptr;
  }
  const bool finished = rec->status == RequestStatus::Done || rec->status == RequestStatus::Error;
  if (finished && verified_finished_.count(id)) return nullptr;  // a late duplicate step
  auto a = std::make_unique<Active>();
  const RequestParams& p = rec->params;
  a->sampling.temperature = static_cast<float>(p.temperature);
  a->sampling.top_p = static_cast<float>(p.top_p);
  a->sampling.top_k = p.top_k;
  a->sampling.seed = p.seed.value_or(0);
  a->sampling.frequency_penalty = p.frequency_penalty;
  a->sampling.presence_penalty = p.presence_penalty;
  a->sampling.logit_bias.assign(p.logit_bias.begin(), p.logit_bias.end());
  a->stream = std::make_unique<TokenStream>(*ctx_.tokenizer, stop_tokens_, p.stop, p.max_tokens);
  if (!finished) a->grammar = grammar_for(p, rec->generated);  // a finished request samples nothing more
  for (int32_t t : rec->generated) {  // tokens out before: replayed
    a->last = a->stream->push(t);
    a->replayed_texts.push_back(a->last.text);
  }
  if (!rec->generated.empty() || finished || recovering) {
    to_verify.insert(id);
    a->taken_over = !finished;
    ++takeovers_;
  }
  a->record = std::move(*rec);
  return active_.emplace(id, std::move(a)).first->second.get();
}

std::unique_ptr<GrammarMatcher> GenerationTail::grammar_for(const RequestParams& params,
                                                            const std::vector<int32_t>& generated) {
  const bool forced_call = params.tools_enabled() && tool_call_forced(params.tools, params.tool_choice);
  if (params.response_format.is_null() && !forced_call) return nullptr;
  const std::string key = forced_call ? nlohmann::json::array({params.tools, params.tool_choice, params.parallel_tool_calls}).dump()
                                      : params.response_format.dump();
  auto it = grammars_.find(key);
  if (it == grammars_.end()) {
    if (grammars_.size() >= 256) grammars_.clear();  // a bound; a miss costs one compilation
    it = grammars_.emplace(key, forced_call ? grammar_for_tool_choice(params.tools, params.tool_choice,
                                                                      params.parallel_tool_calls, ctx_.tool_call_format())
                                            : grammar_for_response_format(params.response_format)).first;
  }
  if (it->second.empty()) return nullptr;  // {"type": "text"}
  if (!grammar_vocab_) grammar_vocab_ = std::make_unique<GrammarVocabulary>(*ctx_.tokenizer, stop_tokens_);
  auto m = std::make_unique<GrammarMatcher>(it->second, *grammar_vocab_);
  for (int32_t t : generated) m->accept(t);  // the state after the tokens out before (a takeover)
  return m;
}

void GenerationTail::verify_taken_over(const std::set<std::string>& ids) {
  int64_t since = INT64_MAX;
  // From the request's admission: an event lost in flight may be older than any later one,
  // however long the request stalled since (a window before its last update missed them: two
  // requests of a chaos run lost an index each after replays that stalled them for 10+ s).
  for (const std::string& id : ids) since = std::min(since, active_.at(id)->record.created_ms - kPublishedSlackMs);
  std::optional<std::map<std::string, PublishedResults>> published;
  try {
    published = ctx_.outbox->published_results(ctx_.config.results_topic(), ids, since);
  } catch (const std::exception& e) {
    // Without the check nothing is published again: a lost event is less harmful than a
    // duplicate one that a client cannot tell apart.
    ctx_.log_at(log::Level::Warn, "", "cannot read the results topic to check %zu taken-over requests: %s", ids.size(),
                e.what());
  }
  for (const std::string& id : ids) {
    Active& a = *active_.at(id);
    const PublishedResults out = published ? (*published)[id] : PublishedResults{{}, true};
    const RequestRecord& r = a.record;
    const int n = static_cast<int>(r.generated.size());
    const bool unknown = !published;
    // The previous worker does not wait for its outputs' delivery between batches, so it may
    // have died with the events of its last batches in flight: every index missing from the
    // scan (which starts at the request's admission) is published.
    for (int i = 0; i < n && !unknown; ++i) {
      if (out.token_indices.count(i)) continue;
      ctx_.outbox->produce(ctx_.config.results_topic(), id,
                           token_event(id, i, r.generated[static_cast<size_t>(i)], a.replayed_texts.at(static_cast<size_t>(i))));
      ++republished_;
      ctx_.log_at(log::Level::Info, id, "request %s taken over: token %d was not on the results topic; published it",
                  id.c_str(), i);
    }
    a.replayed_texts.clear();
    if (!unknown && out.ended && r.status != RequestStatus::Done && r.status != RequestStatus::Error) {
      // It ended, but Redis lost the end (its last second of writes, kill -9 of the machine):
      // nothing more is sampled for it (a re-drive brings such requests back here).
      ctx_.log_at(log::Level::Warn, id, "request %s: its terminal event is on the results topic but Redis had lost "
                  "its end; recorded it again", id.c_str());
      if (out.ended_by_error) ctx_.requests->set_error(id, out.ended_reason);
      else ctx_.requests->finish(id, out.ended_reason);
      ctx_.ended_undelivered.push_back(id);  // its end is out already
      mark_finished(id);
      active_.erase(id);
      continue;
    }
    if (r.status == RequestStatus::Done || r.status == RequestStatus::Error) {
      if (unknown) {  // not checked: it stays in fleet:progress, a re-drive has it checked a stall later
        active_.erase(id);
        continue;
      }
      if (!out.terminal) {
        ++republished_;
        ctx_.log_at(log::Level::Info, id,
                    "request %s taken over: its terminal event was not on the results topic; published it", id.c_str());
        if (r.status == RequestStatus::Done) {
          a.stream->flush();  // the whole text, as when it finished, before reading calls from it
          publish_done(a, r.finish_reason, tool_calls_of(a, r.finish_reason));
        } else {
          const size_t colon = r.error.find(": ");
          ContractError e{colon == std::string::npos ? error_code::kInternal : r.error.substr(0, colon),
                          colon == std::string::npos ? r.error : r.error.substr(colon + 2)};
          ctx_.outbox->produce(ctx_.config.results_topic(), id, error_event(id, e));
          ctx_.send_release(id);
        }
      }
      ctx_.ended_undelivered.push_back(id);  // its terminal event found, or published again
      mark_finished(id);
      active_.erase(id);
    } else if (a.last.finished) {  // the worker died between its last token and finishing
      finish(a, a.last.finish_reason);
    }
  }
}

void GenerationTail::mark_finished(const std::string& id) {
  if (verified_finished_.size() > 100000) verified_finished_.clear();  // a bound; a miss costs one check
  verified_finished_.insert(id);  // late duplicates of its steps need no check
}

void GenerationTail::forget_all() { active_.clear(); }

void GenerationTail::on_batch(const std::vector<Sampled>& batch) {
  next_steps_.clear();
  std::set<std::string> to_verify;
  for (const Sampled& s : batch) {
    try {
      lookup(s.step->request_id(), to_verify, s.step->recovery_started_us() > 0);
    } catch (const RedisUnavailable&) {
      throw;  // not the request's fault: the worker retries the batch
    } catch (const std::exception& e) {
      ctx_.fail_request(s.step->request_id(), {error_code::kInternal, e.what()});
    }
  }
  if (!to_verify.empty()) verify_taken_over(to_verify);
  // Tokens chosen for every request first; then their Redis writes in one round trip (Redis
  // before the events and the next steps: a replay reads the tokens from there); then events.
  std::vector<Chosen> chosen;
  for (const Sampled& s : batch) {
    auto it = active_.find(s.step->request_id());
    if (it == active_.end()) continue;  // finished, failed or gone
    try {
      if (std::optional<Chosen> c = choose(*it->second, *s.step, s.logits)) chosen.push_back(std::move(*c));
    } catch (const RedisUnavailable&) {
      throw;
    } catch (const std::exception& e) {
      ctx_.fail_request(s.step->request_id(), {error_code::kInternal, e.what()});
      active_.erase(s.step->request_id());
    }
  }
  std::vector<RequestStore::TokenAppend> appends;
  for (const Chosen& c : chosen)
    if (c.active->last.accepted) appends.push_back({c.active->record.id, c.index, c.token});
  const std::vector<std::string> problems = ctx_.requests->append_tokens_of_requests(appends);
  size_t next_append = 0;
  for (Chosen& c : chosen) {
    const std::string id = c.active->record.id;
    try {
      if (c.active->last.accepted) {
        if (const std::string& problem = problems.at(next_append++); !problem.empty()) throw RedisError(problem);
      }
      publish(c);
    } catch (const RedisUnavailable&) {
      throw;
    } catch (const std::exception& e) {
      ctx_.fail_request(id, {error_code::kInternal, e.what()});
      active_.erase(id);
    }
  }
  ctx_.send_peers_to_stage(0, next_steps_);
}

bool GenerationTail::past_deadline(const Active& a) const {
  const std::optional<double>& t = a.record.params.timeout_s;
  return t && static_cast<double>(now_ms() - a.record.created_ms) > *t * 1000.0;
}

void GenerationTail::cancel(const std::string& id) {
  // A request not held here is checked against the results topic first, tokens or not: it may
  // have ended already (a cancel sent again by a re-drive).
  std::set<std::string> to_verify;
  Active* a = lookup(id, to_verify, true);
  if (!to_verify.empty()) verify_taken_over(to_verify);
  if (!a || !active_.count(id)) {
    // Ended before: checked above (a worker that had not seen it end), or ended by this worker.
    // A stall re-drive sends such a cancel for an end not known delivered (StallRedrive).
    ctx_.log_at(log::Level::Info, id, "cancel of %s: it had already ended", id.c_str());
    if (verified_finished_.count(id)) ctx_.ended_undelivered.push_back(id);
    return;
  }
  ctx_.log_at(log::Level::Info, id, "request %s cancelled after %zu tokens", id.c_str(), a->record.generated.size());
  ctx_.metrics->request_ended("cancelled");
  ctx_.requests->finish(id, "cancelled");
  a->stream->flush();
  const RequestRecord& r = a->record;
  RequestTimings t;
  t.total_ms = static_cast<double>(now_ms() - r.created_ms);
  ctx_.outbox->produce(ctx_.config.results_topic(), id,
                       done_event(id, a->stream->text(), FinishReason::Cancelled,
                                  {static_cast<int>(r.prompt_tokens.size()), a->stream->generated()}, t));
  ctx_.ended_undelivered.push_back(id);
  active_.erase(id);
  mark_finished(id);
}

std::optional<GenerationTail::Chosen> GenerationTail::choose(Active& a, const ActivationMsg& step,
                                                             std::span<const float> logits) {
  const std::string& id = step.request_id();
  if (past_deadline(a)) {
    ctx_.fail_request(id, {error_code::kTimeout, "request " + id + " ran past its timeout_s of " +
                                                     std::to_string(*a.record.params.timeout_s) + " s"});
    mark_finished(id);
    active_.erase(id);
    return std::nullopt;
  }
  const int index = static_cast<int>(step.generation_index());
  const int n = static_cast<int>(a.record.generated.size());
  const int next_pos = step.start_pos() + step.n_tokens();
  if (index < n) {  // a duplicate, or the redelivered step whose token was out before a takeover
    // Only the step of the last token sent resends its next step (once); older duplicates
    // read before it must not cancel that.
    if (a.taken_over && index == n - 1) {
      send_next_step(a, a.record.generated.back(), index, next_pos);
      a.taken_over = false;
    }
    return std::nullopt;
  }
  if (index > n)
    throw std::runtime_error("step asks for token " + std::to_string(index) + " but Redis holds " + std::to_string(n));
  a.taken_over = false;
  // Penalties over the tokens generated so far (Redis's list, the same after a replay).
  // Then the response_format's grammar mask: logprobs are over the masked distribution.
  const RequestParams& params = a.record.params;
  std::vector<float> masked;
  std::span<const float> row = logits;
  if (a.grammar) {
    const int64_t t0 = now_us();
    row = a.grammar->masked(logits, masked, tokens_deciding_the_draw(a.sampling, params.logprobs));
    ctx_.metrics->grammar_mask.observe(static_cast<double>(now_us() - t0) / 1e6);
  }
  TokenChoice choice = choose_token(row, a.sampling, a.record.generated, static_cast<uint64_t>(index),
                                    params.logprobs ? params.top_logprobs : -1);
  if (a.grammar) a.grammar->accept(choice.token);
  a.last = a.stream->push(choice.token);
  if (a.last.accepted && index == 0) {
    a.first_token_us = now_us();
    const double since_admitted_ms =
        static_cast<double>(a.first_token_us) / 1e3 - static_cast<double>(a.record.created_ms);
    ctx_.metrics->time_to_first_token.observe(std::max(0.0, since_admitted_ms / 1e3));
    ctx_.requests->set_status(id, RequestStatus::Running);
  }
  return Chosen{&a, index, next_pos, choice.token, std::move(choice.logprobs), step.recovery_started_us()};
}

void GenerationTail::publish(Chosen& c) {
  Active& a = *c.active;
  const std::string& id = a.record.id;
  if (a.last.accepted) {  // stored in Redis by now
    a.record.generated.push_back(c.token);
    const int64_t token_us = now_us();
    if (a.last_token_us > 0)
      ctx_.metrics->time_per_output_token.observe(static_cast<double>(token_us - a.last_token_us) / 1e6);
    a.last_token_us = token_us;
    ctx_.metrics->generated_tokens.inc();
    std::optional<TokenLogprobs> lp;
    if (c.logprobs) lp = event_logprobs(c.token, *c.logprobs);
    ctx_.outbox->produce(ctx_.config.results_topic(), id,
                         token_event(id, c.index, c.token, a.last.text, lp ? &*lp : nullptr));
    if (c.recovery_started_us > 0)
      ctx_.metrics->recovery_seconds.labels({"next_token"}).observe(seconds_since_us(c.recovery_started_us));
  }
  if (a.last.finished) return finish(a, a.last.finish_reason);
  if (c.next_pos >= ctx_.engine->config().max_seq_len) return finish(a, "length");  // context full
  send_next_step(a, c.token, c.index, c.next_pos);
}

TokenLogprobs GenerationTail::event_logprobs(int32_t token, const TokenLogprobValues& values) const {
  auto text_of = [&](int32_t t) { return std::string(ctx_.tokenizer->token_bytes(t, false)); };
  TokenLogprobs lp;
  lp.sampled = {token, text_of(token), values.sampled};
  for (const auto& [t, v] : values.top) lp.top.push_back({t, text_of(t), v});
  return lp;
}

void GenerationTail::send_next_step(const Active& a, int32_t token, int index, int next_pos) {
  ActivationMsg next;
  next.set_request_id(a.record.id);
  next.set_step(static_cast<uint64_t>(next_pos));
  next.set_start_pos(next_pos);
  next.set_n_tokens(1);
  next.set_sample(true);
  next.set_generation_index(static_cast<uint32_t>(index + 1));
  set_token_ids(next, {token});
  next_steps_.push_back(std::move(next));
}

std::optional<ToolCallsOutput> GenerationTail::tool_calls_of(const Active& a, const std::string& reason) const {
  const RequestParams& p = a.record.params;
  if (!p.tools_enabled() || (reason != "stop" && reason != "tool_calls" && reason != "length")) return std::nullopt;
  ParsedToolCalls parsed = parse_tool_calls(a.stream->text(), p.tools, a.record.id, reason == "length");
  if (parsed.calls.empty()) return std::nullopt;
  if (!p.parallel_tool_calls && parsed.calls.size() > 1) parsed.calls.resize(1);  // at most one call asked for
  return ToolCallsOutput{std::move(parsed.content), std::move(parsed.calls)};
}

void GenerationTail::publish_done(Active& a, const std::string& reason, const std::optional<ToolCallsOutput>& calls) {
  a.stream->flush();
  const RequestRecord& r = a.record;
  const double now_ms_d = static_cast<double>(now_us()) / 1000.0;
  RequestTimings t;
  t.total_ms = now_ms_d - static_cast<double>(r.created_ms);
  if (a.first_token_us > 0) {
    t.time_to_first_token_ms = static_cast<double>(a.first_token_us) / 1000.0 - static_cast<double>(r.created_ms);
    const double decode_s = (now_ms_d - static_cast<double>(a.first_token_us) / 1000.0) / 1000.0;
    if (decode_s > 0 && a.stream->generated() > 1) t.tokens_per_s = (a.stream->generated() - 1) / decode_s;
  }
  ctx_.outbox->produce(ctx_.config.results_topic(), r.id,
                       done_event(r.id, a.stream->text(), finish_reason_from_name(reason),
                                  {static_cast<int>(r.prompt_tokens.size()), a.stream->generated()}, t,
                                  calls ? &*calls : nullptr));
  ctx_.send_release(r.id);
}

void GenerationTail::finish(Active& a, const std::string& stop_reason) {
  const std::string id = a.record.id;
  a.stream->flush();
  const std::optional<ToolCallsOutput> calls = tool_calls_of(a, stop_reason);
  const std::string reason = stop_reason == "stop" && calls ? "tool_calls" : stop_reason;
  ctx_.requests->finish(id, reason);
  ctx_.metrics->request_ended(reason);
  publish_done(a, reason, calls);
  ctx_.ended_undelivered.push_back(id);
  active_.erase(id);
  mark_finished(id);
}

}  // namespace fleet
