#include "stage/stage_worker.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <set>

#include "bus/admin.h"
#include "contracts/result_events.h"
#include "generate/generate.h"
#include "model/fingerprint.h"
#include "stage/worker_identity.h"
#include "state/weight_manifest.h"
#include "util/process_memory.h"

namespace fleet {

using Clock = std::chrono::steady_clock;

void StageContext::send_to_stage(int k, ActivationMsg& msg) {
  msg.set_model_fingerprint(model_fingerprint);
  msg.set_source_stage(stage);
  msg.set_source_worker(worker_id);
  msg.set_source_epoch(epoch);
  msg.set_sent_us(now_us());
  for (const std::string& chunk : encode_activation_chunks(msg, config.kafka.max_message_bytes))
    producer->produce(config.stage_topic(k), msg.request_id(), chunk);
}

void StageContext::fail_request(const std::string& id, const ContractError& error) {
  std::fprintf(stderr, "[%s] request %s failed: %s: %s\n", worker_id.c_str(), id.c_str(), error.code.c_str(),
               error.message.c_str());
  if (is_valid_request_id(id)) {
    try {
      std::optional<RequestRecord> rec = requests->load(id);
      // A late duplicate step of a finished request: its outcome stands, nothing to report.
      if (rec && (rec->status == RequestStatus::Done || rec->status == RequestStatus::Error)) return;
      if (!rec) {
        RequestRecord fresh;
        fresh.id = id;
        fresh.model = config.model.name;
        requests->create(fresh);
      }
      requests->set_error(id, error.code + ": " + error.message);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[%s] could not record the error of %s in Redis: %s\n", worker_id.c_str(), id.c_str(),
                   e.what());
    }
  }
  producer->produce(config.results_topic(), id, error_event(id, error));
  if (is_valid_request_id(id)) send_release(id);  // free whatever the stages cached for it
}

void StageContext::send_release(const std::string& id) {
  ActivationMsg release;
  release.set_request_id(id);
  release.set_step(UINT64_MAX);
  release.set_release(true);
  send_to_stage(0, release);
}

namespace {

std::string combined_fingerprint(const std::map<int, std::string>& fps) {
  std::string all;
  for (const auto& [layer, h] : fps) all += std::to_string(layer) + ":" + h + ";";
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_bytes(all.data(), all.size())));
  return buf;
}

}  // namespace

