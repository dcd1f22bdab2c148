#pragma once
// What a stage worker does with the records it consumed, without the consuming: prompt intake
// (stage 0), reassembly of activation chunks, control messages (release, replay requests),
// continuous batching over the stage's layers, the sampling tail (last stage), and recovery of
// lost KV caches by replay (stage/steps.h). Outputs go to the context's outbox; StageWorker
// feeds it from Kafka, tests feed it directly (tests/stage).
//
// Per batch of records:  process(records)
//   prompts record      -> PromptIntake: validate, record in Redis, prefill steps to stage 0
//   control record      -> (stage 0) cancel: a release that ends the request at the last stage
//   activation chunk    -> Reassembler -> whole step -> ready queue
//   release             -> drop the request's cache, pass it on
//   replay request      -> (stage 0) replay steps from Redis -> ready queue
//   ready queue         -> take_batch (stage 0: micro-batches) -> run_batch: forward over the layers; then the next
//                          stage's topic, or (last stage) GenerationTail samples and loops back
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/consumer.h"
#include "stage/generation_tail.h"
#include "stage/kv_cache_pool.h"
#include "stage/offset_tracker.h"
#include "stage/prompt_intake.h"
#include "stage/stage_context.h"
#include "stage/steps.h"

namespace fleet {

struct StageStats {
  int64_t batches = 0, rows = 0, max_rows = 0;
  int64_t requests = 0;          // requests with a KV cache here (stage 0: or admitted, first step pending)
  int64_t peak_requests = 0;     // the most at once
  int64_t kv_bytes = 0;
  int64_t replay_requests = 0;   // replays this stage asked for (it lacked a cache)
  int64_t replayed_rows = 0;     // rows of replay steps computed here
  int64_t evictions = 0;         // caches dropped to stay within the KV budget
  int64_t takeovers = 0;         // last stage: requests rebuilt from Redis with tokens out
  int64_t republished = 0;       // last stage: events found missing after a takeover
  // Replays that rebuilt a cache here, and the longest: from the moment a stage found the cache
  // short (or stage 0 the request stalled) to this stage's cache whole again (ms).
  int64_t recoveries = 0;
  double recovery_ms_max = 0;
  // One hop: from the sender's produce (sent_us) to this worker holding the whole step, over
  // the last 1,024 steps received (ms; sender and receiver clocks assumed equal: one host).
  double hop_ms_p50 = 0, hop_ms_p99 = 0;
  // Wall time spent computing batches (embedding, layers, head) since the start: with
  // the run's wall time, how busy the stage was; two stages' sum above the wall time means they
  // computed at the same time (pipelining).
  double busy_ms = 0;
  nlohmann::json to_json() const;
};

class StageProcessor {
 public:
  explicit StageProcessor(StageContext& ctx);
  // Handles records consumed together, then runs everything ready. Outputs are produced to the
  // outbox but not flushed; offsets() tells what may be committed once they are delivered.
  void process(const std::vector<bus::Message>& records);
  // process() in two halves, for a caller that gathers peers in between: ingest() handles the
  // records (steps join the ready queue), run() computes everything ready.
  void ingest(const std::vector<bus::Message>& records);
  void run();
  // Some ready step's peers (batch_id / batch_steps: computed together by the sender) have not
  // all arrived; the caller may poll for them for up to peer_wait_bound() before run().
  bool awaiting_peers() const;
  std::chrono::microseconds peer_wait_bound() const;
  // The partitions moved to another replica: forget their requests' caches, sampling state and
  // partially received steps (the new owner rebuilds what it needs by replay).
  void drop_partitions(const std::vector<bus::TopicPartition>& partitions);
  // A batch could not be completed (Redis unreachable, outputs not delivered): forgets what is
  // in flight (partial steps, queued steps, sampling state) so that the same records, read
  // again from offsets().commit_points(), are processed from scratch. KV caches stay: a step
  // computed again recomputes the same values.
  void reset_inflight();
  // Drops caches idle for timeouts.step_s and fails steps whose chunks stopped arriving.
  void sweep();

  OffsetTracker& offsets() { return offsets_; }
  StageStats stats() const;  // thread-safe (the heartbeat reads it)

 private:
  void handle_activation(const bus::Message& record);
  void handle_control(const bus::Message& record);  // stage 0: cancel records
  void run_ready();
  // Stage 0 of a pipeline of K stages cuts what is ready into micro-batches of about
  // max(requests in flight, rows ready) / K rows (at most batching.max_batch_tokens), so that
  // while stage k computes one, stage k-1 computes the next (docs/pipelining.md). Other
  // stages, and a single stage, take everything ready up to max_batch_tokens.
  int micro_batch_rows() const;
  void run_batch(std::vector<Step>& batch);
  void update_kv_handles(const std::vector<Step*>& steps, const std::vector<SeqChunk>& chunks);
  // Steps that cannot run here because the cache is short: ask for (or, at stage 0, make) a replay.
  void recover(Step& lost, int cached);
  // recovery_started_us: when the loss was found (carried by the replay steps; 0: not timed).
  void replay_from_redis(const std::string& id, int from, int end, bool sample, uint32_t generation_index,
                         int64_t recovery_started_us);
  // Drops what this worker holds for the request: cache, admission, chunks being reassembled,
  // queued steps, sampling state (a release, or its partition moved away). Offsets are the
  // caller's: a release frees its held ones, a partition drop forgets the partition's.
  void forget_request(const std::string& id);
  void release(const ActivationMsg& msg);
  uint32_t next_nonce();  // nonzero, distinct per replay this worker starts
  void publish_stats();

  StageContext& ctx_;
  std::unique_ptr<PromptIntake> intake_;
  std::unique_ptr<GenerationTail> tail_;
  Reassembler reassembler_;
  OffsetTracker offsets_;
  KvCachePool caches_;
  std::deque<Step> ready_;
  std::map<std::string, int32_t> partition_of_;  // request -> partition of this stage's topic
  std::map<std::string, KvCachePool::Clock::time_point> admitted_;  // stage 0: prompts admitted, no cache yet
  uint32_t replay_nonce_;
  double forward_seconds_avg_ = 0;  // moving average of a batch's forward pass
  StageStats stats_;
  std::vector<double> hop_ms_;  // ring of recent hop latencies
  size_t hop_next_ = 0;
  KvCachePool::Clock::time_point hop_percentiles_at_{};  // when hop_ms_p50/p99 were last computed
  mutable std::mutex stats_mu_;
  StageStats shared_stats_;
};

}  // namespace fleet
