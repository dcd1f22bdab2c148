#include "bus/consumer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <random>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "bus/internal.h"

namespace fleet::bus {

Config consumer_defaults() {
  return {
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"fetch.wait.max.ms", "100"},
      {"fetch.error.backoff.ms", "50"},
      {"socket.nagle.disable", "true"},
      {"enable.partition.eof", "false"},
      // Records as soon as they are written: the last stage writes in transactions that only
      // fence zombies and are committed about once a second (stage/fenced_outbox.h).
      {"isolation.level", "read_uncommitted"},
      // Rebalances move only the partitions that change owner (incremental assign).
      {"partition.assignment.strategy", "cooperative-sticky"},
      // A member killed without close() is declared dead after session.timeout.ms
      // without a heartbeat; the survivors learn of it at their next heartbeat and
      // rejoin. Measured: takeover 3.x s after SIGKILL (docs/bus.md). Needs the
      // broker's group.min.session.timeout.ms <= 3000 (Kafka's default is 6000).
      {"session.timeout.ms", "3000"},
      {"heartbeat.interval.ms", "500"},
  };
}

namespace {

// How long close() serves a group member's callbacks while it leaves (normally a few ms).
constexpr int kLeaveTimeoutMs = 5000;

std::string name_of(RdKafka::ErrorCode code) { return rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code)); }

}  // namespace

struct Consumer::Impl : RdKafka::OffsetCommitCb {
  std::unique_ptr<RdKafka::KafkaConsumer> handle;
  std::string group_id;
  std::string topics_text;
  detail::Rebalancer rebalancer;
  std::optional<BusError> async_commit_error;  // thrown by the next poll()
  bool subscribed = false;                     // a group member (not a follower)

  Impl(const std::string& group, RebalanceListener* listener) : group_id(group), rebalancer(group, listener) {}

  bool error_pending() const { return rebalancer.error_pending() || async_commit_error; }

  // Throws (and forgets) the first pending error: listener, rebalance, async commit.
  void throw_pending() {
    rebalancer.throw_pending();
    if (async_commit_error) {
      BusError e = *async_commit_error;
      async_commit_error.reset();
      throw e;
    }
  }

  void offset_commit_cb(RdKafka::ErrorCode err, std::vector<RdKafka::TopicPartition*>& offsets) override {
    if (err == RdKafka::ERR__NO_OFFSET) return;  // nothing to commit
    std::string detail;
    RdKafka::ErrorCode code = err;
    for (const auto* tp : offsets) {
      if (tp->err() == RdKafka::ERR_NO_ERROR) continue;
      if (code == RdKafka::ERR_NO_ERROR) code = tp->err();
      detail += " " + tp->topic() + "[" + std::to_string(tp->partition()) + "]@" + std::to_string(tp->offset()) +
                ": " + detail::describe(tp->err()) + ";";
    }
    if (code == RdKafka::ERR_NO_ERROR) return;
    async_commit_error.emplace("bus: offset commit for group '" + group_id + "' failed: " + detail::describe(code) +
                                   (detail.empty() ? "" : " --" + detail),
                               code, detail::is_retriable(code));
  }

  RdKafka::KafkaConsumer& live() const {
    if (!handle) throw BusError("bus: consumer of group '" + group_id + "' is closed", RdKafka::ERR__STATE);
    return *handle;
  }

  [[noreturn]] void throw_error(const RdKafka::Message& m) const {
    RdKafka::ErrorCode err = m.err();
    if (err == RdKafka::ERR__FATAL) {
      char buf[512];
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(handle->c_ptr(), buf, sizeof buf);
      throw BusError("bus: consumer of group '" + group_id + "' hit a fatal error: " + buf + " (" +
                         rd_kafka_err2name(orig) + ")",
                     orig, false, true);
    }
    std::string where = m.topic_name().empty() ? "topics " + topics_text
                                               : "topic '" + m.topic_name() + "' [" + std::to_string(m.partition()) + "]";
    throw BusError("bus: consume from " + where + " (group '" + group_id + "') failed: " + m.errstr() + " (" +
                       name_of(err) + ")",
                   err, detail::is_retriable(err));
  }

