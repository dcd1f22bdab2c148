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
  a->max_tokens = p.value("max_tokens", 256);
  a->prompt_tokens = static_cast<int>(rec->prompt_tokens.size());
  a->created_ms = rec->created_ms;
  a->decoder = std::make_unique<StreamDecoder>(*ctx_.tokenizer);
  a->stop = std::make_unique<StopMatcher>(p.value("stop", std::vector<std::string>{}));
  // Tokens generated before (a replay): feed them through the decoder and stop matcher again.
  for (int32_t t : rec->generated) a->text += a->stop->push(a->decoder->push(t));
  a->generated = static_cast<int>(rec->generated.size());
  return active_.emplace(id, std::move(a)).first->second.get();
}

void GenerationTail::on_logits(const ActivationMsg& step, std::span<const float> logits) {
  const std::string& id = step.request_id();
  Active* a = lookup(id);
  if (!a) return;  // finished, failed or expired: a late duplicate, nothing to do
  const int index = static_cast<int>(step.generation_index());
  if (index < a->generated) return;  // a replayed step whose token is already out
  const int32_t token = sample_token(logits, a->sampling, static_cast<uint64_t>(index));
  if (std::find(stop_tokens_.begin(), stop_tokens_.end(), token) != stop_tokens_.end()) return finish(id, *a, true);
  if (index == 0) {
    a->first_token_us = now_us();
    ctx_.requests->set_status(id, RequestStatus::Running);
  }
  ctx_.requests->append_generated_token(id, index, token);
  const std::string piece = a->stop->push(a->decoder->push(token));
  a->text += piece;
  a->generated = index + 1;
  ctx_.producer->produce(ctx_.config.results_topic(), id, token_event(id, index, token, piece));
  const int next_pos = step.start_pos() + step.n_tokens();
  if (a->stop->stopped()) return finish(id, *a, true);
  if (a->generated >= a->max_tokens || next_pos >= ctx_.engine->config().max_seq_len) return finish(id, *a, false);
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

void GenerationTail::finish(const std::string& id, Active& a, bool stopped) {
  if (!a.stop->stopped()) {  // what the decoder and the stop matcher still hold, in that order
    a.text += a.stop->push(a.decoder->flush());
    a.text += a.stop->flush();
  }
  const double now_ms_d = static_cast<double>(now_us()) / 1000.0;
  RequestTimings t;
  t.total_ms = now_ms_d - static_cast<double>(a.created_ms);
  if (a.first_token_us > 0) {
    t.time_to_first_token_ms = static_cast<double>(a.first_token_us) / 1000.0 - static_cast<double>(a.created_ms);
    const double decode_s = (now_ms_d - static_cast<double>(a.first_token_us) / 1000.0) / 1000.0;
    if (decode_s > 0 && a.generated > 1) t.tokens_per_s = (a.generated - 1) / decode_s;
  }
  const FinishReason reason = stopped ? FinishReason::Stop : FinishReason::Length;
  ctx_.producer->produce(ctx_.config.results_topic(), id,
                         done_event(id, a.text, reason, {a.prompt_tokens, a.generated}, t));
  ctx_.requests->finish(id, finish_reason_name(reason));
  active_.erase(id);
  ctx_.send_release(id);
}

}  // namespace fleet
