#include "stage/generation_tail.h"

#include <algorithm>

#include "contracts/result_events.h"
#include "generate/generate.h"
#include "stage/worker_identity.h"

namespace fleet {

GenerationTail::GenerationTail(StageContext& ctx) : ctx_(ctx) {
  stop_tokens_ = default_stop_tokens(ctx_.engine->config(), *ctx_.tokenizer);
}

GenerationTail::Active* GenerationTail::lookup(const std::string& id) {
  auto it = active_.find(id);
  if (it != active_.end()) return it->second.get();
  std::optional<RequestRecord> rec = ctx_.requests->load(id);
  if (!rec) {
    ctx_.fail_request(id, {error_code::kInternal, "request " + id + " has no state in Redis (expired or deleted)"});
    return nullptr;
  }
  if (rec->status == RequestStatus::Done || rec->status == RequestStatus::Error) return nullptr;
  auto a = std::make_unique<Active>();
  const nlohmann::json& p = rec->params;
  a->sampling.temperature = p.value("temperature", 1.0f);
  a->sampling.top_p = p.value("top_p", 1.0f);
  a->sampling.top_k = p.value("top_k", 0);
  a->sampling.seed = p.value("seed", uint64_t{0});
  a->prompt_tokens = static_cast<int>(rec->prompt_tokens.size());
  a->created_ms = rec->created_ms;
  a->stream = std::make_unique<TokenStream>(*ctx_.tokenizer, stop_tokens_, p.value("stop", std::vector<std::string>{}),
                                            p.value("max_tokens", 256));
  for (int32_t t : rec->generated) a->stream->push(t);  // tokens out before (a replay)
  return active_.emplace(id, std::move(a)).first->second.get();
}

void GenerationTail::on_logits(const ActivationMsg& step, std::span<const float> logits) {
  const std::string& id = step.request_id();
  Active* a = lookup(id);
  if (!a) return;  // finished, failed or expired: a late duplicate, nothing to do
  const int index = static_cast<int>(step.generation_index());
  if (index < a->stream->generated()) return;  // a replayed step whose token is already out
  const int32_t token = sample_token(logits, a->sampling, static_cast<uint64_t>(index));
  const TokenStream::Pushed r = a->stream->push(token);
  if (r.accepted) {
    if (index == 0) {
      a->first_token_us = now_us();
      ctx_.requests->set_status(id, RequestStatus::Running);
    }
    ctx_.requests->append_generated_token(id, index, token);
    ctx_.producer->produce(ctx_.config.results_topic(), id, token_event(id, index, token, r.text));
  }
  if (r.finished) return finish(id, *a, r.finish_reason);
  const int next_pos = step.start_pos() + step.n_tokens();
  if (next_pos >= ctx_.engine->config().max_seq_len) return finish(id, *a, "length");  // context full
  ActivationMsg next;
  next.set_request_id(id);
  next.set_step(static_cast<uint64_t>(next_pos));
  next.set_start_pos(next_pos);
  next.set_n_tokens(1);
  next.set_sample(true);
  next.set_generation_index(static_cast<uint32_t>(index + 1));
  set_token_ids(next, {token});
  ctx_.send_to_stage(0, next);
}

void GenerationTail::finish(const std::string& id, Active& a, const std::string& reason) {
  a.stream->flush();
  const double now_ms_d = static_cast<double>(now_us()) / 1000.0;
  RequestTimings t;
  t.total_ms = now_ms_d - static_cast<double>(a.created_ms);
  if (a.first_token_us > 0) {
    t.time_to_first_token_ms = static_cast<double>(a.first_token_us) / 1000.0 - static_cast<double>(a.created_ms);
    const double decode_s = (now_ms_d - static_cast<double>(a.first_token_us) / 1000.0) / 1000.0;
    if (decode_s > 0 && a.stream->generated() > 1) t.tokens_per_s = (a.stream->generated() - 1) / decode_s;
  }
  ctx_.producer->produce(ctx_.config.results_topic(), id,
                         done_event(id, a.stream->text(), reason == "stop" ? FinishReason::Stop : FinishReason::Length,
                                    {a.prompt_tokens, a.stream->generated()}, t));
  ctx_.requests->finish(id, reason);
  active_.erase(id);
  ctx_.send_release(id);
}

}  // namespace fleet