StageWorker::StageWorker(StageWorkerOptions o) : threads_(o.threads) {
  ctx_.config = std::move(o.config);
  const DeploymentConfig& cfg = ctx_.config;
  ctx_.stage = o.stage;
  const StageLayers& layers = cfg.stage(o.stage);
  ctx_.is_first = o.stage == 0;
  ctx_.is_last = o.stage == cfg.stage_count() - 1;
  ctx_.worker_id = o.worker_id.empty() ? make_worker_id(o.stage) : o.worker_id;
  ctx_.epoch = static_cast<uint64_t>(now_us());

  ModelSource src = open_model(cfg.model.path);
  cfg.validate(src.config.n_layers);
  LoadOptions lo;
  lo.layer_begin = layers.first;
  lo.layer_end = layers.end;
  lo.weight_dtype = cfg.model.weights;
  auto weights = std::make_shared<StageWeights>(load_stage_weights(src, lo));
  const std::map<int, std::string> fps = stage_fingerprints(src, *weights);
  ctx_.model_fingerprint = combined_fingerprint(fps);

  ctx_.redis = std::make_unique<RedisClient>(cfg.redis.url);
  WeightManifest manifest(*ctx_.redis);
  auto mismatches = manifest.register_layer_hashes(cfg.model.name, fps);
  if (!mismatches.empty())
    throw std::runtime_error("refusing to join: " + WeightManifest::describe(cfg.model.name, mismatches));

  ctx_.engine = std::make_unique<StageEngine>(weights, o.threads);
  if (ctx_.is_first || ctx_.is_last)
    ctx_.tokenizer = Tokenizer::load(cfg.model.tokenizer.empty() ? default_tokenizer_path(cfg.model.path) : cfg.model.tokenizer);
  RequestStoreOptions ro;
  ro.finished_ttl = std::chrono::milliseconds(static_cast<int64_t>(cfg.timeouts.finished_request_ttl_s * 1000));
  ctx_.requests = std::make_unique<RequestStore>(*ctx_.redis, ro);
  ctx_.kv_handles = std::make_unique<KvHandleStore>(*ctx_.redis);

  std::vector<bus::TopicSpec> topics;
  for (const std::string& t : cfg.all_topics()) topics.push_back({t, cfg.kafka.partitions, cfg.kafka.replication_factor});
  bus::ensure_topics(cfg.kafka.brokers, topics);
  ctx_.producer = std::make_unique<bus::Producer>(
      cfg.kafka.brokers, bus::Config{{"message.max.bytes", std::to_string(cfg.kafka.max_message_bytes)}});
  std::vector<std::string> inputs = {cfg.stage_topic(o.stage)};
  if (ctx_.is_first) inputs.push_back(cfg.prompts_topic());
  consumer_ = std::make_unique<bus::Consumer>(cfg.kafka.brokers, cfg.stage_consumer_group(o.stage), inputs);
  if (ctx_.is_first) intake_ = std::make_unique<PromptIntake>(ctx_);
  if (ctx_.is_last) tail_ = std::make_unique<GenerationTail>(ctx_);

  Membership(*ctx_.redis, std::chrono::milliseconds(static_cast<int64_t>(cfg.timeouts.heartbeat_ttl_s * 1000)))
      .register_worker(worker_info());
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  std::fprintf(stderr, "[%s] stage %d: layers [%d, %d) of %s, %.1f MiB of weights, fingerprint %s\n",
               ctx_.worker_id.c_str(), o.stage, layers.first, layers.end, cfg.model.name.c_str(),
               static_cast<double>(weights->bytes()) / (1 << 20), ctx_.model_fingerprint.c_str());
}

StageWorker::~StageWorker() {
  stop_heartbeat_ = true;
  if (heartbeat_.joinable()) heartbeat_.join();
  try {
    Membership(*ctx_.redis, std::chrono::milliseconds(1000)).deregister(ctx_.worker_id);
  } catch (const std::exception&) {
  }
  if (consumer_) consumer_->close();
}

WorkerInfo StageWorker::worker_info() {
  WorkerInfo w;
  w.worker_id = ctx_.worker_id;
  w.stage = ctx_.stage;
  w.layer_begin = ctx_.engine->layer_begin();
  w.layer_end = ctx_.engine->layer_end();
  w.model = ctx_.config.model.name;
  w.fingerprint = ctx_.model_fingerprint;
  w.host = host_name();
  w.pid = getpid();
  w.started_ms = static_cast<int64_t>(ctx_.epoch / 1000);
  w.rss_bytes = static_cast<int64_t>(resident_bytes());
  w.kv_bytes = static_cast<int64_t>(kv_bytes_shared_.load());
  std::lock_guard<std::mutex> lock(stats_mu_);
  w.batch_stats = batch_stats_;
  return w;
}

void StageWorker::heartbeat_loop() {
  const auto ttl = std::chrono::milliseconds(static_cast<int64_t>(ctx_.config.timeouts.heartbeat_ttl_s * 1000));
  std::unique_ptr<RedisClient> redis;  // its own connection: one client per thread
  std::mutex mu;
  std::condition_variable cv;
  while (!stop_heartbeat_) {
    try {
      if (!redis) redis = std::make_unique<RedisClient>(ctx_.config.redis.url);
      Membership m(*redis, ttl);
      if (!m.heartbeat(worker_info())) m.register_worker(worker_info());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[%s] heartbeat failed: %s\n", ctx_.worker_id.c_str(), e.what());
      redis.reset();
    }
    std::unique_lock<std::mutex> lock(mu);  // a periodic timer that stop_heartbeat_ cuts short
    for (int i = 0; i < 10 && !stop_heartbeat_; ++i) cv.wait_for(lock, ttl / 30);
  }
}

