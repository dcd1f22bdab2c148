#include "stage/stage_processor.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "contracts/control_request.h"
#include "contracts/result_events.h"
#include "stage/worker_identity.h"

namespace fleet {

nlohmann::json StageStats::to_json() const {
  return {{"batches", batches},   {"rows", rows},
          {"max_rows", max_rows}, {"requests", requests}, {"peak_requests", peak_requests},
          {"kv_bytes", kv_bytes}, {"replay_requests", replay_requests},
          {"replayed_rows", replayed_rows}, {"evictions", evictions},
          {"takeovers", takeovers}, {"republished", republished},
          {"recoveries", recoveries}, {"recovery_ms_max", recovery_ms_max},
          {"hop_ms_p50", hop_ms_p50}, {"hop_ms_p99", hop_ms_p99}, {"busy_ms", busy_ms}};
}

StageProcessor::StageProcessor(StageContext& ctx)
    : ctx_(ctx),
      caches_(ctx.config.kv.budget_bytes, [&ctx] { return ctx.engine->new_cache(); }),
      replay_nonce_(static_cast<uint32_t>(std::hash<std::string>{}(ctx.worker_id) ^ ctx.epoch)) {
  if (ctx_.is_first) intake_ = std::make_unique<PromptIntake>(ctx_);
  if (ctx_.is_last) tail_ = std::make_unique<GenerationTail>(ctx_);
}

void StageProcessor::process(const std::vector<bus::Message>& records) {
  ingest(records);
  run();
}

void StageProcessor::run() {
  run_ready();
  publish_stats();
}

bool StageProcessor::awaiting_peers() const {
  std::map<std::pair<std::string, uint64_t>, uint32_t> seen;  // (sender, batch) -> peers ready here
  for (const Step& s : ready_)
    if (s.msg.batch_steps() > 1) ++seen[{s.msg.source_worker(), s.msg.batch_id()}];
  for (const Step& s : ready_)
    if (s.msg.batch_steps() > 1 && seen[{s.msg.source_worker(), s.msg.batch_id()}] < s.msg.batch_steps()) return true;
  return false;
}

std::chrono::microseconds StageProcessor::peer_wait_bound() const {
  // Half a typical batch's compute, at most 5 ms. Peers are produced together, but librdkafka
  // sends one request per partition (at most 5 in flight per broker), so 16 peers over 8
  // partitions arrive over 1-3 ms even on loopback; a fragment run alone costs nearly a whole
  // batch (the weights are read again). A peer that never comes (bound for another replica, or
  // dropped) costs at most this much.
  return std::min(std::chrono::microseconds(5000),
                  std::chrono::microseconds(static_cast<int64_t>(forward_seconds_avg_ * 0.5e6)));
}

void StageProcessor::ingest(const std::vector<bus::Message>& records) {
  for (const bus::Message& r : records) {
    try {
      if (ctx_.is_first && r.topic == ctx_.config.prompts_topic()) {
        if (std::optional<std::string> id = intake_->handle(r)) admitted_[*id] = KvCachePool::Clock::now();
      }
      else if (ctx_.is_first && r.topic == ctx_.config.control_topic()) handle_control(r);
      else handle_activation(r);
    } catch (const RedisUnavailable&) {
      throw;  // not the record's fault: the worker retries the batch
    } catch (const std::exception& e) {
      ctx_.fail_request(r.key, {error_code::kInternal, e.what()});
    }
  }
}

void StageProcessor::handle_activation(const bus::Message& record) {
  Reassembler::Result res = reassembler_.add(record.value);
  if (res.status == Reassembler::Status::Incomplete) offsets_.hold(res.request_id, res.step, record);
  else offsets_.release_step(res.request_id, res.step);
  if (!res.request_id.empty() && record.topic == ctx_.config.stage_topic(ctx_.stage))
    partition_of_[res.request_id] = record.partition;
  if (res.status == Reassembler::Status::Invalid) {
    ContractError err{error_code::kInternal, "bad activation message: " + res.error};
    ctx_.dead_letter(record, record.key, err);
    if (!res.request_id.empty()) ctx_.fail_request(res.request_id, err);
    return;
  }
  if (res.status != Reassembler::Status::Complete) return;
  ActivationMsg& msg = *res.message;
  if (std::string why = ctx_.fingerprints->check(msg.source_stage(), msg.model_fingerprint()); !why.empty()) {
    ContractError err{error_code::kInternal, "activation message for request " + msg.request_id() + " from stage " +
                                                 std::to_string(msg.source_stage()) + " (" + msg.source_worker() +
                                                 ") refused: " + why};
    ctx_.log_at(log::Level::Warn, msg.request_id(), "%s", err.message.c_str());
    ctx_.dead_letter(record, record.key, err);
    return;
  }
  if (msg.sent_us() > 0) {
    const double ms = static_cast<double>(now_us() - msg.sent_us()) / 1000.0;
    if (hop_ms_.size() < 1024) hop_ms_.push_back(ms);
    else hop_ms_[hop_next_++ % hop_ms_.size()] = ms;
    ctx_.metrics->hop_latency.observe(ms / 1000.0);
  }
  if (msg.release()) return release(msg);
  if (msg.replay_request()) {
    if (ctx_.is_first)
      return replay_from_redis(msg.request_id(), msg.start_pos(), msg.replay_end(), msg.sample(),
                               msg.generation_index(), msg.recovery_started_us());
    return ctx_.fail_request(msg.request_id(), {error_code::kInternal, "a replay request reached stage " +
                                                                           std::to_string(ctx_.stage) + " (only stage 0 replays)"});
  }
  Step step{std::move(msg), {}};
  const int dim = ctx_.engine->config().dim;
  if (ctx_.is_first != step.msg.has_token_ids())
    return ctx_.fail_request(
        step.msg.request_id(),
        {error_code::kInternal, "stage " + std::to_string(ctx_.stage) + " expects " +
                                    (ctx_.is_first ? "token ids" : "hidden rows") + " but received " +
                                    (ctx_.is_first ? "hidden rows" : "token ids") + " from stage " +
                                    std::to_string(step.msg.source_stage()) + " (" + step.msg.source_worker() +
                                    "): do two deployments with different cuts share the topic prefix?"});
  if (!ctx_.is_first) {
    if (step.msg.tensor().shape_size() != 2 || step.msg.tensor().shape(1) != dim)
      return ctx_.fail_request(step.msg.request_id(), {error_code::kInternal, "hidden rows do not have the model's dimension " +
                                                                                  std::to_string(dim)});
    step.hidden = tensor_to_f32(step.msg);
  }
  ready_.push_back(std::move(step));
}

void StageProcessor::handle_control(const bus::Message& record) {
  std::optional<std::string_view> key;
  if (!record.key.empty()) key = record.key;
  ControlParseResult parsed = parse_control_record(record.value, key);
  if (!parsed.ok()) {  // nothing to answer on the results topic: no request asked
    ctx_.log_at(log::Level::Warn, record.key, "control record at %s:%d:%lld rejected: %s", record.topic.c_str(),
                record.partition, static_cast<long long>(record.offset), parsed.error->message.c_str());
    ctx_.dead_letter(record, record.key, *parsed.error);
    return;
  }
  const std::string& id = parsed.request->id;
  std::optional<RequestRecord> rec = ctx_.requests->load(id);
  if (!rec || rec->status == RequestStatus::Done || rec->status == RequestStatus::Error) {
    ctx_.log_at(log::Level::Info, id, "cancel of %s: %s; nothing to do", id.c_str(),
                rec ? "it has already ended" : "no such request");
    return;
  }
  // A release that also cancels: every stage drops the request's cache on its way to the last
  // stage, which ends the request (once) with finish_reason "cancelled". Marked in Redis first,
  // so that a step still in flight behind it does not replay the request.
  ctx_.requests->request_cancel(id);
  release(release_message(id, true));
}

int StageProcessor::micro_batch_rows() const {
  const int max_rows = std::max(1, ctx_.config.batching.max_batch_tokens);
  const int64_t stages = ctx_.config.stage_count();
  if (!ctx_.is_first || stages == 1) return max_rows;
  int64_t ready_rows = 0;
  for (const Step& s : ready_) ready_rows += s.msg.n_tokens();
  const int64_t in_flight = static_cast<int64_t>(caches_.size() + admitted_.size());
  const int64_t target = std::max<int64_t>(1, (std::max(in_flight, ready_rows) + stages - 1) / stages);
  // What is ready, in about equal parts of about the target: 9 ready for a target of 8 run as
  // one batch, 12 as two of 6 (a fragment of 1 would cost nearly a whole batch).
  const int64_t parts = std::max<int64_t>(1, (2 * ready_rows + target) / (2 * target));
  return static_cast<int>(std::clamp<int64_t>((ready_rows + parts - 1) / parts, 1, max_rows));
}

void StageProcessor::run_ready() {
  while (!ready_.empty()) {
    std::vector<Step> batch = take_batch(ready_, micro_batch_rows());
    try {
      run_batch(batch);
    } catch (const RedisUnavailable&) {
      throw;
    } catch (const std::exception& e) {
      for (const Step& s : batch) ctx_.fail_request(s.msg.request_id(), {error_code::kInternal, e.what()});
    }
  }
}

void StageProcessor::recover(Step& lost, int cached) {
  // The request's queued later steps are part of what must be recomputed: fold them in.
  const std::string id = lost.msg.request_id();
  ActivationMsg last = lost.msg;
  for (const Step& s : ready_)
    if (s.msg.request_id() == id && s.msg.start_pos() + s.msg.n_tokens() >= last.start_pos() + last.n_tokens())
      last = s.msg;
  std::erase_if(ready_, [&](const Step& s) { return s.msg.request_id() == id; });
  const int end = last.start_pos() + last.n_tokens();
  ++stats_.replay_requests;
  // Timed from the first loss found when this step was already a recovery's.
  const int64_t started_us = lost.msg.recovery_started_us() > 0 ? lost.msg.recovery_started_us() : now_us();
  if (ctx_.is_first) return replay_from_redis(id, cached, end, last.sample(), last.generation_index(), started_us);
  ctx_.log_at(log::Level::Info, id,
              "request %s: step at %d but only %d positions cached here; asking stage 0 to replay [%d, %d)",
              id.c_str(), lost.msg.start_pos(), cached, cached, end);
  ActivationMsg request = replay_request(last, cached, next_nonce());
  request.set_recovery_started_us(started_us);
  ctx_.send_to_stage(0, request);
}

void StageProcessor::replay_from_redis(const std::string& id, int from, int end, bool sample, uint32_t generation_index,
                                       int64_t recovery_started_us) {
  std::optional<RequestRecord> rec = ctx_.requests->load(id);
  if (!rec)
    return ctx_.fail_request(id, {error_code::kKvCacheMissing,
                                  "a KV cache was lost and the request's state in Redis is gone: cannot replay it"});
  if (rec->status == RequestStatus::Done || rec->status == RequestStatus::Error || rec->cancel_requested_ms)
    return;  // nothing left to compute
  std::vector<int32_t> tokens = rec->prompt_tokens;
  tokens.insert(tokens.end(), rec->generated.begin(), rec->generated.end());
  if (static_cast<int>(tokens.size()) < end)
    return ctx_.fail_request(id, {error_code::kInternal, "replay to position " + std::to_string(end) + " but Redis holds " +
                                                             std::to_string(tokens.size()) + " tokens"});
  from = std::min(from, caches_.cached_length(id));
  const uint32_t nonce = next_nonce();
  ctx_.log_at(log::Level::Info, id, "request %s: replaying positions [%d, %d) from Redis", id.c_str(), from, end);
  for (ActivationMsg& m :
       token_steps(id, tokens, from, end, ctx_.config.batching.prefill_chunk, sample, generation_index, nonce)) {
    m.set_recovery_started_us(recovery_started_us);
    ready_.push_back(Step{std::move(m), {}});
  }
}

uint32_t StageProcessor::next_nonce() {
  uint32_t n = replay_nonce_++;
  return n != 0 ? n : replay_nonce_++;
}

void StageProcessor::run_batch(std::vector<Step>& batch) {
  const int dim = ctx_.engine->config().dim;
  std::set<std::string> pinned;
  for (const Step& s : batch) pinned.insert(s.msg.request_id());
  std::vector<Step*> steps;
  std::vector<SeqChunk> chunks;
  std::vector<Step> deferred;
  for (Step& s : batch) {
    const std::string& id = s.msg.request_id();
    const int cached = caches_.cached_length(id);
    if (s.msg.start_pos() > cached) {
      recover(s, cached);
      continue;
    }
    KVCache* cache = nullptr;
    try {
      cache = caches_.reserve(id, s.msg.start_pos() + s.msg.n_tokens(), pinned);
    } catch (const std::length_error& e) {
      ctx_.fail_request(id, {error_code::kPromptTooLong, e.what()});
      continue;
    } catch (const std::runtime_error& e) {
      if (pinned.size() > 1) {  // no room next to the batch's other requests: run it after them
        pinned.erase(id);
        deferred.push_back(std::move(s));
        continue;
      }
      ctx_.fail_request(id, {error_code::kInternal, std::string(e.what()) + " on " + ctx_.worker_id});
      continue;
    }
    if (s.msg.replayed()) stats_.replayed_rows += s.msg.n_tokens();
    admitted_.erase(id);  // counted by its cache from now on
    steps.push_back(&s);
    chunks.push_back({cache, s.msg.start_pos(), s.msg.n_tokens()});
  }
  for (auto it = deferred.rbegin(); it != deferred.rend(); ++it) ready_.push_front(std::move(*it));
  if (steps.empty()) return;
  int64_t rows = 0;
  for (const SeqChunk& c : chunks) rows += c.n_tokens;
  std::vector<float> hidden(static_cast<size_t>(rows) * dim);
  const auto forward_start = std::chrono::steady_clock::now();
  if (ctx_.is_first) {
    std::vector<int32_t> ids;
    for (Step* s : steps) {
      auto t = token_ids_of(s->msg);
      ids.insert(ids.end(), t.begin(), t.end());
    }
    ctx_.engine->embed(ids, hidden.data());
  } else {
    size_t at = 0;
    for (Step* s : steps) {
      std::copy(s->hidden.begin(), s->hidden.end(), hidden.begin() + static_cast<long>(at));
      at += s->hidden.size();
    }
  }
  ctx_.engine->forward_layers(chunks, hidden.data());
  const double forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - forward_start).count();
  stats_.busy_ms += forward_s * 1e3;
  ctx_.metrics->forward_seconds.observe(forward_s);
  forward_seconds_avg_ += 0.1 * (forward_s - forward_seconds_avg_);
  ctx_.metrics->batch_tokens.observe(static_cast<double>(rows));
  ctx_.metrics->batch_steps.observe(static_cast<double>(steps.size()));
  ++stats_.batches;
  stats_.rows += rows;
  stats_.max_rows = std::max(stats_.max_rows, rows);
  for (const Step* s : steps) {  // a replay's last step: this stage's cache is whole again
    if (s->msg.recovery_started_us() <= 0 || !s->msg.sample()) continue;
    const double took_s = seconds_since_us(s->msg.recovery_started_us());
    ctx_.metrics->recovery_seconds.labels({"kv_rebuilt"}).observe(took_s);
    ++stats_.recoveries;
    stats_.recovery_ms_max = std::max(stats_.recovery_ms_max, took_s * 1e3);
  }
  if (ctx_.is_last) {
    std::vector<int64_t> sample_rows;
    std::vector<Step*> sampled;
    int64_t offset = 0;
    for (Step* s : steps) {
      offset += s->msg.n_tokens();
      if (s->msg.sample()) {
        sample_rows.push_back(offset - 1);
        sampled.push_back(s);
      }
    }
    if (sampled.empty()) return update_kv_handles(steps, chunks);
    const size_t V = static_cast<size_t>(ctx_.engine->config().vocab_size);
    std::vector<float> logits(sampled.size() * V);
    const auto head_start = std::chrono::steady_clock::now();
    ctx_.engine->head(hidden.data(), sample_rows, logits.data());
    stats_.busy_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - head_start).count();
    std::vector<GenerationTail::Sampled> items;
    for (size_t i = 0; i < sampled.size(); ++i) items.push_back({&sampled[i]->msg, {logits.data() + i * V, V}});
    tail_->on_batch(items);
    return update_kv_handles(steps, chunks);
  }
  int64_t offset = 0;
  std::vector<ActivationMsg> outs;
  for (Step* s : steps) {
    ActivationMsg& out = outs.emplace_back();
    out.set_request_id(s->msg.request_id());
    out.set_step(s->msg.step());
    out.set_start_pos(s->msg.start_pos());
    out.set_n_tokens(s->msg.n_tokens());
    out.set_sample(s->msg.sample());
    out.set_generation_index(s->msg.generation_index());
    out.set_replayed(s->msg.replayed());
    out.set_recovery_started_us(s->msg.recovery_started_us());
    *out.mutable_spans() = s->msg.spans();
    set_tensor_from_f32(out, hidden.data() + offset * dim, s->msg.n_tokens(), dim, fleet::wire::Tensor::F32);
    offset += s->msg.n_tokens();
  }
  ctx_.send_peers_to_stage(ctx_.stage + 1, outs);
  update_kv_handles(steps, chunks);
}

