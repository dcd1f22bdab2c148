#include "stage/fenced_outbox.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <set>
#include <utility>

#include "log/log.h"

namespace fleet {

namespace {
constexpr int kTxnTimeoutMs = 30000;  // init / commit / abort calls
}

FencedOutbox::FencedOutbox(std::string brokers, uint64_t max_message_bytes, bus::Config properties,
                           std::string input_topic, std::string transactional_prefix)
    : brokers_(std::move(brokers)),
      input_topic_(std::move(input_topic)),
      prefix_(std::move(transactional_prefix)),
      properties_(std::move(properties)) {
  const bus::Config sized = bus::with(properties_, {{"message.max.bytes", std::to_string(max_message_bytes)}});
  plain_ = std::make_shared<bus::Producer>(brokers_, sized);
  // A transaction must outlive the producer's message timeout (librdkafka refuses otherwise),
  // and should outlive any broker outage the workers ride out: the coordinator aborts one open
  // longer (a transaction is committed about once a second otherwise) and bumps the epoch,
  // which this worker would take for a fence. 5 minutes, or the message timeout if longer.
  const std::string message_timeout = properties_.count("message.timeout.ms") ? properties_.at("message.timeout.ms")
                                                                              : bus::producer_defaults().at("message.timeout.ms");
  txn_properties_ = bus::with(
      sized, {{"transaction.timeout.ms", std::to_string(std::max<long long>(300000, std::stoll(message_timeout)))}});
  partitions_ = plain_->partition_count(input_topic_, 30000);
}

FencedOutbox::~FencedOutbox() = default;

int FencedOutbox::partition_of(const std::string& key) const {
  // The producers' partitioner (murmur2_random): murmur2 of the key, as Java clients do.
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions_, nullptr, nullptr);
}

void FencedOutbox::own(int partition) {
  owned_.erase(partition);  // assigned again without a revocation between: a new producer all the same
  const std::string id = prefix_ + ".p" + std::to_string(partition);
  auto producer = std::make_shared<bus::Producer>(brokers_, bus::with(txn_properties_, {{"transactional.id", id}}));
  producer->init_transactions(kTxnTimeoutMs);  // fences the previous owner's producer
  producer->begin_transaction();
  owned_[partition] = {std::move(producer), std::chrono::steady_clock::now(), false};
  std::erase(fenced_, partition);
}

void FencedOutbox::disown(int partition, bool commit) {
  auto it = owned_.find(partition);
  if (it == owned_.end()) return;
  if (commit && it->second.written) {
    try {
      it->second.producer->commit_transaction(kTxnTimeoutMs);
    } catch (const bus::BusError& e) {
      log::logf(log::Level::Warn, "handing over partition %d: its transaction: %s", partition, e.what());
    }
  }
  owned_.erase(it);  // the producer closes once its records are settled (unsettled_ holds it)
}

template <typename F>
bool FencedOutbox::guarded(int partition, F&& f) {
  try {
    f(*owned_.at(partition).producer);
    return true;
  } catch (const bus::BusError& e) {
    if (!e.fatal()) throw;
    fenced(partition, e.what());
    return false;
  }
}

void FencedOutbox::fenced(int partition, const std::string& why) {
  log::logf(log::Level::Warn, "partition %d of %s: this worker's producer was fenced (%s); another worker owns the partition now, "
            "so this one publishes nothing more for its requests", partition, input_topic_.c_str(), why.c_str());
  owned_.erase(partition);
  fenced_.push_back(partition);
  ++fences_;
}

std::vector<int> FencedOutbox::take_fenced() { return std::exchange(fenced_, {}); }

void FencedOutbox::next_transaction(int partition) {
  Owned& o = owned_.at(partition);
  if (!o.producer->commit_transaction(kTxnTimeoutMs))
    log::logf(log::Level::Warn, "partition %d of %s: a write in its transaction failed; aborted it", partition,
              input_topic_.c_str());
  o.producer->begin_transaction();
  o.begun = std::chrono::steady_clock::now();
  o.written = false;
}

void FencedOutbox::commit_due(std::chrono::milliseconds age) {
  const auto now = std::chrono::steady_clock::now();
  std::vector<int> due;
  for (const auto& [p, o] : owned_)
    if (o.written && now - o.begun >= age) due.push_back(p);
  for (int p : due) {
    guarded(p, [&](bus::Producer&) { next_transaction(p); });
  }
}

void FencedOutbox::produce(const std::string& topic, const std::string& key, const std::string& value) {
  const int p = key.empty() ? -1 : partition_of(key);
  auto it = owned_.find(p);
  if (it == owned_.end()) {
    if (std::find(fenced_.begin(), fenced_.end(), p) != fenced_.end()) {  // not ours any more
      drop();
      return;
    }
    plain_->produce(topic, key, value);
    unsettled_.push_back({plain_, plain_->produced()});
    ++produced_;
    return;
  }
  const bool sent = guarded(p, [&](bus::Producer& pr) {
    try {
      pr.produce(topic, key, value);
    } catch (const bus::BusError& e) {
      if (e.code() != RD_KAFKA_RESP_ERR__STATE) throw;
      // No transaction takes writes: an earlier commit timed out (this one finishes it), or a
      // write failed (this aborts the transaction). Either way the next one begins.
      next_transaction(p);
      pr.produce(topic, key, value);
    }
    owned_.at(p).written = true;
    unsettled_.push_back({owned_.at(p).producer, pr.produced()});
    ++produced_;
  });
  if (!sent) drop();
}

void FencedOutbox::drop() {  // counted as produced and settled, in order: nothing will report it
  unsettled_.push_back({nullptr, 0});
  ++produced_;
  ++dropped_;
}

void FencedOutbox::settle() {
  while (!unsettled_.empty() &&
         (!unsettled_.front().producer || unsettled_.front().producer->settled() >= unsettled_.front().seq)) {
    unsettled_.pop_front();
    ++settled_;
  }
}

uint64_t FencedOutbox::delivered_count() const {
  const_cast<FencedOutbox*>(this)->settle();
  return settled_;
}

void FencedOutbox::poll_deliveries() {
  plain_->poll_deliveries();
  std::vector<int> parts;
  for (const auto& [p, o] : owned_) parts.push_back(p);
  for (int p : parts) guarded(p, [](bus::Producer& pr) { pr.poll_deliveries(); });
  // Producers no longer owned (handed over, lost or fenced) still report their last records.
  std::set<bus::Producer*> polled;
  for (const Sent& s : unsettled_)
    if (s.producer && polled.insert(s.producer.get()).second) {
      try {
        s.producer->poll(0);
      } catch (const bus::BusError&) {
      }
    }
  settle();
}

void FencedOutbox::flush() {
  plain_->flush(30000);
  std::vector<int> parts;
  for (const auto& [p, o] : owned_) parts.push_back(p);
  for (int p : parts) guarded(p, [](bus::Producer& pr) { pr.flush(30000); });
  std::set<bus::Producer*> flushed;
  for (const Sent& s : unsettled_)
    if (s.producer && flushed.insert(s.producer.get()).second) {
      try {
        s.producer->flush(30000);
      } catch (const bus::BusError&) {  // a producer no longer ours: its failures are not ours either
      }
    }
  settle();
}

std::map<std::string, PublishedResults> FencedOutbox::published_results(const std::string& results_topic,
                                                                        const std::set<std::string>& ids,
                                                                        int64_t since_ms) {
  return scan_published_results(brokers_, properties_, results_topic, ids, since_ms);
}

}  // namespace fleet
