// FencedOutbox against the real broker: the worker that owns an input partition next fences
// the last owner's producer, so a zombie's later writes never reach a reader; what it wrote
// before the fence stays readable, and a scan of the topic reads past the transactions' markers.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "bus/admin.h"
#include "bus/topic_scan.h"
#include "stage/fenced_outbox.h"
#include "support/stack_env.h"

namespace fleet::test {
namespace {

constexpr int kPartitions = 4;

struct Topics {
  std::string in = unique_name("fence-in"), out = unique_name("fence-out"), prefix = unique_name("fence-group");
  Topics() { bus::ensure_topics(kafka_brokers(), {{in, kPartitions, 1}, {out, 2, 1}}); }
};

// Every value on `topic` (read_uncommitted, from the start), in partition then offset order.
std::vector<std::string> values_on(const std::string& topic) {
  std::vector<std::string> v;
  bus::scan_topic_since(kafka_brokers(), topic, 0, [&](const bus::Message& m) { v.push_back(m.value); }, 30000);
  return v;
}

// A key whose steps would arrive on input partition p.
std::string key_on(const FencedOutbox& o, int p) {
  for (int i = 0;; ++i)
    if (o.partition_of("req-" + std::to_string(i)) == p) return "req-" + std::to_string(i);
}

TEST(FencedOutbox, TheNextOwnerFencesTheLastOnesWrites) {
  Topics t;
  FencedOutbox zombie(kafka_brokers(), 1000000, {}, t.in, t.prefix);
  const std::string key = key_on(zombie, 2);
  zombie.own(2);
  zombie.produce(t.out, key, "before the fence");
  zombie.flush();
  zombie.commit_due(std::chrono::milliseconds(0));
  zombie.produce(t.out, key, "in the open transaction");
  zombie.flush();

  FencedOutbox successor(kafka_brokers(), 1000000, {}, t.in, t.prefix);
  successor.own(2);  // the zombie does not know: it still believes it owns partition 2
  EXPECT_EQ(zombie.losses(), 0u);

  zombie.produce(t.out, key, "after the fence (refused)");
  EXPECT_NO_THROW(zombie.flush()) << "a fenced partition is not a failure of the outbox";
  zombie.produce(t.out, key, "after the fence (dropped)");
  EXPECT_EQ(zombie.take_fenced(), std::vector<int>{2});
  EXPECT_TRUE(zombie.take_fenced().empty()) << "reported once";
  EXPECT_GE(zombie.dropped(), 1u);
  zombie.poll_deliveries();
  EXPECT_EQ(zombie.delivered_count(), zombie.produced()) << "every record settled, the refused and dropped ones too";
  // ... so settled is not delivered: the losses count tells the worker to keep the ends of the
  // requests awaiting confirmation in the progress index (StageWorker::confirm_delivered).
  EXPECT_GE(zombie.losses(), 2u) << "the fence and the dropped record";

  successor.produce(t.out, key, "the successor's");
  successor.flush();
  successor.commit_due(std::chrono::milliseconds(0));
  EXPECT_EQ(successor.losses(), 0u);

  // The zombie's open transaction was aborted, but read_uncommitted readers saw its record,
  // as the successor's scan does: it stays, and is not written again.
  EXPECT_EQ(values_on(t.out), (std::vector<std::string>{"before the fence", "in the open transaction", "the successor's"}));
}

TEST(FencedOutbox, KeysOfPartitionsNotOwnedGoThroughThePlainProducer) {
  Topics t;
  FencedOutbox o(kafka_brokers(), 1000000, {}, t.in, t.prefix);
  o.own(0);
  o.produce(t.out, key_on(o, 0), "owned");
  o.produce(t.out, key_on(o, 3), "not owned");
  o.flush();
  EXPECT_EQ(o.delivered_count(), 2u);
  std::vector<std::string> v = values_on(t.out);
  std::sort(v.begin(), v.end());
  EXPECT_EQ(v, (std::vector<std::string>{"not owned", "owned"}));
}

TEST(FencedOutbox, AHandedOverPartitionIsCommittedAndTheNextOwnerWritesOn) {
  Topics t;
  FencedOutbox first(kafka_brokers(), 1000000, {}, t.in, t.prefix);
  const std::string key = key_on(first, 1);
  first.own(1);
  first.produce(t.out, key, "first");
  first.flush();
  first.disown(1, true);
  FencedOutbox second(kafka_brokers(), 1000000, {}, t.in, t.prefix);
  second.own(1);
  second.produce(t.out, key, "second");
  second.flush();
  EXPECT_TRUE(second.take_fenced().empty());
  EXPECT_EQ(values_on(t.out), (std::vector<std::string>{"first", "second"}));
}

}  // namespace
}  // namespace fleet::test
