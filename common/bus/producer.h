#pragma once
// Keyed, asynchronous Kafka producer over librdkafka.
//
//   fleet::bus::Producer p(brokers);
//   p.produce("fleet.prompts", id, json);   // queued; returns at once
//   p.flush(10000);                         // waits; throws if any delivery failed
//
// Delivery is at-least-once with idempotence (no duplicates from internal retries).
// A key always maps to the same partition (murmur2, as Java clients do), so all the
// messages of one key are delivered in order.
// Thread-safe: several threads may call produce() on one Producer.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "bus/error.h"

namespace fleet::bus {

class Producer {
 public:
  // Defaults (each replaceable through overrides, see producer_defaults()):
  //   acks=all, enable.idempotence=true, linger.ms=0, socket.nagle.disable=true,
  //   partitioner=murmur2_random, message.max.bytes=1000000 (under the broker's
  //   1048588), compression.type=none, message.timeout.ms=60000.
  explicit Producer(const std::string& brokers, const Config& overrides = {});
  ~Producer();  // flushes for up to 5 s; undelivered messages are then dropped
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Queues one message. An empty key is sent as a null key (random partition).
  // Throws BusError at once for what cannot succeed: a message larger than
  // message.max.bytes (code MSG_SIZE_TOO_LARGE), an unknown partition, a fatal
  // producer error, or the local queue staying full for message.timeout.ms.
  // Broker-side failures are collected and reported by flush().
  void produce(const std::string& topic, std::string_view key, std::string_view value);

  // Waits until every queued message is delivered or failed. Throws BusError when
  // any message failed since the last flush (first failure's code, count, and the
  // first few errors in the text) or when messages are still in flight after
  // timeout_ms (code _TIMED_OUT, with the last broker error seen).
  void flush(int timeout_ms);

  // Serves delivery reports (produce() also does, without waiting).
  void poll(int timeout_ms = 0);

  // Delivery without waiting (a stage worker keeps computing while its outputs travel):
  // produced() counts produce() calls; settled() how many of the first ones, in produce order,
  // have their delivery reports. poll_deliveries() serves the reports without waiting and throws
  // BusError as flush() does when a message failed.
  uint64_t produced() const;
  uint64_t settled() const;
  void poll_deliveries();

  // Transactions, for a producer made with a "transactional.id" property. fleet uses them as a
  // fence: init_transactions() with the id of a live producer elsewhere aborts that one's open
  // transaction and makes the brokers refuse its later writes (it gets a fatal error). Records
  // are visible to read_uncommitted readers as soon as they are written, committed or not.
  // Each throws BusError; fatal() when this producer was fenced (or hit another fatal error).
  void init_transactions(int timeout_ms);
  void begin_transaction();
  // Commits the open transaction (flushing it first). When a write in it failed the
  // transaction is aborted instead and false is returned; begin the next one either way.
  bool commit_transaction(int timeout_ms);
  void abort_transaction(int timeout_ms);
  // Partitions of a topic, from the brokers' metadata.
  int partition_count(const std::string& topic, int timeout_ms);

  // Messages queued or in flight.
  std::size_t in_flight() const;
  // Successful / failed deliveries so far.
  std::size_t delivered() const;
  std::size_t failed() const;

 private:
  void throw_if_failed();  // a delivery failed since the last check: BusError (and forgets it)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The defaults the constructor applies before overrides.
Config producer_defaults();

}  // namespace fleet::bus
