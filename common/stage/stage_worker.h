#pragma once
// A stage worker: holds layers [a, b) of the model, consumes its stage's activation topic (and,
// as stage 0, the prompts topic) in the consumer group of its stage, hands what it reads to a
// StageProcessor, and commits offsets once the outputs are delivered (at-least-once; replay and
// idempotent steps make the result exact). Partitions that move to another replica (a replica
// joining or leaving) are handed over in the rebalance callback: outputs flushed, offsets
// committed, the moved requests' state dropped.
//
// Follow one token: PromptIntake (stage 0) -> stage.0 topic -> StageProcessor::run_batch on
// each stage -> GenerationTail (last stage) -> results topic, and back to stage.0.
#include <atomic>
#include <memory>
#include <set>
#include <string>

#include "bus/consumer.h"
#include "metrics/metrics_server.h"
#include "stage/fenced_outbox.h"
#include "stage/heartbeat.h"
#include "stage/stage_context.h"
#include "stage/stage_processor.h"
#include "stage/stall_redrive.h"

namespace fleet {

struct StageWorkerOptions {
  DeploymentConfig config;
  int stage = 0;
  std::string worker_id;  // default: make_worker_id(stage)
  int threads = 0;        // compute threads (0: all cores)
};

class StageWorker : public bus::RebalanceListener {
 public:
  // Loads the stage's layers, checks their fingerprints against the model's manifest in Redis
  // and its kernel variant against the stage's live replicas (throws naming what differs),
  // creates the topics, joins the consumer group and registers in Redis.
  explicit StageWorker(StageWorkerOptions options);
  ~StageWorker() override;
  // Until stop is set; then finishes the batch in hand, commits, leaves the group and
  // deregisters (its requests continue on the other replicas by replay).
  void run(const std::atomic<bool>& stop);
  const std::string& worker_id() const { return ctx_.worker_id; }

 private:
  void run_until(const std::atomic<bool>& stop);  // the loop; throws bus errors
  void commit(const std::map<bus::TopicPartition, int64_t>& next, bool sync);
  void on_assigned(const std::vector<bus::TopicPartition>& added) override;
  void on_revoked(const std::vector<bus::TopicPartition>& removed, bool lost) override;
  void check_numerics_match_replicas();
  // Stage 0: pauses the prompts partitions while the worker holds kv.max_requests requests (or
  // 90% of its KV budget) and resumes them below; steps and control records always flow.
  void apply_admission();
  template <typename Partitions>
  std::vector<bus::TopicPartition> prompts_among(const Partitions& partitions) const;
  // Stage 0: leaves out of `records` the prompts beyond `room` (what kv.max_requests leaves),
  // and seeks their partitions back so that they are read again once admission resumes.
  void defer_prompts_beyond_room(std::vector<bus::Message>& records, int64_t room);
  // After ingesting `records`: polls for the missing peers of ready steps (StageProcessor::
  // awaiting_peers) for up to the processor's peer_wait_bound(), ingesting what arrives.
  void gather_peers(std::vector<bus::Message>& records);
  // Records count as processed once what they caused is delivered: takes in delivery reports
  // and marks the batches whose outputs all arrived (in order). Throws BusError for a failure.
  void confirm_delivered();
  // Waits for every output, then marks every batch processed (before a commit that hands
  // partitions over or ends the worker).
  void deliver_all();
  // A batch failed for want of Redis or the broker: forget what is in flight, seek back to the
  // first record not processed, and back off (100 ms, doubling to 5 s) before reading again.
  void rewind(const std::vector<bus::Message>& records, const std::string& why);
  WorkerInfo worker_info() const;
  // Consumer lag per input topic into the metrics (every second, from the polling thread).
  void publish_lag();
  // The last stage: partitions whose producer was fenced (another worker took them over while
  // this one could not hear of it) are dropped like lost ones.
  void drop_fenced();

  StageContext ctx_;
  std::unique_ptr<StageProcessor> processor_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::unique_ptr<StallRedrive> stall_redrive_;  // stage 0
  std::set<bus::TopicPartition> owned_;
  FencedOutbox* fenced_outbox_ = nullptr;  // the last stage's ctx_.outbox; null on other stages
  // Batches computed whose outputs are not all delivered yet, oldest first: the records, and
  // the outbox's produced() count after them. The loop does not wait for the broker's acks
  // (flush): it computes the next batch while they travel (docs/pipelining.md).
  struct Unconfirmed {
    std::vector<bus::Message> records;
    uint64_t produced = 0;
    std::vector<std::string> ended;  // requests whose terminal events are among those records
  };
  std::deque<Unconfirmed> unconfirmed_;
  uint64_t losses_seen_ = 0;  // fenced_outbox_->losses() at the last confirm_delivered
  bool admission_paused_ = false;
  std::chrono::milliseconds backoff_{100};
  // GET /metrics (config metrics.port; none when -1). Last: destroyed first, while what its
  // callbacks read (processor_) still exists.
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

}  // namespace fleet
