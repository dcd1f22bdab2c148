// fleet_bus against a real Kafka broker (scripts/stack.sh up, once per binary).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"
#include "support/stack_env.h"
#include "test_support.h"

namespace fleet::bus {
namespace {

using fleet::test::error_of;
using fleet::test::kafka_brokers;
using fleet::test::unique_name;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = std::chrono::seconds(60);

// Java's Utils.murmur2 (DefaultPartitioner for keyed records).
int32_t java_murmur2(const std::string& key) {
  const auto* data = reinterpret_cast<const uint8_t*>(key.data());
  const int32_t length = static_cast<int32_t>(key.size());
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(length);
  const int32_t length4 = length / 4;
  for (int32_t i = 0; i < length4; i++) {
    const int32_t i4 = i * 4;
    uint32_t k = data[i4 + 0] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (static_cast<uint32_t>(data[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length % 4) {
    case 3: h ^= static_cast<uint32_t>(data[(length & ~3) + 2]) << 16; [[fallthrough]];
    case 2: h ^= static_cast<uint32_t>(data[(length & ~3) + 1]) << 8; [[fallthrough]];
    case 1: h ^= data[length & ~3]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

int java_partition(const std::string& key, int partitions) { return (java_murmur2(key) & 0x7fffffff) % partitions; }

// Polls c until n messages arrived or the deadline passed; commits each batch after
// "processing" it (appending it to the result).
std::vector<Message> consume_n(Consumer& c, std::size_t n, bool commit = true) {
  std::vector<Message> got;
  const auto deadline = Clock::now() + kDeadline;
  while (got.size() < n && Clock::now() < deadline) {
    auto batch = c.poll_batch(256, 200);
    got.insert(got.end(), batch.begin(), batch.end());
    if (commit && !batch.empty()) c.commit(batch);
  }
  return got;
}

// Polls for window_ms and returns whatever arrives (expected: nothing).
std::vector<Message> drain(Consumer& c, int window_ms) {
  std::vector<Message> got;
  const auto deadline = Clock::now() + std::chrono::milliseconds(window_ms);
  while (Clock::now() < deadline) {
    auto batch = c.poll_batch(256, 100);
    got.insert(got.end(), batch.begin(), batch.end());
  }
  return got;
}

std::string random_bytes(std::size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(BusAdmin, EnsureTopicsCreatesWaitsAndChecksPartitionCounts) {
  const std::string brokers = kafka_brokers();
  Admin admin(brokers);
  const std::string a = unique_name("admin-a"), b = unique_name("admin-b");
  EXPECT_FALSE(admin.exists(a));
  admin.ensure_topics({{a, 3}, {b, 1}});
  EXPECT_TRUE(admin.exists(a));
  EXPECT_EQ(admin.partition_count(a), 3);
  EXPECT_EQ(admin.partition_count(b), 1);
  // Idempotent when the topics already match.
  EXPECT_NO_THROW(admin.ensure_topics({{a, 3}, {b, 1}}));
  // A different partition count is refused by name.
  std::string err = error_of([&] { admin.ensure_topics({{a, 5}}); });
  EXPECT_NE(err.find("'" + a + "' exists with 3 partition(s)"), std::string::npos) << err;
  err = error_of([&] { admin.partition_count("no-such-topic-xyz"); });
  EXPECT_NE(err.find("'no-such-topic-xyz' does not exist"), std::string::npos) << err;
  // The free function does the same.
  const std::string c = unique_name("admin-c");
  ensure_topics(brokers, {{c, 2}});
  EXPECT_EQ(admin.partition_count(c), 2);
}

TEST(BusProduceConsume, KeyedMessagesComeBackInOrderPerKeyOnJavaPartitions) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("keyed");
  const int partitions = 4;
  ensure_topics(brokers, {{topic, partitions}});

  const int keys = 24, per_key = 80;
  const auto before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  Producer p(brokers);
  for (int i = 0; i < per_key; ++i) {
    for (int k = 0; k < keys; ++k) p.produce(topic, "req-" + std::to_string(k), std::to_string(i));
  }
  p.flush(30000);
  EXPECT_EQ(p.delivered(), static_cast<std::size_t>(keys * per_key));
  EXPECT_EQ(p.failed(), 0u);
  EXPECT_EQ(p.in_flight(), 0u);

  Consumer c(brokers, unique_name("g-keyed"), {topic});
  auto got = consume_n(c, keys * per_key);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(keys * per_key));

  std::map<std::string, std::vector<int>> seq;
  std::map<std::string, std::set<int32_t>> parts;
  std::set<int32_t> used;
  for (const auto& m : got) {
    EXPECT_EQ(m.topic, topic);
    EXPECT_GE(m.timestamp_ms, before_ms - 1000);
    seq[m.key].push_back(std::stoi(m.value));
    parts[m.key].insert(m.partition);
    used.insert(m.partition);
  }
  ASSERT_EQ(seq.size(), static_cast<std::size_t>(keys));
  std::vector<int> expect(per_key);
  for (int i = 0; i < per_key; ++i) expect[i] = i;
  for (const auto& [key, values] : seq) {
    EXPECT_EQ(values, expect) << "key " << key << " out of order";
    ASSERT_EQ(parts[key].size(), 1u) << "key " << key << " on several partitions";
    EXPECT_EQ(*parts[key].begin(), java_partition(key, partitions)) << "key " << key;
  }
  EXPECT_GT(used.size(), 1u) << "all keys landed on one partition";
  EXPECT_TRUE(drain(c, 500).empty());
}

TEST(BusProduceConsume, NineHundredKilobyteMessageGoesThrough) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("large");
  ensure_topics(brokers, {{topic, 1}});
  const std::string value = random_bytes(900 * 1024, 7);
  Producer p(brokers);
  p.produce(topic, "big", value);
  p.produce(topic, "small", "after");
  p.flush(30000);
  Consumer c(brokers, unique_name("g-large"), {topic});
  auto got = consume_n(c, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "big");
  EXPECT_EQ(got[0].value.size(), value.size());
  EXPECT_TRUE(got[0].value == value) << "900 KB payload corrupted";
  EXPECT_EQ(got[1].value, "after");
}

TEST(BusProduceConsume, MessageAboveTheLimitFailsWithAClearError) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("toolarge");
  ensure_topics(brokers, {{topic, 1}});
  Producer p(brokers);
  // Refused locally against message.max.bytes, at produce().
  try {
    p.produce(topic, "k", std::string(1100 * 1000, 'x'));
    ADD_FAILURE() << "a 1.1 MB message was accepted";
  } catch (const BusError& e) {
    EXPECT_EQ(e.code_name(), "MSG_SIZE_TOO_LARGE");
    EXPECT_FALSE(e.retriable());
    const std::string what = e.what();
    EXPECT_NE(what.find("topic '" + topic + "'"), std::string::npos) << what;
    EXPECT_NE(what.find("message.max.bytes=1000000"), std::string::npos) << what;
    EXPECT_NE(what.find("1100000 bytes"), std::string::npos) << what;
  }
  EXPECT_NO_THROW(p.flush(10000));  // nothing was queued, nothing failed

  // A client limit raised above the broker's: the broker refuses, flush() reports it.
  Producer loose(brokers, {{"message.max.bytes", "3000000"}});
  loose.produce(topic, "k", std::string(1500 * 1000, 'y'));
  try {
    loose.flush(30000);
    ADD_FAILURE() << "the broker accepted a 1.5 MB message";
  } catch (const BusError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(e.code_name() == "MSG_SIZE_TOO_LARGE" || e.code_name() == "RECORD_LIST_TOO_LARGE") << what;
    EXPECT_NE(what.find("1 message(s) failed delivery"), std::string::npos) << what;
    EXPECT_NE(what.find("topic '" + topic + "'"), std::string::npos) << what;
  }
  EXPECT_EQ(loose.failed(), 1u);
  EXPECT_NO_THROW(loose.flush(1000));  // a failure is reported once
}

TEST(BusGroup, TwoConsumersSplitPartitionsAndConsumeEachMessageOnce) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("split");
  const int partitions = 4;
  ensure_topics(brokers, {{topic, partitions}});
  const std::string group = unique_name("g-split");
  Consumer c1(brokers, group, {topic});
  Consumer c2(brokers, group, {topic});

  // Poll both until the group has settled: disjoint, non-empty, covering all.
  std::vector<TopicPartition> a1, a2;
  const auto deadline = Clock::now() + kDeadline;
  for (;;) {
    ASSERT_FALSE(c1.poll(50).has_value());
    ASSERT_FALSE(c2.poll(50).has_value());
    a1 = c1.assignment();
    a2 = c2.assignment();
    std::set<TopicPartition> all(a1.begin(), a1.end());
    all.insert(a2.begin(), a2.end());
    if (!a1.empty() && !a2.empty() && all.size() == a1.size() + a2.size() &&
        all.size() == static_cast<std::size_t>(partitions)) {
      break;
    }
    ASSERT_LT(Clock::now(), deadline) << "group never split the partitions: " << a1.size() << " + " << a2.size();
  }

  const int n = 1000;
  Producer p(brokers);
  for (int i = 0; i < n; ++i) p.produce(topic, "key-" + std::to_string(i % 97), std::to_string(i));
  p.flush(30000);

  std::vector<int> count(n, 0);
  std::size_t total = 0, from1 = 0, from2 = 0;
  const std::set<TopicPartition> own1(a1.begin(), a1.end()), own2(a2.begin(), a2.end());
  const auto until = Clock::now() + kDeadline;
  while (total < static_cast<std::size_t>(n) && Clock::now() < until) {
    for (Consumer* c : {&c1, &c2}) {
      auto batch = c->poll_batch(128, 50);
      for (const auto& m : batch) {
        ++count.at(std::stoi(m.value));
        ++total;
        const auto& own = c == &c1 ? own1 : own2;
        EXPECT_TRUE(own.count({m.topic, m.partition})) << "partition " << m.partition << " read by a non-owner";
        (c == &c1 ? from1 : from2) += 1;
      }
      if (!batch.empty()) c->commit(batch);
    }
  }
  ASSERT_EQ(total, static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(count[i], 1) << "message " << i;
  EXPECT_GT(from1, 0u);
  EXPECT_GT(from2, 0u);
  EXPECT_TRUE(drain(c1, 300).empty());
  EXPECT_TRUE(drain(c2, 300).empty());
}

TEST(BusGroup, CommittedOffsetsSurviveARestart) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("restart");
  ensure_topics(brokers, {{topic, 2}});
  const std::string group = unique_name("g-restart");
  const int n = 300;
  Producer p(brokers);
  for (int i = 0; i < n; ++i) p.produce(topic, std::string("k").append(std::to_string(i % 7)), std::to_string(i));
  p.flush(30000);

  std::set<int> processed;
  std::map<int32_t, int64_t> committed_next;
  {
    Consumer c(brokers, group, {topic});
    auto got = consume_n(c, n, /*commit=*/false);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
    // "Process" and commit the first 120 received (a prefix of each partition).
    std::vector<Message> done(got.begin(), got.begin() + 120);
    for (const auto& m : done) {
      processed.insert(std::stoi(m.value));
      committed_next[m.partition] = std::max(committed_next[m.partition], m.offset + 1);
    }
    c.commit(done);
    for (const auto& [part, next] : committed_next) EXPECT_EQ(c.committed({topic, part}), next);
    c.close();
    EXPECT_NE(error_of([&] { c.poll(10); }).find("is closed"), std::string::npos);
  }
  Consumer again(brokers, group, {topic});
  auto rest = consume_n(again, n - processed.size());
  ASSERT_EQ(rest.size(), n - processed.size());
  std::set<int> seen;
  for (const auto& m : rest) {
    int v = std::stoi(m.value);
    EXPECT_FALSE(processed.count(v)) << "committed message " << v << " delivered again";
    EXPECT_TRUE(seen.insert(v).second) << "message " << v << " twice";
    EXPECT_GE(m.offset, committed_next[m.partition]);
  }
  EXPECT_EQ(processed.size() + seen.size(), static_cast<std::size_t>(n));
  EXPECT_TRUE(drain(again, 500).empty());
}

TEST(BusFollow, FromEndSeesEverythingProducedAfterItAndNothingBefore) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("follow");
  const int partitions = 4, n = 60;
  ensure_topics(brokers, {{topic, partitions}});
  Producer p(brokers);
  // (std::string(prefix) += ..., not prefix + to_string(): GCC 12's -Wrestrict false positive.)
  auto tagged = [](const char* prefix, int i) { return std::string(prefix) += std::to_string(i); };
  for (int i = 0; i < n; ++i) p.produce(topic, tagged("k", i % 7), tagged("before-", i));
  p.flush(30000);

  auto c = Consumer::from_end(brokers, topic);
  // Assigned at once (no group join to wait for): every partition.
  EXPECT_EQ(c->assignment().size(), static_cast<std::size_t>(partitions));
  for (int i = 0; i < n; ++i) p.produce(topic, tagged("k", i % 7), tagged("after-", i));
  p.flush(30000);

  auto got = consume_n(*c, n, /*commit=*/false);
  auto extra = drain(*c, 500);
  got.insert(got.end(), extra.begin(), extra.end());
  std::set<std::string> values;
  for (const auto& m : got) {
    EXPECT_EQ(m.value.rfind("after-", 0), 0u) << "saw a message produced before from_end(): " << m.value;
    values.insert(m.value);
  }
  EXPECT_EQ(got.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(values.size(), static_cast<std::size_t>(n));

  // A second follower created now sees neither batch; from_beginning sees both.
  auto late = Consumer::from_end(brokers, topic);
  EXPECT_TRUE(drain(*late, 500).empty());
  auto all = Consumer::from_beginning(brokers, topic);
  auto everything = consume_n(*all, 2 * n, /*commit=*/false);
  EXPECT_EQ(everything.size(), static_cast<std::size_t>(2 * n));
}

TEST(BusFollow, FromEndOfAMissingTopicNamesIt) {
  const std::string topic = unique_name("follow-missing");
  std::string err = error_of([&] { Consumer::from_end(kafka_brokers(), topic, {}, 1500); });
  EXPECT_NE(err.find("'" + topic + "'"), std::string::npos) << err;
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
}

TEST(BusErrors, UnknownTopicIsReportedByPoll) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("missing");
  Consumer c(brokers, unique_name("g-missing"), {topic});
  std::string err;
  const auto deadline = Clock::now() + kDeadline;
  while (err.empty() && Clock::now() < deadline) {
    err = error_of([&] { c.poll(200); });
  }
  EXPECT_NE(err.find(topic), std::string::npos) << err;
  EXPECT_NE(err.find("UNKNOWN_TOPIC_OR_PART"), std::string::npos) << err;
}

TEST(BusErrors, UnreachableBrokerFailsFlushWithTheCause) {
  Producer p("127.0.0.1:1", {{"message.timeout.ms", "1500"}});
  p.produce("t", "k", "v");
  std::string err = error_of([&] { p.flush(10000); });
  EXPECT_NE(err.find("1 message(s) failed delivery"), std::string::npos) << err;
  EXPECT_NE(err.find("MSG_TIMED_OUT"), std::string::npos) << err;
  Producer q("127.0.0.1:1", {{"message.timeout.ms", "1000"}});  // its destructor gives up quickly
  q.produce("t", "k", "v");
  err = error_of([&] { q.flush(300); });
  EXPECT_NE(err.find("1 message(s) still undelivered after 300 ms"), std::string::npos) << err;
}

TEST(BusErrors, InvalidConfigurationNamesTheProperty) {
  std::string err = error_of([] { Producer p("127.0.0.1:1", {{"linger.ms", "soon"}}); });
  EXPECT_NE(err.find("linger.ms=soon"), std::string::npos) << err;
  err = error_of([] { Consumer c("127.0.0.1:1", "g", {"t"}, {{"no.such.property", "1"}}); });
  EXPECT_NE(err.find("no.such.property"), std::string::npos) << err;
  err = error_of([] { Consumer c("127.0.0.1:1", "g", {}); });
  EXPECT_NE(err.find("at least one topic"), std::string::npos) << err;
}

}  // namespace
}  // namespace fleet::bus
