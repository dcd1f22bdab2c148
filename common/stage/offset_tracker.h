#pragma once
// Which consumed offsets a stage worker may commit. A record counts as processed once what it
// caused is delivered; but a partition is committed only below its oldest chunk of a step still
// being assembled, so that a worker taking the partition over receives that step's chunks again.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bus/consumer.h"

namespace fleet {

class OffsetTracker {
 public:
  // A chunk of step (request, step) that is not yet complete, held at this record.
  void hold(const std::string& request, uint64_t step, const bus::Message& record);
  // The step completed, failed or was dropped: its chunks no longer hold commits back.
  void release_step(const std::string& request, uint64_t step);
  void release_request(const std::string& request);
  // Forgets every held chunk (they will be read again from the commit points).
  void clear_holds() { partial_.clear(); }
  // Forgets the partitions (revoked): their partial steps will be delivered to the new owner.
  void forget(const std::vector<bus::TopicPartition>& partitions);

  // Records processed (their outputs delivered) just now: advances commit_points(), the next
  // offset to commit per partition (never backwards).
  void processed(const std::vector<bus::Message>& records);
  const std::map<bus::TopicPartition, int64_t>& commit_points() const { return commit_points_; }

 private:
  std::map<std::pair<std::string, uint64_t>, std::vector<std::pair<bus::TopicPartition, int64_t>>> partial_;
  std::map<bus::TopicPartition, int64_t> commit_points_;
};

}  // namespace fleet