  // Commits the highest offset + 1 per partition among msgs.
  void commit(const std::vector<const Message*>& msgs, bool sync) {
    RdKafka::KafkaConsumer& c = live();
    std::map<TopicPartition, int64_t> next;
    for (const Message* m : msgs) {
      int64_t& n = next[{m->topic, m->partition}];
      n = std::max(n, m->offset + 1);
    }
    if (next.empty()) return;
    detail::PartitionListGuard offsets;
    for (const auto& [tp, off] : next) offsets.list.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition, off));
    if (!sync) {
      RdKafka::ErrorCode err = c.commitAsync(offsets.list);
      if (err != RdKafka::ERR_NO_ERROR) {
        throw BusError("bus: async offset commit for group '" + group_id + "' failed: " + detail::describe(err), err,
                       detail::is_retriable(err));
      }
      return;
    }
    // A sync commit also runs offset_commit_cb; its result is reported here instead.
    std::optional<BusError> earlier = async_commit_error;
    RdKafka::ErrorCode err = c.commitSync(offsets.list);
    async_commit_error = earlier;
    std::string detail;
    for (const auto* tp : offsets.list) {
      if (tp->err() == RdKafka::ERR_NO_ERROR) continue;
      if (err == RdKafka::ERR_NO_ERROR) err = tp->err();
      detail += " " + tp->topic() + "[" + std::to_string(tp->partition()) + "]@" + std::to_string(tp->offset()) +
                ": " + detail::describe(tp->err()) + ";";
    }
    if (err != RdKafka::ERR_NO_ERROR) {
      throw BusError("bus: offset commit for group '" + group_id + "' failed: " + detail::describe(err) +
                         (detail.empty() ? "" : " --" + detail),
                     err, detail::is_retriable(err));
    }
  }

  // Creates the librdkafka consumer for group_id with the defaults, overrides and callbacks.
  void create_handle(const std::string& brokers, const Config& overrides, const std::string& what) {
    Config all = detail::merged(consumer_defaults(), overrides);
    all["bootstrap.servers"] = brokers;
    all["group.id"] = group_id;
    auto conf = detail::make_conf({}, all);
    std::string err;
    if (conf->set("offset_commit_cb", static_cast<RdKafka::OffsetCommitCb*>(this), err) != RdKafka::Conf::CONF_OK ||
        conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(&rebalancer), err) != RdKafka::Conf::CONF_OK) {
      throw BusError("bus: consumer callbacks: " + err, RdKafka::ERR__INVALID_ARG);
    }
    handle.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!handle)
      throw BusError("bus: cannot create " + what + ": " + detail::scrub_secrets(err, all), RdKafka::ERR__INVALID_ARG);
  }
};

Consumer::Consumer(const std::string& brokers, const std::string& group_id, const std::vector<std::string>& topics,
                   const Config& overrides, RebalanceListener* listener)
    : impl_(std::make_unique<Impl>(group_id, listener)) {
  for (const auto& t : topics) impl_->topics_text += (impl_->topics_text.empty() ? "'" : ", '") + t + "'";
  if (topics.empty()) throw BusError("bus: consumer of group '" + group_id + "' needs at least one topic", RdKafka::ERR__INVALID_ARG);
  impl_->create_handle(brokers, overrides, "consumer for " + brokers + " (group '" + group_id + "')");
  RdKafka::ErrorCode rc = impl_->handle->subscribe(topics);
  if (rc != RdKafka::ERR_NO_ERROR) {
    throw BusError("bus: subscribe to " + impl_->topics_text + " (group '" + group_id + "') failed: " + detail::describe(rc), rc);
  }
  impl_->subscribed = true;
}

Consumer::~Consumer() {
  try {
    close();
  } catch (...) {
    // close() on a destructor path: nothing left to report to.
  }
}

std::optional<Message> Consumer::poll(int timeout_ms) {
  using clock = std::chrono::steady_clock;
  RdKafka::KafkaConsumer& c = impl_->live();
  impl_->throw_pending();
  const auto deadline = clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count());
    std::unique_ptr<RdKafka::Message> m(c.consume(std::max(left, 0)));
    // An error raised by a callback inside consume() (rebalance, listener, async commit) is
    // thrown now, unless a message came with it: that one is returned first (it is already
    // past the position) and the error is thrown by the next poll().
    if (m->err() != RdKafka::ERR_NO_ERROR) impl_->throw_pending();
    switch (m->err()) {
      case RdKafka::ERR_NO_ERROR: {
        Message out;
        out.topic = m->topic_name();
        out.partition = m->partition();
        out.offset = m->offset();
        if (m->key_pointer()) out.key.assign(static_cast<const char*>(m->key_pointer()), m->key_len());
        if (m->payload()) out.value.assign(static_cast<const char*>(m->payload()), m->len());
        RdKafka::MessageTimestamp ts = m->timestamp();
        out.timestamp_ms = ts.type == RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE ? -1 : ts.timestamp;
        return out;
      }
      case RdKafka::ERR__TIMED_OUT:
        if (left <= 0) return std::nullopt;
        continue;
      case RdKafka::ERR__PARTITION_EOF:  // only if enabled by an override: not an error
        if (left <= 0) return std::nullopt;
        continue;
      default:
        impl_->throw_error(*m);
    }
  }
}