void StageProcessor::update_kv_handles(const std::vector<Step*>& steps, const std::vector<SeqChunk>& chunks) {
  // After the outputs (off the token's path), in one round trip. The handles describe the
  // caches; a Redis hiccup must not fail the requests.
  std::vector<std::pair<std::string, KvHandle>> handles;
  for (size_t i = 0; i < steps.size(); ++i)
    handles.push_back({steps[i]->msg.request_id(), {ctx_.worker_id, static_cast<int64_t>(ctx_.epoch), chunks[i].cache->length()}});
  try {
    ctx_.kv_handles->set_many(ctx_.stage, handles);
  } catch (const std::exception& e) {
    ctx_.log_at(log::Level::Warn, "", "KV handle update failed: %s", e.what());
  }
}

void StageProcessor::forget_request(const std::string& id) {
  caches_.drop(id);
  admitted_.erase(id);
  reassembler_.forget_request(id);
  partition_of_.erase(id);
  std::erase_if(ready_, [&](const Step& s) { return s.msg.request_id() == id; });
  if (tail_) tail_->forget(id);
}

void StageProcessor::release(const ActivationMsg& msg) {
  const std::string& id = msg.request_id();
  if (ctx_.is_last && msg.cancel()) tail_->cancel(id);  // with the sampling state it holds
  forget_request(id);
  offsets_.release_request(id);
  ctx_.kv_handles->remove(id, ctx_.stage);
  if (ctx_.is_last) return;
  ActivationMsg next = msg;
  ctx_.send_to_stage(ctx_.stage + 1, next);
}

