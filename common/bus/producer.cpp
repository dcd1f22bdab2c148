#include "bus/producer.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "bus/internal.h"

namespace fleet::bus {

Config producer_defaults() {
  return {
      {"acks", "all"},
      {"enable.idempotence", "true"},
      {"linger.ms", "0"},  // 1 ms adds ~1.2 ms per hop (measured, docs/bus.md)
      {"socket.nagle.disable", "true"},
      {"partitioner", "murmur2_random"},
      {"message.max.bytes", "1000000"},
      {"compression.type", "none"},
      // A record waits out a broker outage of up to a minute, then is dropped (its delivery
      // fails): a stage re-reads its batch from its commit points, and a request whose step was
      // dropped is re-driven by stage 0 after timeouts.stall_s (stage/stall_redrive.h), rather
      // than the record arriving minutes late. (Before the re-drive, 300 s: a dropped loop-back
      // step stranded its request; 4 of 20 once in CI with 30 s.)
      {"message.timeout.ms", "60000"},
  };
}

namespace {
constexpr std::size_t kMaxReportedFailures = 5;
}

struct Producer::Impl : RdKafka::DeliveryReportCb, RdKafka::EventCb {
  std::unique_ptr<RdKafka::Producer> handle;
  int64_t message_max_bytes = 1000000;
  int queue_full_wait_ms = 60000;

  mutable std::mutex mu;
  std::size_t delivered = 0;
  std::size_t failed = 0;
  std::size_t failed_since_flush = 0;
  RdKafka::ErrorCode first_failure = RdKafka::ERR_NO_ERROR;
  std::vector<std::string> failures;  // first few since the last flush
  uint64_t produced = 0;              // sequence numbers 1..produced handed out (msg_opaque)
  uint64_t settled = 0;               // 1..settled all reported
  std::set<uint64_t> reported_early;  // reported, above settled + 1 (other partitions were faster)
  std::string last_error;             // last client-level error event (connection etc.)

  void dr_cb(RdKafka::Message& m) override {
    std::lock_guard lock(mu);
    settle(reinterpret_cast<uintptr_t>(m.msg_opaque()));
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      ++delivered;
      return;
    }
    ++failed;
    if (failed_since_flush++ == 0) first_failure = m.err();
    if (failures.size() < kMaxReportedFailures) {
      std::string key = m.key() ? *m.key() : std::string("(null)");
      if (key.size() > 64) key = key.substr(0, 64) + "...";
      failures.push_back("topic '" + m.topic_name() + "' key '" + key + "' (" + std::to_string(m.len()) +
                         " bytes): " + m.errstr() + " (" +
                         rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(m.err())) + ")");
    }
  }

  void settle(uint64_t seq) {  // mu held
    if (seq != settled + 1) {
      if (seq > settled) reported_early.insert(seq);
      return;
    }
    ++settled;
    while (!reported_early.empty() && *reported_early.begin() == settled + 1) {
      reported_early.erase(reported_early.begin());
      ++settled;
    }
  }

  void event_cb(RdKafka::Event& e) override {
    if (e.type() != RdKafka::Event::EVENT_ERROR) return;
    std::lock_guard lock(mu);
    last_error = e.str() + " (" + rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(e.err())) + ")";
  }

  // Throws if the producer hit a fatal error (it cannot be used any more).
  void check_fatal() const {
    char buf[512];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(handle->c_ptr(), buf, sizeof buf);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw BusError(std::string("bus: producer fatal error: ") + buf + " (" + rd_kafka_err2name(err) + ")",
                     err, false, true);
    }
  }
};

Producer::Producer(const std::string& brokers, const Config& overrides) : impl_(std::make_unique<Impl>()) {
  Config all = detail::merged(producer_defaults(), overrides);
  all["bootstrap.servers"] = brokers;
  auto conf = detail::make_conf({}, all);
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(impl_.get()), err) != RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(impl_.get()), err) != RdKafka::Conf::CONF_OK) {
    throw BusError("bus: producer callbacks: " + err, RdKafka::ERR__INVALID_ARG);
  }
  try {
    impl_->message_max_bytes = std::stoll(all.at("message.max.bytes"));
    impl_->queue_full_wait_ms = std::stoi(all.at("message.timeout.ms"));
  } catch (const std::exception&) {
    // Only used in error texts and the queue-full wait; librdkafka validated the values.
  }
  impl_->handle.reset(RdKafka::Producer::create(conf.get(), err));
  if (!impl_->handle)
    throw BusError("bus: cannot create producer for " + brokers + ": " + detail::scrub_secrets(err, all),
                   RdKafka::ERR__INVALID_ARG);
}

Producer::~Producer() {
  if (impl_ && impl_->handle) impl_->handle->flush(5000);
}

void Producer::produce(const std::string& topic, std::string_view key, std::string_view value) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(impl_->queue_full_wait_ms);
  std::unique_lock lock(impl_->mu);  // sequence numbers in produce order
  const uint64_t seq = ++impl_->produced;
  lock.unlock();
  for (;;) {
    RdKafka::ErrorCode err = impl_->handle->produce(
        topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
        value.size(), key.empty() ? nullptr : key.data(), key.size(), 0, nullptr,
        reinterpret_cast<void*>(static_cast<uintptr_t>(seq)));
    if (err == RdKafka::ERR_NO_ERROR) break;
    if (err == RdKafka::ERR__QUEUE_FULL && clock::now() < deadline) {
      impl_->handle->poll(10);  // make room by serving delivery reports
      continue;
    }
    lock.lock();
    impl_->settle(seq);  // never queued: nothing will report it
    lock.unlock();
    if (err == RdKafka::ERR__FATAL) impl_->check_fatal();
    std::string what = "bus: produce to topic '" + topic + "' (key " + std::to_string(key.size()) + " bytes, value " +
                       std::to_string(value.size()) + " bytes) failed: " + detail::describe(err);
    if (err == RdKafka::ERR_MSG_SIZE_TOO_LARGE) {
      what += "; the limit is message.max.bytes=" + std::to_string(impl_->message_max_bytes) +
              " (the broker accepts about 1 MB): split the payload into chunks";
    }
    throw BusError(what, err, detail::is_retriable(err));
  }
  impl_->handle->poll(0);
}

