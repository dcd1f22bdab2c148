#pragma once
// A whole fleet in one process for fast tests of the stage layer: one StageProcessor per stage
// (stories260K cut into stages), each writing to a MemoryOutbox, a real redis-server for the
// request state, and in place of Kafka a queue per topic that deliver() hands to the stage that
// consumes it. A test can lose a stage's state (a crash), drop or repeat records, and look at
// everything that was published.
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bus/consumer.h"
#include "stage/stage_processor.h"
#include "state/redis_server.h"

namespace fleet::test {

struct MemoryFleetOptions {
  std::vector<std::pair<int, int>> stages = {{0, 2}, {2, 4}, {4, 5}};
  int prefill_chunk = 256;
  int max_batch_tokens = 512;
  std::string kv_budget = "64MiB";
};

class MemoryFleet {
 public:
  explicit MemoryFleet(MemoryFleetOptions options = {});
  ~MemoryFleet();

  const DeploymentConfig& config() const { return config_; }
  StageContext& context(int stage) { return *contexts_[static_cast<size_t>(stage)]; }
  StageProcessor& processor(int stage) { return *processors_[static_cast<size_t>(stage)]; }
  RequestStore& requests() { return *requests_; }

  // Appends a record to a topic (as a client would).
  void publish(const std::string& topic, const std::string& key, const std::string& value);
  // Moves what the stages produced into the topic queues, then hands each stage everything
  // queued on its input topics (one process() call per stage). False when nothing moved.
  bool deliver_once();
  // deliver_once() until nothing moves (or max_rounds); returns the rounds run.
  int deliver_all(int max_rounds = 100000);
  // A new worker for the stage: fresh caches and sampling state (as after kill -9 + restart).
  // What the old one produced is delivered first, unless lose_pending: it died before its
  // outputs of the last batch were delivered, so that batch (never committed) is delivered
  // again to the new worker.
  void restart_stage(int stage, bool lose_pending = false);
  // Records queued (not yet delivered) on a topic; a test may edit them.
  std::deque<bus::Message>& queue(const std::string& topic) { return queues_[topic]; }
  // Records the stage produced that are not delivered yet (deliver_once() delivers them).
  size_t pending(int stage) { return static_cast<MemoryOutbox&>(*context(stage).outbox).pending.size(); }
  // Every record ever published to the results topic, in order.
  std::vector<std::string> results_log() const;
  std::vector<std::string> dead_letters() const;

 private:
  std::unique_ptr<StageContext> make_context(int stage);
  void collect();

  MemoryFleetOptions options_;
  std::unique_ptr<RedisServer> redis_server_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<RequestStore> requests_;
  DeploymentConfig config_;
  std::vector<std::unique_ptr<StageContext>> contexts_;
  std::vector<std::unique_ptr<StageProcessor>> processors_;
  std::map<std::string, std::deque<bus::Message>> queues_;
  std::map<std::string, int64_t> next_offset_;
  std::shared_ptr<MemoryOutbox::Log> broker_ = std::make_shared<MemoryOutbox::Log>();  // everything delivered
  std::vector<std::vector<bus::Message>> last_batch_;  // per stage: the last records handed to it
  size_t routed_ = 0;  // broker_ entries already queued for their consumers
  int restarts_ = 0;
};

// The prompts record of a request.
std::string prompt_record(const std::string& id, const std::string& prompt, int max_tokens, double temperature = 0,
                          uint64_t seed = 0);

}  // namespace fleet::test