void StageProcessor::reset_inflight() {
  reassembler_ = Reassembler();
  ready_.clear();
  offsets_.clear_holds();
  if (tail_) tail_->forget_all();
  publish_stats();
}

void StageProcessor::drop_partitions(const std::vector<bus::TopicPartition>& partitions) {
  std::set<int32_t> moved;
  for (const bus::TopicPartition& tp : partitions)
    if (tp.topic == ctx_.config.stage_topic(ctx_.stage)) moved.insert(tp.partition);
  std::vector<std::string> ids;
  for (const auto& [id, p] : partition_of_)
    if (moved.count(p)) ids.push_back(id);
  for (const std::string& id : ids) forget_request(id);
  offsets_.forget(partitions);
  if (!ids.empty()) ctx_.log("dropped the state of %zu requests whose partitions moved", ids.size());
  publish_stats();
}

void StageProcessor::sweep() {
  const auto max_idle = std::chrono::milliseconds(static_cast<int64_t>(ctx_.config.timeouts.step_s * 1000));
  caches_.drop_idle(max_idle);
  for (const Reassembler::Expired& e : reassembler_.drop_expired(max_idle)) {
    offsets_.release_step(e.request_id, e.step);
    ctx_.fail_request(e.request_id, {error_code::kTimeout, "step at position " + std::to_string(e.step) + " got " +
                                                               std::to_string(e.chunks_received) + " of its " +
                                                               std::to_string(e.chunk_count) + " chunks within " +
                                                               std::to_string(ctx_.config.timeouts.step_s) + " s (timeouts.step_s)"});
  }
  publish_stats();
}