std::vector<Message> Consumer::poll_batch(std::size_t max, int timeout_ms) {
  std::vector<Message> out;
  if (max == 0) return out;
  auto first = poll(timeout_ms);
  if (!first) return out;
  out.push_back(std::move(*first));
  while (out.size() < max && !impl_->error_pending()) {  // a pending error: for the next call
    auto next = poll(0);
    if (!next) break;
    out.push_back(std::move(*next));
  }
  return out;
}

void Consumer::commit(const Message& processed) { impl_->commit({&processed}, true); }

void Consumer::commit(const std::vector<Message>& processed) {
  std::vector<const Message*> ptrs;
  for (const auto& m : processed) ptrs.push_back(&m);
  impl_->commit(ptrs, true);
}

void Consumer::commit_async(const std::vector<Message>& processed) {
  std::vector<const Message*> ptrs;
  for (const auto& m : processed) ptrs.push_back(&m);
  impl_->commit(ptrs, false);
}

namespace {
void pause_or_resume(RdKafka::KafkaConsumer& c, const std::vector<TopicPartition>& partitions, bool pause,
                     const std::string& group_id) {
  if (partitions.empty()) return;
  detail::PartitionListGuard parts;
  for (const TopicPartition& tp : partitions) parts.list.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition));
  RdKafka::ErrorCode err = pause ? c.pause(parts.list) : c.resume(parts.list);
  if (err != RdKafka::ERR_NO_ERROR)
    throw BusError(std::string("bus: ") + (pause ? "pause" : "resume") + " of " + std::to_string(partitions.size()) +
                       " partitions (group '" + group_id + "'): " + detail::describe(err),
                   err, detail::is_retriable(err));
}
}  // namespace

void Consumer::pause(const std::vector<TopicPartition>& partitions) {
  pause_or_resume(impl_->live(), partitions, true, impl_->group_id);
}

void Consumer::resume(const std::vector<TopicPartition>& partitions) {
  pause_or_resume(impl_->live(), partitions, false, impl_->group_id);
}

void Consumer::seek(const TopicPartition& partition, int64_t offset, int timeout_ms) {
  std::unique_ptr<RdKafka::TopicPartition> tp(RdKafka::TopicPartition::create(partition.topic, partition.partition, offset));
  RdKafka::ErrorCode err = impl_->live().seek(*tp, timeout_ms);
  if (err != RdKafka::ERR_NO_ERROR)
    throw BusError("bus: seek of " + partition.topic + "[" + std::to_string(partition.partition) + "] to " +
                       std::to_string(offset) + " (group '" + impl_->group_id + "'): " + detail::describe(err),
                   err, detail::is_retriable(err));
}

std::vector<TopicPartition> Consumer::assignment() const {
  detail::PartitionListGuard parts;
  RdKafka::ErrorCode err = impl_->live().assignment(parts.list);
  if (err != RdKafka::ERR_NO_ERROR) {
    throw BusError("bus: assignment of group '" + impl_->group_id + "': " + detail::describe(err), err);
  }
  return detail::to_topic_partitions(parts.list);
}

std::map<TopicPartition, int64_t> Consumer::lag() const {
  std::map<TopicPartition, int64_t> out;
  detail::PartitionListGuard parts;
  if (impl_->live().assignment(parts.list) != RdKafka::ERR_NO_ERROR || parts.list.empty()) return out;
  if (impl_->live().position(parts.list) != RdKafka::ERR_NO_ERROR) return out;
  for (const RdKafka::TopicPartition* tp : parts.list) {
    int64_t low = -1, high = -1;
    if (tp->offset() < 0 ||
        impl_->live().get_watermark_offsets(tp->topic(), tp->partition(), &low, &high) != RdKafka::ERR_NO_ERROR ||
        high < 0)
      continue;
    out[{tp->topic(), tp->partition()}] = std::max<int64_t>(0, high - tp->offset());
  }
  return out;
}

int64_t Consumer::committed(const TopicPartition& tp, int timeout_ms) const {
  detail::PartitionListGuard parts;
  parts.list.push_back(RdKafka::TopicPartition::create(tp.topic, tp.partition));
  RdKafka::ErrorCode err = impl_->live().committed(parts.list, timeout_ms);
  if (err == RdKafka::ERR_NO_ERROR) err = parts.list[0]->err();
  if (err != RdKafka::ERR_NO_ERROR) {
    throw BusError("bus: committed offset of " + tp.topic + "[" + std::to_string(tp.partition) + "] for group '" +
                       impl_->group_id + "': " + detail::describe(err),
                   err, detail::is_retriable(err));
  }
  int64_t off = parts.list[0]->offset();
  return off < 0 ? -1 : off;
}

namespace {

std::string throwaway_group_id() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return std::string("fleet-follow-") + buf;
}

}  // namespace

