#pragma once
// Group consumer over librdkafka with manual, at-least-once offset commits.
//
//   fleet::bus::Consumer c(brokers, "stage-1", {"fleet.stage1"});
//   while (running) {
//     auto batch = c.poll_batch(64, 100);
//     process(batch);
//     c.commit(batch);          // commit only what has been processed
//   }
//   c.close();
//
// Consumers sharing a group id split the topics' partitions between them; each
// partition is read in offset order by one member. After a restart (or a rebalance)
// a partition resumes from its last committed offset, so anything processed but not
// committed is delivered again: processing must tolerate duplicates.
// Not thread-safe: use one Consumer from one thread.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bus/error.h"

namespace fleet::bus {

struct Message {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string key;    // empty for a null key
  std::string value;  // raw bytes
  int64_t timestamp_ms = -1;  // producer create time (ms since epoch), -1 if unknown
};

struct TopicPartition {
  std::string topic;
  int32_t partition = -1;
  bool operator==(const TopicPartition&) const = default;
  auto operator<=>(const TopicPartition&) const = default;
};

// Told about partition ownership changes. Called on the polling thread, from inside poll(),
// before ownership moves, so a listener may flush its outputs and call Consumer::commit()
// for what it processed (not when lost: the partitions may already belong to another member).
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  virtual void on_assigned(const std::vector<TopicPartition>& added) = 0;
  virtual void on_revoked(const std::vector<TopicPartition>& removed, bool lost) = 0;
};

class Consumer {
 public:
  // Subscribes to topics in group group_id. Defaults (see consumer_defaults()):
  //   enable.auto.commit=false, enable.auto.offset.store=false,
  //   auto.offset.reset=earliest, fetch.wait.max.ms=100, fetch.error.backoff.ms=50,
  //   socket.nagle.disable=true, enable.partition.eof=false, isolation.level=read_uncommitted,
  //   partition.assignment.strategy=cooperative-sticky (a rebalance moves only the
  //   partitions that change owner; the others keep being consumed),
  //   session.timeout.ms=3000, heartbeat.interval.ms=500 (a member that dies without
  //   close() has its partitions taken over 3.0-3.5 s later, measured; the broker must
  //   allow it: group.min.session.timeout.ms <= 3000, as scripts/stack.sh sets).
  // Subscribing to a topic that does not exist is reported by poll() (the broker's
  // UNKNOWN_TOPIC_OR_PART), not waited for: create topics first (Admin::ensure_topics).
  //
  // listener (optional, not owned; must outlive the Consumer or its close()) hears of
  // every non-empty ownership change: on_assigned(added) after the partitions are
  // assigned, on_revoked(removed, lost) before they are given up, including the
  // remaining ones at close() (lost=false). lost=true: this member was out of the group
  // (its session expired, e.g. it stalled) and the partitions may be another's already.
  // Calls come from poll(), poll_batch() and close(), on the calling thread; commit()
  // works inside them. An exception thrown by the listener does not stop the ownership
  // change: poll() throws it (or the next poll(), if this one returned a message;
  // poll_batch() returns early) or close() does.
  Consumer(const std::string& brokers, const std::string& group_id, const std::vector<std::string>& topics,
           const Config& overrides = {}, RebalanceListener* listener = nullptr);
  ~Consumer();  // close()
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // The next message, or nullopt when none arrived within timeout_ms. Polling also
  // drives group membership (joins, rebalances, heartbeats are served by librdkafka's
  // threads, but assignments are applied here): poll regularly.
  // Throws BusError for every error librdkafka reports to the consumer (unknown
  // topic, offset out of range, broker unreachable, failed async commit, fatal
  // errors, a refused (un)assign in a rebalance); BusError::retriable() tells which ones
  // a later poll may get past. A rebalance listener's exception is rethrown as it was.
  std::optional<Message> poll(int timeout_ms);

  // Up to max messages: waits up to timeout_ms for the first, then takes what is
  // already fetched without waiting. Empty on timeout.
  std::vector<Message> poll_batch(std::size_t max, int timeout_ms);

  // Commits (synchronously) the position after the given message(s): for each
  // partition, the highest offset among them + 1. Call after processing. Throws
  // BusError if the broker refuses (e.g. the partition was reassigned in a rebalance:
  // then the new owner will see those messages again).
  void commit(const Message& processed);
  void commit(const std::vector<Message>& processed);

  // The same, without waiting for the broker; a failure is thrown by a later poll().
  void commit_async(const std::vector<Message>& processed);

  // Stops fetching from these partitions until resume(); records already fetched from them
  // and not yet returned are fetched again after resume (nothing is skipped). Pausing does not
  // leave the group. A partition assigned anew after a rebalance starts unpaused.
  void pause(const std::vector<TopicPartition>& partitions);
  void resume(const std::vector<TopicPartition>& partitions);
  // The next poll() returns the partition's records from `offset` on (records fetched but not
  // yet returned are dropped and fetched again). The partition must be assigned.
  void seek(const TopicPartition& partition, int64_t offset, int timeout_ms = 5000);

  // The partitions currently assigned to this member (changes on rebalance).
  std::vector<TopicPartition> assignment() const;

  // Per assigned partition: records not yet returned by poll, i.e. the high watermark as last
  // fetched (no broker round trip) minus the position. Partitions without both are left out.
  std::map<TopicPartition, int64_t> lag() const;

  // The last committed offset of a partition for this group (-1 if none).
  int64_t committed(const TopicPartition& tp, int timeout_ms = 10000) const;

  // Leaves the group (its partitions move to the other members at once; the listener,
  // if any, first gets on_revoked(remaining, lost=false) and may commit) and releases
  // the client. Messages fetched but not returned yet are dropped (not committed: the
  // next owner gets them). Usually takes milliseconds; a member whose JoinGroup is
  // pending waits for that rebalance to end (~1 s measured, at most ~5 s).
  // Idempotent; later calls other than close() throw.
  void close();

  // Follower consumers (no group membership, no rebalance race): every partition of
  // `topic` is assign()ed directly, under a throwaway group.id that never joins.
  //
  // from_end: reads the partition count from metadata, queries each partition's high
  // watermark from its leader (synchronously) and assigns every partition at that
  // offset before returning, so everything produced after from_end() returns is
  // seen, and nothing produced before it. from_beginning: every partition from its
  // first retained offset.
  //   auto c = fleet::bus::Consumer::from_end(brokers, "fleet.results");
  //   producer.produce("fleet.prompts", id, request);   // its results will be seen
  // The topic must exist: BusError (UNKNOWN_TOPIC_OR_PART) names it when it does not
  // appear within timeout_ms; a partition without a leader or watermark by then is a
  // BusError too. commit()/committed() are meaningless on these (throwaway group).
  static std::unique_ptr<Consumer> from_end(const std::string& brokers, const std::string& topic,
                                            const Config& overrides = {}, int timeout_ms = 10000);
  static std::unique_ptr<Consumer> from_beginning(const std::string& brokers, const std::string& topic,
                                                  const Config& overrides = {}, int timeout_ms = 10000);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;

  struct AssignTag {};
  Consumer(AssignTag, const std::string& brokers, const std::string& topic, bool at_end, const Config& overrides,
           int timeout_ms);
};

// The defaults the constructor applies before overrides.
Config consumer_defaults();

}  // namespace fleet::bus
