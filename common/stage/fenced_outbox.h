#pragma once
// The last stage's outbox: what it publishes for a request (token and terminal events, the next
// decode step to stage 0) goes through a transactional producer of the input partition the
// request's steps arrive on, so that the worker owning that partition next fences this one
// (docs/replay.md, "Fencing"). A zombie (a worker paused past its session, or whose
// assignment was lost while it kept computing) therefore cannot publish a token its successor
// also publishes: the brokers refuse its writes once the successor started its producer.
//
//   FencedOutbox out(brokers, max_bytes, props, "fleet.stage1", "fleet-stage1");
//   out.own(3);              // partition 3 assigned: its producer starts (fencing the last owner)
//   out.produce(results, id, event);       // id's steps arrive on partition 3: in its transaction
//   out.commit_due(1s);      // commits transactions open for at least 1 s
//   out.take_fenced();       // partitions whose producer was fenced: another worker owns them
//   out.disown(3, true);     // handed over: its transaction committed, producer closed
//
// Records are visible to read_uncommitted readers as soon as they are written; the
// transactions exist only to fence, and are committed about once a second.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stage/outbox.h"

namespace fleet {

class FencedOutbox : public Outbox {
 public:
  // input_topic: the stage topic whose partitions the worker owns; transactional_prefix: the
  // same for every replica of the stage (the consumer group's name), so that partition p's
  // producer has one transactional id whoever owns p.
  FencedOutbox(std::string brokers, uint64_t max_message_bytes, bus::Config properties, std::string input_topic,
               std::string transactional_prefix);
  ~FencedOutbox() override;

  // Partition p of the input topic assigned: starts its producer, which fences the previous
  // owner's (and aborts that one's open transaction), this worker's own earlier one included.
  // Blocks for a few broker round trips.
  void own(int partition);
  // Partition p revoked: commits its transaction when `commit` (a clean hand-over), and closes
  // its producer. Nothing when p is not owned.
  void disown(int partition, bool commit);
  // Commits every transaction that holds records and is at least `age` old, and begins the next.
  void commit_due(std::chrono::milliseconds age);
  // Partitions whose producer was fenced (or failed for good) since the last call. Their records
  // since are dropped: the worker must drop their requests too (another worker owns them).
  std::vector<int> take_fenced();
  // The input partition whose producer carries key's records.
  int partition_of(const std::string& key) const;

  void produce(const std::string& topic, const std::string& key, const std::string& value) override;
  void flush() override;
  uint64_t produced() const override { return produced_; }
  uint64_t delivered_count() const override;
  void poll_deliveries() override;
  std::map<std::string, PublishedResults> published_results(const std::string& results_topic,
                                                            const std::set<std::string>& ids,
                                                            int64_t since_ms) override;

  uint64_t dropped() const { return dropped_; }  // records not sent: their partition was fenced
  // Counts fences and dropped records: when it moves, records settled since may not be on the
  // topic (a fenced producer's records fail, and dropped ones were never sent), although
  // delivered_count() counts them as settled.
  uint64_t losses() const { return fences_ + dropped_; }

 private:
  struct Owned {
    std::shared_ptr<bus::Producer> producer;
    std::chrono::steady_clock::time_point begun;
    bool written = false;  // records in the open transaction
  };
  struct Sent {  // one produce() in order: which producer (null: dropped), and its sequence number there
    std::shared_ptr<bus::Producer> producer;
    uint64_t seq = 0;
  };
  bus::Producer& producer_for(const std::string& key, int* partition);
  void fenced(int partition, const std::string& why);  // drops p's producer
  // Runs f on partition p's producer; a fatal error there fences p instead of propagating.
  template <typename F>
  bool guarded(int partition, F&& f);
  // Commits partition p's transaction (aborts it when a write in it failed) and begins the next.
  void next_transaction(int partition);
  void settle();
  void drop();  // a record not sent (its partition was fenced)

  std::string brokers_, input_topic_, prefix_;
  bus::Config properties_;
  bus::Config txn_properties_;
  std::shared_ptr<bus::Producer> plain_;  // records of no owned partition (a one-stage fleet's intake)
  int partitions_ = 0;
  std::map<int, Owned> owned_;
  std::vector<int> fenced_;
  mutable std::deque<Sent> unsettled_;
  uint64_t produced_ = 0, dropped_ = 0, fences_ = 0;
  mutable uint64_t settled_ = 0;
};

}  // namespace fleet
