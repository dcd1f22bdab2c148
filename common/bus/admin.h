#pragma once
// Topic administration: create topics if missing and wait until they are usable.
//
//   fleet::bus::ensure_topics(brokers, {{"fleet.prompts", 8}, {"fleet.results", 8}});
#include <memory>
#include <string>
#include <vector>

#include "bus/error.h"

namespace fleet::bus {

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = -1;  // -1: the broker's default.replication.factor
  Config configs = {};          // topic configs, e.g. {"retention.ms", "3600000"}
};

class Admin {
 public:
  explicit Admin(const std::string& brokers, const Config& overrides = {});
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // Creates the topics that do not exist, then waits until metadata shows every
  // topic with its partition count and a leader for each partition. A topic that
  // already exists with a different partition count is an error (keys would map to
  // other partitions than the deployment expects): BusError names it. Throws BusError
  // on a refused creation or when timeout_ms passes first.
  void ensure_topics(const std::vector<TopicSpec>& topics, int timeout_ms = 30000);

  // Number of partitions of an existing topic; BusError (UNKNOWN_TOPIC_OR_PART) if
  // the topic does not exist.
  int partition_count(const std::string& topic, int timeout_ms = 10000);

  // Whether the topic exists.
  bool exists(const std::string& topic, int timeout_ms = 10000);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Admin(brokers, overrides).ensure_topics(topics, timeout_ms). overrides: client properties,
// e.g. a deployment's kafka.properties (SASL/SSL settings).
void ensure_topics(const std::string& brokers, const std::vector<TopicSpec>& topics, int timeout_ms = 30000,
                   const Config& overrides = {});

}  // namespace fleet::bus
