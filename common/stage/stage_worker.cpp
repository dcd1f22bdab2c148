#include "stage/stage_worker.h"

#include <unistd.h>

#include <cstdio>
#include <thread>
#include <utility>

#include "bus/admin.h"
#include "engine/matmul.h"
#include "engine/numerics_probe.h"
#include "generate/generate.h"
#include "model/fingerprint.h"
#include "stage/stage_fingerprints.h"
#include "stage/worker_identity.h"
#include "state/weight_manifest.h"
#include "util/process_memory.h"
#include "util/shutdown_signals.h"

namespace fleet {

using Clock = std::chrono::steady_clock;
constexpr auto kCommitInterval = std::chrono::milliseconds(500);
// The last stage's transactions exist only to fence (FencedOutbox): committed about once a second.
constexpr auto kFenceCommitInterval = std::chrono::milliseconds(1000);

namespace {

std::string describe(const std::vector<bus::TopicPartition>& parts) {
  std::string text;
  for (const auto& tp : parts) text += " " + tp.topic + ":" + std::to_string(tp.partition);
  return text.empty() ? " (none)" : text;
}

std::chrono::milliseconds seconds_ms(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); }

// Start-up phases, for the one "start-up" log line (bench/stage-startup reads it).
class StartupClock {
 public:
  void mark(const char* phase) {
    const auto now = Clock::now();
    phases_.emplace_back(phase, std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  double seconds(const std::string& phase) const {
    for (const auto& [name, s] : phases_)
      if (name == phase) return s;
    return 0;
  }
  double total() const { return std::chrono::duration<double>(last_ - start_).count(); }
  std::string describe() const {  // "load 0.01 s, hash 0.52 s, ..."
    std::string out;
    char buf[64];
    for (const auto& [name, s] : phases_) {
      std::snprintf(buf, sizeof buf, "%s%s %.2f s", out.empty() ? "" : ", ", name.c_str(), s);
      out += buf;
    }
    return out;
  }

 private:
  Clock::time_point start_ = Clock::now(), last_ = start_;
  std::vector<std::pair<std::string, double>> phases_;
};

}  // namespace

StageWorker::StageWorker(StageWorkerOptions o) {
  ctx_.config = std::move(o.config);
  const DeploymentConfig& cfg = ctx_.config;
  ctx_.stage = o.stage;
  const StageLayers& layers = cfg.stage(o.stage);
  ctx_.is_first = o.stage == 0;
  ctx_.is_last = o.stage == cfg.stage_count() - 1;
  ctx_.worker_id = o.worker_id.empty() ? make_worker_id(o.stage) : o.worker_id;
  ctx_.epoch = static_cast<uint64_t>(now_us());
  ctx_.metrics = std::make_unique<StageMetrics>(
      metrics::Labels{{"model", cfg.model.name}, {"stage", std::to_string(o.stage)}});

  StartupClock startup;
  ModelSource src = open_model(cfg.model.path);
  cfg.validate(src.config.n_layers);
  LoadOptions lo;
  lo.layer_begin = layers.first;
  lo.layer_end = layers.end;
  lo.weight_dtype = cfg.model.weights;
  auto weights = std::make_shared<StageWeights>(load_stage_weights(src, lo));
  startup.mark("load");
  // Hashing reads every byte of the stage's part of the file: from a cold page cache that is
  // the disk's speed, so it reports progress every 2 s.
  auto last_report = Clock::now();
  uint64_t hashed = 0;
  const std::map<int, std::string> fps =
      stage_fingerprints(src, *weights, [&](size_t done, size_t total, uint64_t bytes) {
        hashed = bytes;
        if (Clock::now() - last_report < std::chrono::seconds(2) || done == total) return;
        last_report = Clock::now();
        ctx_.log("hashing weights: %zu of %zu layers, %.2f GiB read", done, total, static_cast<double>(bytes) / (1 << 30));
      });
  ctx_.model_fingerprint = combined_fingerprint(fps);
  startup.mark("hash");

  ctx_.redis = std::make_unique<RedisClient>(cfg.redis.url);
  WeightManifest manifest(*ctx_.redis);
  auto mismatches = manifest.register_layer_hashes(cfg.model.name, fps);
  if (!mismatches.empty())
    throw std::runtime_error("refusing to join: " + WeightManifest::describe(cfg.model.name, mismatches));

  startup.mark("manifest");
  ctx_.engine =
      std::make_unique<StageEngine>(weights, o.threads, parse_activation_mode(cfg.model.activations), cfg.model.blas_prefill);
  startup.mark("engine");
  if (cfg.model.blas_prefill)
    ctx_.log_at(log::Level::Warn, "", "model.blas_prefill: f32 prompts run through OpenBLAS sgemm, which is not "
                "batch-invariant; replicas must all run it, and replays may not reproduce earlier steps exactly");
  ctx_.numerics_probe = numerics_probe(*ctx_.engine);
  check_numerics_match_replicas();
  startup.mark("probe");
  if (ctx_.is_first || ctx_.is_last)
    ctx_.tokenizer = Tokenizer::load(cfg.model.tokenizer.empty() ? default_tokenizer_path(cfg.model.path) : cfg.model.tokenizer);
  RequestStoreOptions ro;
  ro.finished_ttl = seconds_ms(cfg.timeouts.finished_request_ttl_s);
  ctx_.requests = std::make_unique<RequestStore>(*ctx_.redis, ro);
  ctx_.kv_handles = std::make_unique<KvHandleStore>(*ctx_.redis);
  ctx_.fingerprints = std::make_unique<StageFingerprints>(ctx_.config, src.config.n_layers, *ctx_.redis);
  startup.mark("tokenizer");

  std::vector<bus::TopicSpec> topics;
  for (const std::string& t : cfg.all_topics()) topics.push_back({t, cfg.kafka.partitions, cfg.kafka.replication_factor});
  bus::ensure_topics(cfg.kafka.brokers, topics, 30000, cfg.kafka.properties);
  if (ctx_.is_last) {  // what it publishes per request is fenced by the input partition's next owner
    auto out = std::make_unique<FencedOutbox>(cfg.kafka.brokers, cfg.kafka.max_message_bytes, cfg.kafka.properties,
                                              cfg.stage_topic(o.stage), cfg.stage_consumer_group(o.stage));
    fenced_outbox_ = out.get();
    ctx_.outbox = std::move(out);
  } else {
    ctx_.outbox = std::make_unique<KafkaOutbox>(cfg.kafka.brokers, cfg.kafka.max_message_bytes, cfg.kafka.properties);
  }
  startup.mark("topics");
  processor_ = std::make_unique<StageProcessor>(ctx_);
  ctx_.metrics->watch([p = processor_.get()] { return p->stats(); }, static_cast<double>(cfg.kv.budget_bytes));
  ctx_.metrics->info.labels({ctx_.worker_id, format_layer_range(layers.first, layers.end), kernel_variant()}).set(1);
  if (cfg.metrics.port >= 0) {  // before the heartbeat: its port goes into the membership entry
    metrics_server_ =
        std::make_unique<metrics::MetricsServer>(ctx_.metrics->registry, cfg.metrics.host, cfg.metrics.port);
    ctx_.log("metrics on http://%s:%d/metrics", cfg.metrics.host.c_str(), metrics_server_->port());
  }
  std::vector<std::string> inputs = {cfg.stage_topic(o.stage)};
  if (ctx_.is_first) inputs.insert(inputs.end(), {cfg.prompts_topic(), cfg.control_topic()});
  consumer_ = std::make_unique<bus::Consumer>(cfg.kafka.brokers, cfg.stage_consumer_group(o.stage), inputs,
                                              cfg.kafka.properties, this);
  if (ctx_.is_first) stall_redrive_ = std::make_unique<StallRedrive>(ctx_);
  heartbeat_ = std::make_unique<Heartbeat>(cfg.redis.url, seconds_ms(cfg.timeouts.heartbeat_ttl_s),
                                           [this] { return worker_info(); });
  startup.mark("consumer");
  ctx_.log("stage %d: layers [%d, %d) of %s, %.1f MiB of weights, fingerprint %s, kernels %s, activations %s "
           "(repacked %.1f MiB in %.2f s), numerics probe %s", o.stage, layers.first, layers.end, cfg.model.name.c_str(),
           static_cast<double>(weights->bytes()) / (1 << 20), ctx_.model_fingerprint.c_str(), kernel_variant(),
           ctx_.engine->activations(), static_cast<double>(ctx_.engine->packed_bytes()) / (1 << 20),
           ctx_.engine->repack_seconds(), ctx_.numerics_probe.c_str());
  const double hash_s = startup.seconds("hash");
  ctx_.log("start-up %.2f s (%s); weights hashed at %.1f GB/s", startup.total(), startup.describe().c_str(),
           hash_s > 0 ? static_cast<double>(hashed) / hash_s / 1e9 : 0.0);
}

StageWorker::~StageWorker() {
  heartbeat_.reset();
  try {
    if (consumer_) consumer_->close();
  } catch (const std::exception& e) {
    ctx_.log_at(log::Level::Warn, "", "leaving the group: %s", e.what());
  }
}

void StageWorker::check_numerics_match_replicas() {
  Membership m(*ctx_.redis, seconds_ms(ctx_.config.timeouts.heartbeat_ttl_s));
  for (const WorkerInfo& w : m.live_workers())
    if (w.model == ctx_.config.model.name && w.stage == ctx_.stage && w.probe != ctx_.numerics_probe)
      throw std::runtime_error(
          "refusing to join: replica " + w.worker_id + " of stage " + std::to_string(ctx_.stage) +
          " computes other numerics (probe " + (w.probe.empty() ? std::string("none") : w.probe) + ", " +
          (w.activations.empty() ? std::string("?") : w.activations) + " activations, " + w.kernel +
          " kernels) than this worker (probe " + ctx_.numerics_probe + ", " + ctx_.engine->activations() +
          " activations, " + kernel_variant() + " kernels); a request replayed on one would not continue exactly "
          "what the other computed (run every replica with the same model.activations and weights)");
}

WorkerInfo StageWorker::worker_info() const {
  WorkerInfo w;
  w.worker_id = ctx_.worker_id;
  w.stage = ctx_.stage;
  w.layer_begin = ctx_.config.stage(ctx_.stage).first;
  w.layer_end = ctx_.config.stage(ctx_.stage).end;
  w.model = ctx_.config.model.name;
  w.fingerprint = ctx_.model_fingerprint;
  w.kernel = kernel_variant();
  w.activations = ctx_.engine->activations();
  w.probe = ctx_.numerics_probe;
  w.host = host_name();
  w.pid = getpid();
  w.started_ms = static_cast<int64_t>(ctx_.epoch / 1000);
  w.rss_bytes = static_cast<int64_t>(resident_bytes());
  StageStats s = processor_ ? processor_->stats() : StageStats{};
  w.kv_bytes = s.kv_bytes;
  w.metrics_port = metrics_server_ ? metrics_server_->port() : 0;
  w.batch_stats = s.to_json();
  return w;
}

void StageWorker::run(const std::atomic<bool>& stop) {
  ShutdownSignals::phase("running");
  while (!stop) {
    try {
      run_until(stop);
    } catch (const bus::BusError& e) {
      if (e.fatal()) throw;
      // e.g. a commit refused during a rebalance (ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS):
      // the records stay uncommitted, their next owner receives them again, and replay and
      // the idempotent steps absorb the repetition. Nothing here is worth dying for.
      ctx_.log_at(log::Level::Warn, "", "%s (continuing)", e.what());
      if (!e.retriable()) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // back off
    }
  }
  // Graceful exit: everything processed is delivered and committed; leaving the group hands
  // the partitions to the other replicas at once (no session timeout to wait for).
  ctx_.log("stopping: committing and leaving the group");
  ShutdownSignals::phase("delivering the last outputs");
  deliver_all();
  ShutdownSignals::phase("committing offsets");
  commit(processor_->offsets().commit_points(), true);
  ShutdownSignals::phase("leaving the consumer group");
  consumer_->close();
  ShutdownSignals::phase("deregistering from Redis");
  heartbeat_->deregister();
  ShutdownSignals::phase("closing");
  ctx_.log("stopped");
}

void StageWorker::commit(const std::map<bus::TopicPartition, int64_t>& next, bool sync) {
  std::vector<bus::Message> points;
  for (const auto& [tp, offset] : next) {
    if (!owned_.count(tp)) continue;
    bus::Message m;
    m.topic = tp.topic;
    m.partition = tp.partition;
    m.offset = offset - 1;  // commit() commits the position after the message
    points.push_back(std::move(m));
  }
  if (points.empty()) return;
  if (sync) consumer_->commit(points);
  else consumer_->commit_async(points);
}

void StageWorker::run_until(const std::atomic<bool>& stop) {
  const int window_ms = ctx_.config.batching.window_ms;
  auto last_sweep = Clock::now(), last_commit = Clock::now(), last_lag = Clock::now(), last_redrive = Clock::now();
  while (!stop) {
    apply_admission();
    std::vector<bus::Message> records = consumer_->poll_batch(256, 100);
    if (Clock::now() - last_lag > std::chrono::seconds(1)) {
      publish_lag();
      last_lag = Clock::now();
    }
    if (Clock::now() - last_sweep > std::chrono::seconds(5)) {
      processor_->sweep();
      return_free_memory();  // what the Kafka clients' fetch buffers left free (util/process_memory.h)
      last_sweep = Clock::now();
    }
    if (stall_redrive_ && Clock::now() - last_redrive > std::chrono::milliseconds(stall_redrive_->interval_ms())) {
      try {
        stall_redrive_->sweep(now_ms());
      } catch (const bus::BusError& e) {
        if (e.fatal()) throw;
        ctx_.log_at(log::Level::Warn, "", "cannot re-drive stalled requests: %s", e.what());
      } catch (const std::exception& e) {  // Redis away: the next sweep tries again
        ctx_.log_at(log::Level::Warn, "", "cannot re-drive stalled requests: %s", e.what());
      }
      last_redrive = Clock::now();
    }
    if (records.empty()) {
      try {
        confirm_delivered();
        if (fenced_outbox_) fenced_outbox_->commit_due(std::chrono::milliseconds(0));  // idle: commit what is open
      } catch (const bus::BusError& e) {
        if (e.fatal()) throw;
        rewind({}, e.what());
      }
      drop_fenced();
      continue;
    }
    if (window_ms > 0) {  // collect what else arrives within the batching window
      auto more = consumer_->poll_batch(256, window_ms);
      records.insert(records.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    // A rebalance inside the second poll may have taken partitions away: their records are
    // the new owner's now.
    std::erase_if(records, [&](const bus::Message& m) { return !owned_.count({m.topic, m.partition}); });
    defer_prompts_beyond_room(records, ctx_.config.kv.max_requests - processor_->stats().requests);
    try {
      processor_->ingest(records);
      gather_peers(records);
      processor_->run();
      // Processed once everything these records caused is delivered (confirm_delivered).
      unconfirmed_.push_back({std::move(records), ctx_.outbox->produced()});
      confirm_delivered();
    } catch (const RedisUnavailable& e) {
      rewind(records, e.what());
      continue;
    } catch (const bus::BusError& e) {
      if (e.fatal()) throw;
      rewind(records, e.what());
      continue;
    }
    backoff_ = std::chrono::milliseconds(100);
    // Committed every kCommitInterval, not every batch: each commit sent while the group
    // rebalances may be refused (ILLEGAL_GENERATION), and librdkafka 2.0.2 then drops the whole
    // assignment as lost. What is not committed yet is committed on a hand-over, or delivered
    // again after a crash (and absorbed).
    if (Clock::now() - last_commit >= kCommitInterval) {
      commit(processor_->offsets().commit_points(), false);
      if (fenced_outbox_) fenced_outbox_->commit_due(kFenceCommitInterval);
      last_commit = Clock::now();
    }
    drop_fenced();
  }
}

void StageWorker::drop_fenced() {
  if (!fenced_outbox_) return;
  std::vector<bus::TopicPartition> gone;
  for (int p : fenced_outbox_->take_fenced())
    if (owned_.count({ctx_.config.stage_topic(ctx_.stage), p})) gone.push_back({ctx_.config.stage_topic(ctx_.stage), p});
  if (gone.empty()) return;
  ctx_.metrics->fenced_partitions.inc(static_cast<double>(gone.size()));
  on_revoked(gone, true);
}

void StageWorker::confirm_delivered() {
  if (!ctx_.ended_undelivered.empty())
    unconfirmed_.push_back({{}, ctx_.outbox->produced(), std::exchange(ctx_.ended_undelivered, {})});
  ctx_.outbox->poll_deliveries();
  const uint64_t delivered = ctx_.outbox->delivered_count();
  if (fenced_outbox_ && fenced_outbox_->losses() != losses_seen_) {
    // A partition was fenced, or records dropped: some terminal events counted as settled may
    // not be on the results topic. The requests awaiting confirmation stay in the progress
    // index; the re-drive has their ends checked by the last stage (StallRedrive).
    losses_seen_ = fenced_outbox_->losses();
    size_t kept = 0;
    for (Unconfirmed& u : unconfirmed_) kept += std::exchange(u.ended, {}).size();
    if (kept)
      ctx_.log_at(log::Level::Warn, "", "%zu ended requests stay in the progress index: their terminal events may "
                  "be lost with a fenced partition's records; a re-drive has them checked", kept);
  }
  std::vector<std::string> ended;
  while (!unconfirmed_.empty() && unconfirmed_.front().produced <= delivered) {
    processor_->offsets().processed(unconfirmed_.front().records);
    ended.insert(ended.end(), unconfirmed_.front().ended.begin(), unconfirmed_.front().ended.end());
    unconfirmed_.pop_front();
  }
  try {
    ctx_.requests->forget_progress(ended);
  } catch (const std::exception& e) {  // left in the index: a re-drive has their ends checked
    ctx_.log_at(log::Level::Warn, "", "cannot take %zu ended requests out of the progress index: %s", ended.size(),
                e.what());
  }
}

void StageWorker::deliver_all() {
  ctx_.outbox->flush();
  confirm_delivered();
}

void StageWorker::gather_peers(std::vector<bus::Message>& records) {
  // A micro-batch's steps are produced together but may arrive a few records at a time; wait
  // briefly for the rest so that it is computed whole (docs/pipelining.md).
  const auto until = Clock::now() + processor_->peer_wait_bound();
  while (processor_->awaiting_peers() && Clock::now() < until) {
    std::vector<bus::Message> more = consumer_->poll_batch(256, 1);
    std::erase_if(more, [&](const bus::Message& m) { return !owned_.count({m.topic, m.partition}); });
    defer_prompts_beyond_room(more, 0);  // prompts wait for the next round
    processor_->ingest(more);
    records.insert(records.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
}

template <typename Partitions>
std::vector<bus::TopicPartition> StageWorker::prompts_among(const Partitions& partitions) const {
  std::vector<bus::TopicPartition> out;
  for (const auto& tp : partitions)
    if (tp.topic == ctx_.config.prompts_topic()) out.push_back(tp);
  return out;
}

void StageWorker::apply_admission() {
  if (!ctx_.is_first) return;
  const StageStats s = processor_->stats();
  const bool full = s.requests >= ctx_.config.kv.max_requests ||
                    static_cast<double>(s.kv_bytes) >= 0.9 * static_cast<double>(ctx_.config.kv.budget_bytes);
  if (full == admission_paused_) return;
  if (full) consumer_->pause(prompts_among(owned_));
  else consumer_->resume(prompts_among(owned_));
  admission_paused_ = full;
  ctx_.metrics->admission_paused.set(full ? 1 : 0);
  ctx_.log("%s reading prompts: %lld requests cached (kv.max_requests %d), %lld KV bytes (budget %llu)",
           full ? "pausing" : "resuming", static_cast<long long>(s.requests), ctx_.config.kv.max_requests,
           static_cast<long long>(s.kv_bytes), static_cast<unsigned long long>(ctx_.config.kv.budget_bytes));
}

void StageWorker::publish_lag() {
  std::map<std::string, int64_t> by_topic{{ctx_.config.stage_topic(ctx_.stage), 0}};
  if (ctx_.is_first) by_topic.insert({{ctx_.config.prompts_topic(), 0}, {ctx_.config.control_topic(), 0}});
  for (const auto& [tp, n] : consumer_->lag()) by_topic[tp.topic] += n;
  for (const auto& [topic, n] : by_topic) ctx_.metrics->consumer_lag.labels({topic}).set(static_cast<double>(n));
}

void StageWorker::rewind(const std::vector<bus::Message>& records, const std::string& why) {
  ctx_.log_at(log::Level::Warn, "", "batch of %zu records not completed: %s; reading them again in %lld ms",
              records.size(), why.c_str(), static_cast<long long>(backoff_.count()));
  // Earlier batches whose outputs are still travelling: delivered now, or read again too.
  try {
    deliver_all();
  } catch (const bus::BusError& e) {
    if (e.fatal()) throw;
  }
  processor_->reset_inflight();
  std::map<bus::TopicPartition, int64_t> from = processor_->offsets().commit_points();
  for (const Unconfirmed& u : unconfirmed_)
    for (const bus::Message& m : u.records) from.emplace(bus::TopicPartition{m.topic, m.partition}, m.offset);
  unconfirmed_.clear();
  for (const bus::Message& m : records) from.emplace(bus::TopicPartition{m.topic, m.partition}, m.offset);  // if absent
  for (const auto& [tp, offset] : from) {
    if (!owned_.count(tp)) continue;
    try {
      consumer_->seek(tp, offset);
    } catch (const bus::BusError& e) {
      ctx_.log_at(log::Level::Warn, "", "%s", e.what());
    }
  }
  std::this_thread::sleep_for(backoff_);  // Redis or the broker is away: wait before trying again
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(5000));
}

void StageWorker::defer_prompts_beyond_room(std::vector<bus::Message>& records, int64_t room) {
  if (!ctx_.is_first) return;
  std::map<bus::TopicPartition, int64_t> deferred;  // partition -> first offset left out
  std::erase_if(records, [&](const bus::Message& m) {
    if (m.topic != ctx_.config.prompts_topic()) return false;
    const bus::TopicPartition tp{m.topic, m.partition};
    if (deferred.count(tp)) return true;  // everything after the first deferred record waits too
    if (room > 0) {
      --room;
      return false;
    }
    deferred.emplace(tp, m.offset);
    return true;
  });
  for (const auto& [tp, offset] : deferred) consumer_->seek(tp, offset);
}

void StageWorker::on_assigned(const std::vector<bus::TopicPartition>& added) {
  owned_.insert(added.begin(), added.end());
  if (admission_paused_) consumer_->pause(prompts_among(added));  // a partition assigned anew starts unpaused
  ctx_.log("assigned%s", describe(added).c_str());
  if (fenced_outbox_) {
    const auto t0 = Clock::now();
    int n = 0;
    for (const auto& tp : added)
      if (tp.topic == ctx_.config.stage_topic(ctx_.stage)) {
        try {
          fenced_outbox_->own(tp.partition);  // fences the partition's previous owner
          ++n;
        } catch (const bus::BusError& e) {  // the broker away for the whole init timeout
          ctx_.log_at(log::Level::Warn, "", "partition %d: no fenced producer (%s); what this worker publishes for its "
                      "requests goes out unfenced until the partition is assigned again", tp.partition, e.what());
        }
      }
    if (n) ctx_.log("fenced the previous owners of %d partition(s) in %.1f ms", n,
                    std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::vector<bus::TopicPartition> all(owned_.begin(), owned_.end());
  ctx_.log("assignment%s", describe(all).c_str());
}

void StageWorker::on_revoked(const std::vector<bus::TopicPartition>& removed, bool lost) {
  ctx_.log("revoked%s%s", describe(removed).c_str(), lost ? " (lost: another member may own them already)" : "");
  if (!lost) {
    try {  // hand over cleanly: what was processed is delivered and committed
      deliver_all();
      std::map<bus::TopicPartition, int64_t> points;
      for (const auto& tp : removed) {
        auto it = processor_->offsets().commit_points().find(tp);
        if (it != processor_->offsets().commit_points().end()) points.insert(*it);
      }
      commit(points, true);
    } catch (const std::exception& e) {
      ctx_.log_at(log::Level::Warn, "", "handing over%s: %s (the new owner receives the uncommitted records again)",
                  describe(removed).c_str(), e.what());
    }
  }
  for (const auto& tp : removed) {
    owned_.erase(tp);
    if (fenced_outbox_ && tp.topic == ctx_.config.stage_topic(ctx_.stage)) fenced_outbox_->disown(tp.partition, !lost);
  }
  processor_->drop_partitions(removed);
  return_free_memory();  // the closed producers' threads and buffers
  std::vector<bus::TopicPartition> all(owned_.begin(), owned_.end());
  ctx_.log("assignment%s", describe(all).c_str());
}

}  // namespace fleet
