#include "stage/memory_fleet.h"

#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "generate/generate.h"
#include "model/fingerprint.h"
#include "state/weight_manifest.h"
#include "test_support.h"

namespace fleet::test {

std::string prompt_record(const std::string& id, const std::string& prompt, int max_tokens, double temperature,
                          uint64_t seed) {
  nlohmann::json j = {{"id", id}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", temperature}};
  if (seed) j["seed"] = seed;
  return j.dump();
}

MemoryFleet::MemoryFleet(MemoryFleetOptions o) : options_(std::move(o)) {
  redis_server_ = std::make_unique<RedisServer>();
  redis_ = std::make_unique<RedisClient>(redis_server_->url());
  requests_ = std::make_unique<RequestStore>(*redis_);
  std::ostringstream y;
  y << "kafka: {brokers: \"unused:9092\", topic_prefix: mem, partitions: 1}\n"
    << "redis: {url: \"" << redis_server_->url() << "\"}\n"
    << "model: {name: stories260K, path: \"" << stories_bin() << "\", tokenizer: \"" << stories_tok() << "\"}\n"
    << "stages:\n";
  for (const auto& [first, end] : options_.stages) y << "  - layers: [" << first << ", " << end << "]\n";
  y << "batching: {max_batch_tokens: " << options_.max_batch_tokens << ", window_ms: 0, prefill_chunk: "
    << options_.prefill_chunk << "}\n"
    << "kv: {budget_bytes: " << options_.kv_budget << "}\n";
  config_ = parse_config(y.str(), "memory_fleet", "/");
  last_batch_.resize(static_cast<size_t>(config_.stage_count()));
  for (int k = 0; k < config_.stage_count(); ++k) {
    contexts_.push_back(make_context(k));
    processors_.push_back(std::make_unique<StageProcessor>(*contexts_.back()));
  }
}

MemoryFleet::~MemoryFleet() {
  processors_.clear();
  contexts_.clear();
}

std::unique_ptr<StageContext> MemoryFleet::make_context(int k) {
  auto ctx = std::make_unique<StageContext>();
  ctx->config = config_;
  ctx->stage = k;
  ctx->is_first = k == 0;
  ctx->is_last = k == config_.stage_count() - 1;
  ctx->worker_id = "mem-s" + std::to_string(k) + "-" + std::to_string(restarts_);
  ctx->epoch = static_cast<uint64_t>(1000 + restarts_);
  LoadOptions lo;
  lo.layer_begin = config_.stage(k).first;
  lo.layer_end = config_.stage(k).end;
  ModelSource src = open_model(stories_bin());
  auto weights = std::make_shared<StageWeights>(load_stage_weights(src, lo));
  const std::map<int, std::string> fps = stage_fingerprints(src, *weights);
  ctx->model_fingerprint = combined_fingerprint(fps);
  ctx->engine = std::make_unique<StageEngine>(weights, 1);
  if (ctx->is_first || ctx->is_last) ctx->tokenizer = Tokenizer::load(stories_tok());
  ctx->outbox = std::make_unique<MemoryOutbox>(broker_);
  ctx->redis = std::make_unique<RedisClient>(redis_server_->url());
  ctx->requests = std::make_unique<RequestStore>(*ctx->redis);
  ctx->kv_handles = std::make_unique<KvHandleStore>(*ctx->redis);
  WeightManifest(*ctx->redis).register_layer_hashes(config_.model.name, fps);
  ctx->fingerprints = std::make_unique<StageFingerprints>(ctx->config, src.config.n_layers, *ctx->redis);
  return ctx;
}

void MemoryFleet::restart_stage(int k, bool lose_pending) {
  ++restarts_;
  std::unique_ptr<StageContext> fresh = make_context(k);
  if (lose_pending) {
    static_cast<MemoryOutbox&>(*contexts_[static_cast<size_t>(k)]->outbox).pending.clear();
    contexts_[static_cast<size_t>(k)]->ended_undelivered.clear();  // their ends were lost with them
  }
  collect();  // what was delivered (the other stages' outputs; the old worker's unless lost)
  if (lose_pending) {
    for (auto it = last_batch_[static_cast<size_t>(k)].rbegin(); it != last_batch_[static_cast<size_t>(k)].rend(); ++it)
      queues_[it->topic].push_front(*it);
  }
  processors_[static_cast<size_t>(k)] = std::make_unique<StageProcessor>(*fresh);
  contexts_[static_cast<size_t>(k)] = std::move(fresh);
}

void MemoryFleet::publish(const std::string& topic, const std::string& key, const std::string& value) {
  broker_->push_back({topic, key, value});
  collect();
}

void MemoryFleet::collect() {
  for (auto& ctx : contexts_) {  // delivered: ended requests leave the progress index (StageWorker)
    if (!ctx) continue;
    ctx->outbox->flush();
    requests_->forget_progress(std::exchange(ctx->ended_undelivered, {}));
  }
  for (; routed_ < broker_->size(); ++routed_) {
    const MemoryOutbox::Record& r = (*broker_)[routed_];
    bus::Message m;
    m.topic = r.topic;
    m.partition = 0;
    m.offset = next_offset_[r.topic]++;
    m.key = r.key;
    m.value = r.value;
    queues_[r.topic].push_back(std::move(m));
  }
}

bool MemoryFleet::deliver_once() {
  collect();
  bool moved = false;
  for (int k = 0; k < config_.stage_count(); ++k) {
    std::vector<bus::Message> batch;
    std::vector<std::string> inputs = {config_.stage_topic(k)};
    if (k == 0) inputs.insert(inputs.end(), {config_.prompts_topic(), config_.control_topic()});
    for (const std::string& t : inputs) {
      std::deque<bus::Message>& q = queues_[t];
      batch.insert(batch.end(), std::make_move_iterator(q.begin()), std::make_move_iterator(q.end()));
      q.clear();
    }
    if (batch.empty()) continue;
    moved = true;
    last_batch_[static_cast<size_t>(k)] = batch;
    processors_[static_cast<size_t>(k)]->process(batch);
  }
  return moved;
}

int MemoryFleet::deliver_all(int max_rounds) {
  int rounds = 0;
  while (rounds < max_rounds && deliver_once()) ++rounds;
  collect();
  return rounds;
}

std::vector<std::string> MemoryFleet::results_log() const {
  std::vector<std::string> out;
  for (const auto& r : *broker_)
    if (r.topic == config_.results_topic()) out.push_back(r.value);
  return out;
}

std::vector<std::string> MemoryFleet::dead_letters() const {
  std::vector<std::string> out;
  for (const auto& r : *broker_)
    if (r.topic == config_.dead_letter_topic()) out.push_back(r.value);
  return out;
}

}  // namespace fleet::test