Consumer::Consumer(AssignTag, const std::string& brokers, const std::string& topic, bool at_end,
                   const Config& overrides, int timeout_ms)
    : impl_(std::make_unique<Impl>(throwaway_group_id(), nullptr)) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 1));
  auto ms_left = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return static_cast<int>(std::max<int64_t>(left, 1));
  };
  impl_->topics_text = "'" + topic + "'";
  // group.id is required by KafkaConsumer; this one is never joined (assign only).
  impl_->create_handle(brokers, overrides, "follower consumer of '" + topic + "' for " + brokers);
  RdKafka::KafkaConsumer& c = *impl_->handle;

  // Partition count (a request for all topics never auto-creates one). Retried until the
  // deadline: a topic created a moment ago may not be in metadata yet.
  int partitions = 0;
  RdKafka::ErrorCode last = RdKafka::ERR__TIMED_OUT;  // what the latest metadata answer said
  for (;;) {
    RdKafka::Metadata* raw = nullptr;
    RdKafka::ErrorCode rc = c.metadata(true, nullptr, &raw, ms_left());
    std::unique_ptr<RdKafka::Metadata> md(raw);
    if (rc != RdKafka::ERR_NO_ERROR) {
      // A request cut short by the deadline keeps the previous answer (e.g. "does not exist").
      if (last == RdKafka::ERR__TIMED_OUT || rc != RdKafka::ERR__TIMED_OUT) last = rc;
    } else {
      last = RdKafka::ERR_UNKNOWN_TOPIC_OR_PART;
      for (const auto* t : *md->topics()) {
        if (t->topic() != topic) continue;
        last = t->err();
        if (last == RdKafka::ERR_NO_ERROR) partitions = static_cast<int>(t->partitions()->size());
      }
      if (last == RdKafka::ERR_NO_ERROR && partitions > 0) break;
    }
    if (clock::now() >= deadline) {
      throw BusError("bus: follower consumer: topic '" + topic + "' on " + brokers +
                         (last == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART ? " does not exist"
                                                                     : " is not usable: " + detail::describe(last)),
                     last, detail::is_retriable(last));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  detail::PartitionListGuard parts;
  for (int p = 0; p < partitions; ++p) {
    int64_t offset = RdKafka::Topic::OFFSET_BEGINNING;
    if (at_end) {
      // The high watermark from the partition's leader (synchronous); retried while the
      // leader is still being elected.
      for (;;) {
        int64_t low = -1, high = -1;
        last = c.query_watermark_offsets(topic, p, &low, &high, ms_left());
        if (last == RdKafka::ERR_NO_ERROR && high >= 0) {
          offset = high;
          break;
        }
        if (clock::now() >= deadline || !detail::is_retriable(last)) {
          throw BusError("bus: follower consumer: high watermark of '" + topic + "' [" + std::to_string(p) +
                             "]: " + detail::describe(last),
                         last, detail::is_retriable(last));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    parts.list.push_back(RdKafka::TopicPartition::create(topic, p, offset));
  }
  RdKafka::ErrorCode rc = c.assign(parts.list);
  if (rc != RdKafka::ERR_NO_ERROR) {
    throw BusError("bus: assign of '" + topic + "' (" + std::to_string(partitions) + " partitions) failed: " +
                       detail::describe(rc),
                   rc);
  }
}

std::unique_ptr<Consumer> Consumer::from_end(const std::string& brokers, const std::string& topic,
                                             const Config& overrides, int timeout_ms) {
  return std::unique_ptr<Consumer>(new Consumer(AssignTag{}, brokers, topic, true, overrides, timeout_ms));
}

std::unique_ptr<Consumer> Consumer::from_beginning(const std::string& brokers, const std::string& topic,
                                                   const Config& overrides, int timeout_ms) {
  return std::unique_ptr<Consumer>(new Consumer(AssignTag{}, brokers, topic, false, overrides, timeout_ms));
}

void Consumer::close() {
  if (!impl_ || !impl_->handle) return;
  // A member leaves by unsubscribe() first, its callbacks served here (the listener revokes
  // what is left and may still commit); KafkaConsumer::close() alone mishandles a
  // cooperative rebalance in progress in librdkafka 2.0.2 (see Rebalancer::leave).
  if (impl_->subscribed) impl_->rebalancer.leave(*impl_->handle, kLeaveTimeoutMs);
  impl_->rebalancer.closing();
  RdKafka::ErrorCode err = impl_->handle->close();
  impl_->handle.reset();
  impl_->async_commit_error.reset();
  impl_->throw_pending();
  if (err != RdKafka::ERR_NO_ERROR) {
    throw BusError("bus: closing consumer of group '" + impl_->group_id + "': " + detail::describe(err), err);
  }
}

}  // namespace fleet::bus
