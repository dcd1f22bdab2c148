// The stage worker's parts alone: batch selection, step building, the KV cache pool, the
// offset tracker.
#include <gtest/gtest.h>

#include "stage/kv_cache_pool.h"
#include "stage/offset_tracker.h"
#include "stage/steps.h"

namespace fleet {
namespace {

Step step_of(const std::string& id, int start, int n) {
  Step s;
  s.msg.set_request_id(id);
  s.msg.set_start_pos(start);
  s.msg.set_n_tokens(n);
  return s;
}

TEST(TakeBatch, OneStepPerRequestWithinTheRowLimitInOrder) {
  std::deque<Step> ready;
  ready.push_back(step_of("a", 0, 100));
  ready.push_back(step_of("a", 100, 100));  // waits for a's first step
  ready.push_back(step_of("b", 0, 300));
  ready.push_back(step_of("c", 0, 200));   // does not fit next to a and b (max 512)
  ready.push_back(step_of("d", 0, 10));
  std::vector<Step> batch = take_batch(ready, 512);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].msg.request_id(), "a");
  EXPECT_EQ(batch[1].msg.request_id(), "b");
  EXPECT_EQ(batch[2].msg.request_id(), "d");
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(ready[0].msg.start_pos(), 100);
  EXPECT_EQ(ready[1].msg.request_id(), "c");
  batch = take_batch(ready, 512);
  EXPECT_EQ(batch.size(), 2u);
  EXPECT_TRUE(ready.empty());
}

TEST(TakeBatch, AStepLargerThanTheLimitRunsAlone) {
  std::deque<Step> ready;
  ready.push_back(step_of("big", 0, 2000));
  ready.push_back(step_of("small", 0, 1));
  EXPECT_EQ(take_batch(ready, 512).size(), 1u);
  EXPECT_EQ(take_batch(ready, 512).size(), 1u);
}

TEST(Steps, ReplayStepsCoverTheRangeInChunksWithTheirOwnIdsAndSampleOnlyAtTheEnd) {
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7};
  auto steps = token_steps("r", tokens, 2, 7, 2, true, 4, 99);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].start_pos(), 2);
  EXPECT_EQ(steps[2].start_pos(), 6);
  EXPECT_EQ(steps[2].n_tokens(), 1);
  EXPECT_EQ(token_ids_of(steps[1]), (std::vector<int32_t>{5, 6}));
  EXPECT_FALSE(steps[0].sample());
  EXPECT_TRUE(steps[2].sample());
  EXPECT_EQ(steps[2].generation_index(), 4u);
  for (ActivationMsg s : steps) {
    EXPECT_TRUE(s.replayed());
    EXPECT_EQ(s.step() >> 32, 99u);  // not the original steps' ids (their start positions)
    s.set_chunk_count(1);
    EXPECT_EQ(validate_activation(s), "");
  }
  auto prefill = prefill_steps("r", tokens, 4);
  ASSERT_EQ(prefill.size(), 2u);
  EXPECT_EQ(prefill[1].step(), 4u);
  EXPECT_FALSE(prefill[1].replayed());
}

TEST(Steps, AReplayRequestAsksForTheLostStepsPositionsAndContinuesAsIt) {
  ActivationMsg lost;
  lost.set_request_id("r");
  lost.set_step(40);
  lost.set_start_pos(40);
  lost.set_n_tokens(1);
  lost.set_sample(true);
  lost.set_generation_index(12);
  ActivationMsg r = replay_request(lost, 0, 7);
  EXPECT_TRUE(r.replay_request());
  EXPECT_EQ(r.start_pos(), 0);
  EXPECT_EQ(r.replay_end(), 41);
  EXPECT_NE(r.step(), lost.step());
  EXPECT_TRUE(r.sample());
  EXPECT_EQ(r.generation_index(), 12u);
  r.set_chunk_count(1);
  EXPECT_EQ(validate_activation(r), "");
  r.set_replay_end(0);
  EXPECT_NE(validate_activation(r), "");
}

TEST(KvCachePool, EvictsTheLeastRecentlyUsedUnpinnedCacheToStayWithinBudget) {
  const int layers = 2, kv_dim = 8, max_len = 64;  // a cache holds 64 positions at least: 8 KiB
  const size_t per_cache = 64 * KVCache::bytes_per_token(layers, kv_dim);
  const size_t budget = per_cache * 5 / 2;
  KvCachePool pool(budget, [&] { return std::make_unique<KVCache>(layers, kv_dim, max_len); });
  pool.reserve("a", 16, {});
  pool.reserve("b", 16, {});
  ASSERT_EQ(pool.size(), 2u);
  pool.reserve("c", 16, {"a"});  // over budget: b is the oldest unpinned
  EXPECT_EQ(pool.find("b"), nullptr);
  EXPECT_NE(pool.find("a"), nullptr);
  EXPECT_EQ(pool.evictions(), 1u);
  EXPECT_LE(pool.bytes(), budget);
  EXPECT_THROW(pool.reserve("d", 64, {"a", "c"}), std::runtime_error);  // no room next to the pinned ones
  EXPECT_EQ(pool.find("d"), nullptr);
  EXPECT_THROW(pool.reserve("a", max_len + 1, {}), std::length_error);
  EXPECT_TRUE(pool.drop("a"));
  EXPECT_FALSE(pool.drop("a"));
  EXPECT_EQ(pool.cached_length("a"), 0);
}

bus::Message record(const std::string& topic, int32_t partition, int64_t offset) {
  bus::Message m;
  m.topic = topic;
  m.partition = partition;
  m.offset = offset;
  return m;
}

TEST(OffsetTracker, CommitsStopBelowTheOldestChunkOfAnIncompleteStep) {
  OffsetTracker t;
  t.hold("r", 0, record("s1", 0, 5));
  t.processed({record("s1", 0, 3), record("s1", 0, 5), record("s1", 0, 9), record("s1", 1, 2)});
  EXPECT_EQ(t.commit_points().at({"s1", 0}), 5);  // the chunk at 5 must be delivered again after a restart
  EXPECT_EQ(t.commit_points().at({"s1", 1}), 3);
  t.release_step("r", 0);
  t.processed({record("s1", 0, 10)});
  EXPECT_EQ(t.commit_points().at({"s1", 0}), 11);
  t.processed({record("s1", 0, 4)});
  EXPECT_EQ(t.commit_points().at({"s1", 0}), 11);  // never backwards
  t.forget({{"s1", 0}});
  EXPECT_EQ(t.commit_points().count({"s1", 0}), 0u);
  EXPECT_EQ(t.commit_points().at({"s1", 1}), 3);
}

}  // namespace
}  // namespace fleet