uint64_t Producer::produced() const {
  std::lock_guard lock(impl_->mu);
  return impl_->produced;
}

uint64_t Producer::settled() const {
  std::lock_guard lock(impl_->mu);
  return impl_->settled;
}

void Producer::poll_deliveries() {
  impl_->handle->poll(0);
  impl_->check_fatal();  // first: a fatal error (a fenced producer) explains the failed deliveries
  throw_if_failed();
}

void Producer::throw_if_failed() {
  std::unique_lock lock(impl_->mu);
  if (impl_->failed_since_flush > 0) {
    std::string what = "bus: " + std::to_string(impl_->failed_since_flush) + " message(s) failed delivery:";
    for (const auto& f : impl_->failures) what += "\n  " + f;
    if (impl_->failed_since_flush > impl_->failures.size()) what += "\n  ...";
    RdKafka::ErrorCode code = impl_->first_failure;
    impl_->failed_since_flush = 0;
    impl_->failures.clear();
    lock.unlock();
    throw BusError(what, code, detail::is_retriable(code));
  }
}

void Producer::flush(int timeout_ms) {
  RdKafka::ErrorCode rc = impl_->handle->flush(timeout_ms);
  impl_->check_fatal();
  throw_if_failed();
  std::unique_lock lock(impl_->mu);
  std::string last_error = impl_->last_error;
  lock.unlock();
  if (rc == RdKafka::ERR__TIMED_OUT) {
    throw BusError("bus: flush: " + std::to_string(impl_->handle->outq_len()) + " message(s) still undelivered after " +
                       std::to_string(timeout_ms) + " ms" +
                       (last_error.empty() ? std::string() : "; last client error: " + last_error),
                   rc, true);
  }
}

void Producer::poll(int timeout_ms) { impl_->handle->poll(timeout_ms); }

namespace {

// Throws the BusError for a transactional call's error (and frees it); does nothing for none.
void throw_txn_error(const char* call, RdKafka::Error* error) {
  if (!error) return;
  std::unique_ptr<RdKafka::Error> e(error);
  throw BusError(std::string("bus: ") + call + ": " + e->str() + " (" + e->name() + ")", e->code(), e->is_retriable(),
                 e->is_fatal());
}

}  // namespace

void Producer::init_transactions(int timeout_ms) {
  throw_txn_error("init_transactions", impl_->handle->init_transactions(timeout_ms));
}

void Producer::begin_transaction() { throw_txn_error("begin_transaction", impl_->handle->begin_transaction()); }

bool Producer::commit_transaction(int timeout_ms) {
  RdKafka::Error* error = impl_->handle->commit_transaction(timeout_ms);
  if (error && error->txn_requires_abort() && !error->is_fatal()) {
    delete error;
    abort_transaction(timeout_ms);
    return false;
  }
  throw_txn_error("commit_transaction", error);
  return true;
}

void Producer::abort_transaction(int timeout_ms) {
  throw_txn_error("abort_transaction", impl_->handle->abort_transaction(timeout_ms));
}

int Producer::partition_count(const std::string& topic, int timeout_ms) {
  // Retried until the deadline: a topic created a moment ago may not be in every broker's
  // metadata yet (a 3-broker cluster answered "not there" right after the creation).
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string err;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(impl_->handle.get(), topic, nullptr, err));
  if (!t) throw BusError("bus: topic handle for '" + topic + "': " + err, RdKafka::ERR__INVALID_ARG);
  RdKafka::ErrorCode last = RdKafka::ERR_UNKNOWN_TOPIC_OR_PART;
  for (;;) {
    RdKafka::Metadata* raw = nullptr;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    last = impl_->handle->metadata(false, t.get(), &raw, static_cast<int>(std::max<int64_t>(left, 1)));
    std::unique_ptr<RdKafka::Metadata> md(raw);
    if (last == RdKafka::ERR_NO_ERROR) {
      last = RdKafka::ERR_UNKNOWN_TOPIC_OR_PART;
      for (const RdKafka::TopicMetadata* tm : *md->topics())
        if (tm->topic() == topic) {
          last = tm->err();
          if (last == RdKafka::ERR_NO_ERROR && !tm->partitions()->empty()) return static_cast<int>(tm->partitions()->size());
        }
    }
    if (clock::now() >= deadline)
      throw BusError("bus: partitions of topic '" + topic + "': " + detail::describe(last), last,
                     detail::is_retriable(last));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // metadata propagating
  }
}

std::size_t Producer::in_flight() const { return static_cast<std::size_t>(impl_->handle->outq_len()); }

std::size_t Producer::delivered() const {
  std::lock_guard lock(impl_->mu);
  return impl_->delivered;
}

std::size_t Producer::failed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->failed;
}

}  // namespace fleet::bus
