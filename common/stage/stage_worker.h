#pragma once
// A stage worker: holds layers [a, b) of the model, consumes its stage's activation topic (and,
// as stage 0, the prompts topic), runs the steps it receives in continuous batches, and passes
// each request's rows on to the next stage, or, as the last stage, samples the next token.
//
// Follow one token: PromptIntake (stage 0) -> stage.0 topic -> StageWorker::run_batch on each
// stage -> GenerationTail::on_logits (last stage) -> results topic, and back to stage.0.
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bus/consumer.h"
#include "stage/generation_tail.h"
#include "stage/prompt_intake.h"
#include "stage/stage_context.h"
#include "state/membership.h"

namespace fleet {

struct StageWorkerOptions {
  DeploymentConfig config;
  int stage = 0;
  std::string worker_id;  // default: make_worker_id(stage)
  int threads = 0;        // compute threads (0: all cores)
};

class StageWorker {
 public:
  // Loads the stage's layers, checks their fingerprints against the model's manifest in Redis
  // (throws naming the layer on a mismatch), creates the topics, joins the consumer group and
  // registers in Redis.
  explicit StageWorker(StageWorkerOptions options);
  ~StageWorker();
  void run(const std::atomic<bool>& stop);  // until stop is set
  const std::string& worker_id() const { return ctx_.worker_id; }

 private:
  struct Step {
    ActivationMsg msg;
    std::vector<float> hidden;  // stage > 0: the rows received
  };
  struct CacheEntry {
    std::unique_ptr<KVCache> cache;
    std::chrono::steady_clock::time_point last_used;
  };
  void run_until(const std::atomic<bool>& stop);  // the loop; throws bus errors
  void handle_activation(const bus::Message& record);
  void run_ready_steps();
  void run_batch(std::vector<Step>& batch);
  KVCache* cache_for(const ActivationMsg& step);
  void release(const ActivationMsg& msg);
  void drop_idle_caches();
  void heartbeat_loop();
  void log_assignment_changes();  // "[worker] assignment topic:partition ..." on stderr
  // The records that may be committed now (consumes `records`).
  std::vector<bus::Message> committable(std::vector<bus::Message>& records) const;
  WorkerInfo worker_info();

  StageContext ctx_;
  int threads_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<PromptIntake> intake_;
  std::unique_ptr<GenerationTail> tail_;
  Reassembler reassembler_;
  std::vector<Step> ready_;
  std::map<std::string, CacheEntry> caches_;
  size_t kv_bytes_ = 0;
  std::vector<bus::TopicPartition> assignment_;
  // Records holding chunks of steps not yet complete: (request, step) -> (partition, offset)s.
  std::map<std::pair<std::string, uint64_t>, std::vector<std::pair<bus::TopicPartition, int64_t>>> partial_records_;

  // Shared with the heartbeat thread.
  std::mutex stats_mu_;
  nlohmann::json batch_stats_ = {{"batches", 0}, {"rows", 0}, {"max_rows", 0}, {"requests", 0}};
  std::atomic<size_t> kv_bytes_shared_{0};
  std::atomic<bool> stop_heartbeat_{false};
  std::thread heartbeat_;
  std::string layers_fingerprint_;
};

}  // namespace fleet