void StageProcessor::publish_stats() {
  // Admitted prompts whose first step has not run here yet count too; one whose steps went to
  // another replica of stage 0 stops counting after kAdmittedGrace.
  constexpr auto kAdmittedGrace = std::chrono::seconds(10);
  const auto now = KvCachePool::Clock::now();
  std::erase_if(admitted_, [&](const auto& e) { return now - e.second > kAdmittedGrace; });
  stats_.requests = static_cast<int64_t>(caches_.size() + admitted_.size());
  stats_.peak_requests = std::max(stats_.peak_requests, stats_.requests);
  stats_.kv_bytes = static_cast<int64_t>(caches_.bytes());
  stats_.evictions = static_cast<int64_t>(caches_.evictions());
  if (tail_) {
    stats_.takeovers = static_cast<int64_t>(tail_->takeovers());
    stats_.republished = static_cast<int64_t>(tail_->republished());
  }
  if (!hop_ms_.empty() && now - hop_percentiles_at_ >= std::chrono::milliseconds(250)) {  // a sort: not every batch
    hop_percentiles_at_ = now;
    std::vector<double> sorted = hop_ms_;
    std::sort(sorted.begin(), sorted.end());
    stats_.hop_ms_p50 = sorted[sorted.size() / 2];
    stats_.hop_ms_p99 = sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  shared_stats_ = stats_;
}

StageStats StageProcessor::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return shared_stats_;
}

}  // namespace fleet