void StageWorker::run(const std::atomic<bool>& stop) {
  while (!stop) {
    try {
      run_until(stop);
    } catch (const bus::BusError& e) {
      if (!e.retriable()) throw;
      // e.g. a commit refused during a rebalance: uncommitted records are delivered again.
      std::fprintf(stderr, "[%s] %s (retrying)\n", ctx_.worker_id.c_str(), e.what());
    }
  }
}

void StageWorker::run_until(const std::atomic<bool>& stop) {
  const int window_ms = ctx_.config.batching.window_ms;
  auto last_sweep = Clock::now();
  while (!stop) {
    std::vector<bus::Message> records = consumer_->poll_batch(256, 100);
    log_assignment_changes();
    if (Clock::now() - last_sweep > std::chrono::seconds(5)) {
      drop_idle_caches();
      last_sweep = Clock::now();
    }
    if (records.empty()) continue;
    if (window_ms > 0) {  // collect what else arrives within the batching window
      auto more = consumer_->poll_batch(256, window_ms);
      records.insert(records.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    for (const bus::Message& r : records) {
      try {
        if (ctx_.is_first && r.topic == ctx_.config.prompts_topic()) intake_->handle(r);
        else handle_activation(r);
      } catch (const std::exception& e) {
        ctx_.fail_request(r.key, {error_code::kInternal, e.what()});
      }
    }
    run_ready_steps();
    ctx_.producer->flush(30000);  // everything these records caused is delivered...
    consumer_->commit_async(committable(records));  // ...before they count as processed (at-least-once)
  }
}

std::vector<bus::Message> StageWorker::committable(std::vector<bus::Message>& records) const {
  // A partition's offsets are committed only below its oldest chunk of a step still being
  // assembled, so a restart delivers that step's chunks again.
  std::map<bus::TopicPartition, int64_t> oldest_partial;
  for (const auto& [key, offsets] : partial_records_)
    for (const auto& [tp, offset] : offsets) {
      auto it = oldest_partial.find(tp);
      if (it == oldest_partial.end() || offset < it->second) oldest_partial[tp] = offset;
    }
  if (oldest_partial.empty()) return std::move(records);
  std::vector<bus::Message> out;
  for (bus::Message& m : records) {
    auto it = oldest_partial.find({m.topic, m.partition});
    if (it == oldest_partial.end() || m.offset < it->second) out.push_back(std::move(m));
  }
  return out;
}

void StageWorker::log_assignment_changes() {
  std::vector<bus::TopicPartition> now = consumer_->assignment();
  if (now == assignment_) return;
  assignment_ = now;
  std::string text;
  for (const auto& tp : now) text += " " + tp.topic + ":" + std::to_string(tp.partition);
  std::fprintf(stderr, "[%s] assignment%s\n", ctx_.worker_id.c_str(), text.empty() ? " (none)" : text.c_str());
}

void StageWorker::handle_activation(const bus::Message& record) {
  Reassembler::Result res = reassembler_.add(record.value);
  const std::pair<std::string, uint64_t> key{res.request_id, res.step};
  if (res.status == Reassembler::Status::Incomplete)
    partial_records_[key].push_back({{record.topic, record.partition}, record.offset});
  else
    partial_records_.erase(key);
  if (res.status == Reassembler::Status::Invalid) {
    ContractError err{error_code::kInternal, "bad activation message: " + res.error};
    DeadLetterSource src{record.topic, record.partition, record.offset, record.key, record.value};
    ctx_.producer->produce(ctx_.config.dead_letter_topic(), record.key,
                           dead_letter_record(src, err, ctx_.worker_id, now_ms()));
    if (!res.request_id.empty()) ctx_.fail_request(res.request_id, err);
    return;
  }
  if (res.status != Reassembler::Status::Complete) return;
  ActivationMsg& msg = *res.message;
  if (msg.release()) return release(msg);
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
    step.hidden = tensor_to_f32(step.msg);
    if (step.msg.tensor().shape_size() != 2 || step.msg.tensor().shape(1) != dim)
      return ctx_.fail_request(step.msg.request_id(),
                               {error_code::kInternal, "hidden rows do not have the model's dimension " + std::to_string(dim)});
  }
  ready_.push_back(std::move(step));
}

void StageWorker::run_ready_steps() {
  const int max_rows = std::max(1, ctx_.config.batching.max_batch_tokens);
  while (!ready_.empty()) {
    // One step per request per batch (a request's next step needs this one's KV entries);
    // the rest wait, in order, for the next batch.
    std::vector<Step> batch, rest;
    std::set<std::string> in_batch;
    int rows = 0;
    for (Step& s : ready_) {
      const bool fits = rows == 0 || rows + s.msg.n_tokens() <= max_rows;
      const bool first_of_request = in_batch.insert(s.msg.request_id()).second;  // later steps wait for it
      if (fits && first_of_request) {
        rows += s.msg.n_tokens();
        batch.push_back(std::move(s));
      } else {
        rest.push_back(std::move(s));
      }
    }
    ready_ = std::move(rest);
    try {
      run_batch(batch);
    } catch (const std::exception& e) {
      for (const Step& s : batch) ctx_.fail_request(s.msg.request_id(), {error_code::kInternal, e.what()});
    }
  }
}

KVCache* StageWorker::cache_for(const ActivationMsg& step) {
  const std::string& id = step.request_id();
  auto it = caches_.find(id);
  if (it == caches_.end()) {
    if (step.start_pos() != 0) {
      ctx_.fail_request(id, {error_code::kKvCacheMissing,
                             "stage " + std::to_string(ctx_.stage) + " (" + ctx_.worker_id + ") has no KV cache for the step at position " +
                                 std::to_string(step.start_pos())});
      return nullptr;
    }
    it = caches_.emplace(id, CacheEntry{ctx_.engine->new_cache(), Clock::now()}).first;
  }
  CacheEntry& e = it->second;
  e.last_used = Clock::now();
  if (step.start_pos() > e.cache->length()) {
    ctx_.fail_request(id, {error_code::kKvCacheMissing, "stage " + std::to_string(ctx_.stage) + " holds " +
                                                            std::to_string(e.cache->length()) +
                                                            " cached positions but the step starts at " +
                                                            std::to_string(step.start_pos())});
    return nullptr;
  }
  const size_t before = e.cache->bytes();
  try {
    e.cache->reserve(step.start_pos() + step.n_tokens());
  } catch (const std::exception& ex) {
    ctx_.fail_request(id, {error_code::kPromptTooLong, ex.what()});
    return nullptr;
  }
  kv_bytes_ += e.cache->bytes() - before;
  if (kv_bytes_ > ctx_.config.kv.budget_bytes) {
    kv_bytes_ -= e.cache->bytes();
    caches_.erase(it);
    ctx_.fail_request(id, {error_code::kInternal, "KV cache budget of " + std::to_string(ctx_.config.kv.budget_bytes) +
                                                      " bytes exhausted on " + ctx_.worker_id});
    return nullptr;
  }
  return e.cache.get();
}

void StageWorker::run_batch(std::vector<Step>& batch) {
  const int dim = ctx_.engine->config().dim;
  std::vector<Step*> steps;
  std::vector<SeqChunk> chunks;
  for (Step& s : batch) {
    KVCache* c = cache_for(s.msg);
    if (!c) continue;
    steps.push_back(&s);
    chunks.push_back({c, s.msg.start_pos(), s.msg.n_tokens()});
  }
  if (steps.empty()) return;
  int64_t rows = 0;
  for (const SeqChunk& c : chunks) rows += c.n_tokens;
  std::vector<float> hidden(static_cast<size_t>(rows) * dim);
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
  try {  // the handles describe the caches; a Redis hiccup must not fail the requests
    for (size_t i = 0; i < steps.size(); ++i)
      ctx_.kv_handles->set(steps[i]->msg.request_id(), ctx_.stage,
                           {ctx_.worker_id, static_cast<int64_t>(ctx_.epoch), chunks[i].cache->length()});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[%s] KV handle update failed: %s\n", ctx_.worker_id.c_str(), e.what());
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    batch_stats_["batches"] = batch_stats_["batches"].get<int64_t>() + 1;
    batch_stats_["rows"] = batch_stats_["rows"].get<int64_t>() + rows;
    batch_stats_["max_rows"] = std::max(batch_stats_["max_rows"].get<int64_t>(), rows);
    batch_stats_["requests"] = caches_.size();
  }
  kv_bytes_shared_ = kv_bytes_;
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
    if (sampled.empty()) return;
    const size_t V = static_cast<size_t>(ctx_.engine->config().vocab_size);
    std::vector<float> logits(sampled.size() * V);
    ctx_.engine->head(hidden.data(), sample_rows, logits.data());
    for (size_t i = 0; i < sampled.size(); ++i) {
      try {
        tail_->on_logits(sampled[i]->msg, {logits.data() + i * V, V});
      } catch (const std::exception& e) {
        ctx_.fail_request(sampled[i]->msg.request_id(), {error_code::kInternal, e.what()});
      }
    }
    return;
  }
  int64_t offset = 0;
  for (Step* s : steps) {
    ActivationMsg out;
    out.set_request_id(s->msg.request_id());
    out.set_step(s->msg.step());
    out.set_start_pos(s->msg.start_pos());
    out.set_n_tokens(s->msg.n_tokens());
    out.set_sample(s->msg.sample());
    out.set_generation_index(s->msg.generation_index());
    *out.mutable_spans() = s->msg.spans();
    set_tensor_from_f32(out, hidden.data() + offset * dim, s->msg.n_tokens(), dim, fleet::wire::Tensor::F32);
    offset += s->msg.n_tokens();
    ctx_.send_to_stage(ctx_.stage + 1, out);
  }
}

