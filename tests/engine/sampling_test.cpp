#include <map>

#include <gtest/gtest.h>

#include "sampling/sampler.h"
#include "sampling/stop_matcher.h"

namespace fleet {
namespace {

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(sample_token(l, p, 0), 1);
}

TEST(Sampler, TopKOneIsGreedyAndTopKLimitsCandidates) {
  std::vector<float> l = {1.0f, 2.0f, 0.5f, 1.9f, -3.0f};
  SamplingParams p;
  p.top_k = 2;
  p.temperature = 5.0f;  // flat distribution: without top-k every id would appear
  std::map<int, int> seen;
  for (uint64_t i = 0; i < 2000; ++i) seen[sample_token(l, p, i)]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 0);
  EXPECT_GT(seen[3], 0);
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  // probabilities ~ 0.64, 0.24, 0.09, 0.03
  std::vector<float> l = {2.0f, 1.0f, 0.0f, -1.0f};
  SamplingParams p;
  p.top_p = 0.8f;
  std::map<int, int> seen;
  for (uint64_t i = 0; i < 4000; ++i) seen[sample_token(l, p, i)]++;
  EXPECT_EQ(seen.size(), 2u);
  // Renormalised over {0, 1}: 0.727 / 0.273.
  EXPECT_NEAR(seen[0] / 4000.0, 0.731, 0.03);
}

TEST(Sampler, SameSeedAndIndexGiveSameToken) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[static_cast<size_t>(i)] = static_cast<float>(i % 7);
  SamplingParams a, b;
  a.seed = b.seed = 99;
  int differ = 0;
  for (uint64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(sample_token(l, a, i), sample_token(l, b, i));
    SamplingParams c = a;
    c.seed = 100;
    differ += sample_token(l, a, i) != sample_token(l, c, i);
  }
  EXPECT_GT(differ, 10);
}

TEST(Sampler, RejectsInvalidParameters) {
  std::vector<float> l = {1.0f};
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(sample_token(l, p, 0), std::runtime_error);
  p.top_p = 1;
  p.temperature = -1;
  EXPECT_THROW(sample_token(l, p, 0), std::runtime_error);
}

TEST(StopMatcher, HoldsBackPossiblePrefixAndCutsAtStop) {
  StopMatcher m({"END", "xyz"});
  EXPECT_EQ(m.push("hello E"), "hello ");
  EXPECT_EQ(m.push("N"), "");
  EXPECT_EQ(m.push("Dless"), "");
  EXPECT_TRUE(m.stopped());
  StopMatcher n({"END"});
  EXPECT_EQ(n.push("a E"), "a ");
  EXPECT_EQ(n.push("x"), "Ex");
  EXPECT_EQ(n.push("EN"), "");
  EXPECT_EQ(n.flush(), "EN");
  EXPECT_FALSE(n.stopped());
}

}  // namespace
}  // namespace fleet
