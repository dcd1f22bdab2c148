#pragma once
// Where a stage worker's outputs go: records for Kafka topics (the next stage's activations,
// result events, dead letters), and what it can learn of results published before it took a
// request over. KafkaOutbox is the real one; MemoryOutbox keeps the records in memory so that
// intake, batching, the sampling tail and replay are tested without a broker (tests/stage).
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bus/producer.h"

namespace fleet {

// What the results topic already holds for one request.
struct PublishedResults {
  std::set<int> token_indices;  // "token" events seen
  bool terminal = false;        // a "done" or "error" event seen
  // A terminal event that ends an admitted request: a done event, or an error other than an
  // intake rejection (a record reusing the id gets a duplicate_id error under the same key).
  // Its finish_reason (done) or "<code>: <message>" (error).
  bool ended = false, ended_by_error = false;
  std::string ended_reason;
};

class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual void produce(const std::string& topic, const std::string& key, const std::string& value) = 0;
  // Waits until everything produced so far is delivered; throws when something was not.
  virtual void flush() = 0;
  // Delivery without waiting: records produced so far, and how many of the first ones are
  // known delivered; poll_deliveries() takes in delivery reports and throws as flush() does
  // when a record failed.
  virtual uint64_t produced() const = 0;
  virtual uint64_t delivered_count() const = 0;
  virtual void poll_deliveries() = 0;
  // The result events for `ids` on `results_topic` among records written since since_ms
  // (wall clock). Used once per request a worker takes over, never on the normal path.
  virtual std::map<std::string, PublishedResults> published_results(const std::string& results_topic,
                                                                      const std::set<std::string>& ids,
                                                                      int64_t since_ms) = 0;
};

class KafkaOutbox : public Outbox {
 public:
  KafkaOutbox(std::string brokers, uint64_t max_message_bytes, bus::Config properties = {});
  void produce(const std::string& topic, const std::string& key, const std::string& value) override;
  void flush() override;
  uint64_t produced() const override { return producer_.produced(); }
  uint64_t delivered_count() const override { return producer_.settled(); }
  void poll_deliveries() override { producer_.poll_deliveries(); }
  std::map<std::string, PublishedResults> published_results(const std::string& results_topic,
                                                            const std::set<std::string>& ids,
                                                            int64_t since_ms) override;

 private:
  std::string brokers_;
  bus::Config properties_;  // the deployment's kafka.properties (SASL/SSL), also for the scans
  bus::Producer producer_;
};

class MemoryOutbox : public Outbox {
 public:
  struct Record {
    std::string topic, key, value;
  };
  using Log = std::vector<Record>;
  // `delivered` stands for the broker: the log of everything delivered, which outboxes (the
  // workers of one in-memory fleet) may share.
  explicit MemoryOutbox(std::shared_ptr<Log> delivered = std::make_shared<Log>()) : delivered_(std::move(delivered)) {}
  void produce(const std::string& topic, const std::string& key, const std::string& value) override {
    pending.push_back({topic, key, value});
  }
  void flush() override {  // delivers what is pending
    delivered_->insert(delivered_->end(), pending.begin(), pending.end());
    flushed_ += pending.size();
    pending.clear();
  }
  uint64_t produced() const override { return flushed_ + pending.size(); }
  uint64_t delivered_count() const override { return flushed_; }
  void poll_deliveries() override { flush(); }
  std::map<std::string, PublishedResults> published_results(const std::string& results_topic,
                                                            const std::set<std::string>& ids,
                                                            int64_t since_ms) override;
  const Log& delivered() const { return *delivered_; }

  Log pending;  // produced, not yet delivered (lost if the worker dies now)
  bool scans_fail = false;  // published_results throws, as a scan does while the broker is away

 private:
  std::shared_ptr<Log> delivered_;
  uint64_t flushed_ = 0;
};

// What the results topic holds for `ids` among records written since since_ms (a scan of
// the topic: KafkaOutbox and FencedOutbox).
std::map<std::string, PublishedResults> scan_published_results(const std::string& brokers,
                                                               const bus::Config& properties,
                                                               const std::string& results_topic,
                                                               const std::set<std::string>& ids, int64_t since_ms);

// Reads one result event record into `out` (by id); false when it is not one.
bool note_published_result(const std::string& value, const std::set<std::string>& ids,
                           std::map<std::string, PublishedResults>& out);

}  // namespace fleet