void StageWorker::release(const ActivationMsg& msg) {
  const std::string& id = msg.request_id();
  auto it = caches_.find(id);
  if (it != caches_.end()) {
    kv_bytes_ -= it->second.cache->bytes();
    caches_.erase(it);
  }
  kv_bytes_shared_ = kv_bytes_;
  reassembler_.forget_request(id);
  std::erase_if(partial_records_, [&](const auto& entry) { return entry.first.first == id; });
  ctx_.kv_handles->remove(id, ctx_.stage);
  if (ctx_.is_last) {
    tail_->forget(id);
    return;
  }
  ActivationMsg next = msg;
  ctx_.send_to_stage(ctx_.stage + 1, next);
}

void StageWorker::drop_idle_caches() {
  const auto max_idle = std::chrono::milliseconds(static_cast<int64_t>(ctx_.config.timeouts.request_s * 1000));
  for (auto it = caches_.begin(); it != caches_.end();) {
    if (Clock::now() - it->second.last_used > max_idle) {
      kv_bytes_ -= it->second.cache->bytes();
      it = caches_.erase(it);
    } else {
      ++it;
    }
  }
  kv_bytes_shared_ = kv_bytes_;
  for (const Reassembler::Expired& e : reassembler_.drop_expired(max_idle)) {
    partial_records_.erase({e.request_id, e.step});
    ctx_.fail_request(e.request_id, {error_code::kTimeout, "step at position " + std::to_string(e.step) + " got " +
                                                               std::to_string(e.chunks_received) + " of its " +
                                                               std::to_string(e.chunk_count) + " chunks within " +
                                                               std::to_string(ctx_.config.timeouts.request_s) + " s"});
  }
}

}  // namespace fleet
