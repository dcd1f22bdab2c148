#include "bus/topic_scan.h"

#include <chrono>
#include <map>
#include <memory>
#include <random>

#include <librdkafka/rdkafkacpp.h>

#include "bus/internal.h"

namespace fleet::bus {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& topic, const std::string& what, RdKafka::ErrorCode err) {
  throw BusError("bus: scan of '" + topic + "': " + what + ": " + detail::describe(err), err, detail::is_retriable(err));
}

}  // namespace

void scan_topic_since(const std::string& brokers, const std::string& topic, int64_t since_ms,
                      const std::function<void(const Message&)>& on_record, int timeout_ms,
                      const Config& overrides) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto ms_left = [&] {
    return static_cast<int>(std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
  };
  std::random_device rd;
  // Partition EOF events end a partition's scan whose last offsets hold no record a consumer
  // gets: the commit and abort markers of transactions (the last stage writes in them).
  Config cfg = detail::merged({{"enable.auto.commit", "false"},
                               {"enable.partition.eof", "true"},
                               {"isolation.level", "read_uncommitted"},  // as every fleet reader
                               {"fetch.wait.max.ms", "10"},
                               {"socket.nagle.disable", "true"}},
                              overrides);
  cfg["bootstrap.servers"] = brokers;
  cfg["group.id"] = "fleet-scan-" + std::to_string(rd()) + std::to_string(rd());
  auto conf = detail::make_conf({}, cfg);
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c)
    throw BusError("bus: cannot create a scan client for " + brokers + ": " + detail::scrub_secrets(err, cfg),
                   RdKafka::ERR__INVALID_ARG);

  RdKafka::Metadata* raw = nullptr;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(c.get(), topic, nullptr, err));
  RdKafka::ErrorCode rc = c->metadata(false, t.get(), &raw, ms_left());
  std::unique_ptr<RdKafka::Metadata> md(raw);
  if (rc != RdKafka::ERR_NO_ERROR) fail(topic, "metadata", rc);
  int partitions = 0;
  for (const auto* tm : *md->topics())
    if (tm->topic() == topic) partitions = static_cast<int>(tm->partitions()->size());
  if (partitions == 0) fail(topic, "no partitions", RdKafka::ERR_UNKNOWN_TOPIC_OR_PART);

  // Start: the first offset at or after since_ms; end: the high watermark now.
  detail::PartitionListGuard starts;
  for (int p = 0; p < partitions; ++p) starts.list.push_back(RdKafka::TopicPartition::create(topic, p, since_ms));
  rc = c->offsetsForTimes(starts.list, ms_left());
  if (rc != RdKafka::ERR_NO_ERROR) fail(topic, "offsets for time " + std::to_string(since_ms), rc);
  std::map<int, int64_t> end;
  detail::PartitionListGuard assign;
  for (RdKafka::TopicPartition* tp : starts.list) {
    int64_t low = 0, high = 0;
    rc = c->query_watermark_offsets(topic, tp->partition(), &low, &high, ms_left());
    if (rc != RdKafka::ERR_NO_ERROR) fail(topic, "watermarks of partition " + std::to_string(tp->partition()), rc);
    int64_t from = tp->offset() < 0 ? high : tp->offset();  // -1: nothing written since since_ms
    if (from >= high) continue;
    end[tp->partition()] = high;
    assign.list.push_back(RdKafka::TopicPartition::create(topic, tp->partition(), from));
  }
  if (end.empty()) return;
  rc = c->assign(assign.list);
  if (rc != RdKafka::ERR_NO_ERROR) fail(topic, "assign", rc);
  while (!end.empty()) {
    std::unique_ptr<RdKafka::Message> m(c->consume(ms_left()));
    if (m->err() == RdKafka::ERR__TIMED_OUT) {
      if (Clock::now() >= deadline) fail(topic, "records not read within " + std::to_string(timeout_ms) + " ms", m->err());
      continue;
    }
    auto it = end.find(m->partition());
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {  // m->offset(): the position, past any marker
      if (it != end.end() && m->offset() >= it->second) end.erase(it);
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) fail(topic, "consume", m->err());
    if (it == end.end()) continue;
    Message out;
    out.topic = topic;
    out.partition = m->partition();
    out.offset = m->offset();
    if (m->key_pointer()) out.key.assign(static_cast<const char*>(m->key_pointer()), m->key_len());
    if (m->payload()) out.value.assign(static_cast<const char*>(m->payload()), m->len());
    on_record(out);
    if (m->offset() + 1 >= it->second) end.erase(it);
  }
  c->close();
}

}  // namespace fleet::bus
