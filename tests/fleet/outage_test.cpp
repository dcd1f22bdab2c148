// Infrastructure outages mid-run: the Kafka broker stopped for 20 s and started again, and
// redis-server shut down (append-only file on) and started again. Workers stay up, retry with
// backoff, and every request completes with fleet generate's text, each token index once on
// the results topic, one terminal event. And SIGTERM while the broker, Redis or both are away:
// every worker still ends within timeouts.shutdown_s.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "fleet/deployment.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string>& kPrompts = story_prompts();
constexpr int kMaxTokens = 120;

// Serves 20 requests; after 60 token events, runs `outage` (which returns when the service
// is back); then checks every request.
void run_through(const std::string& name, const std::function<void()>& outage) {
  DeploymentOptions o;
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 2, 1}, {2, 5, 1}};
  Deployment d(o);
  ResultCollector results(d.config());
  std::vector<std::pair<std::string, std::string>> recs;
  std::vector<std::string> ids;
  const std::string prefix = unique_name(name) + "-";
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    ids.push_back(prefix + std::to_string(i));
    recs.emplace_back(ids.back(), greedy_record(ids.back(), kPrompts[i], kMaxTokens));
  }
  d.submit(recs);
  ASSERT_TRUE(results.wait_token_events(60, 60s)) << d.log_tails();
  const auto t0 = std::chrono::steady_clock::now();
  outage();
  const double outage_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool all = results.wait_all_finished(ids, 120s);
  const double done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  results.drain(2s);
  ASSERT_TRUE(all) << results.unfinished(ids).size() << " unfinished\n" << d.log_tails(40);
  int complete = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const RequestTrace* t = results.trace(ids[i]);
    ASSERT_NE(t, nullptr);
    for (const std::string& p : ResultCollector::delivery_problems(*t)) ADD_FAILURE() << ids[i] << ": " << p;
    const Completion c = t->completion();
    EXPECT_EQ(c.error_code, "") << ids[i] << ": " << c.text;
    EXPECT_EQ(c.tokens, stories_reference(kPrompts[i], kMaxTokens).tokens) << ids[i];
    EXPECT_EQ(c.text, stories_reference(kPrompts[i], kMaxTokens).text) << ids[i];
    if (c.error_code.empty() && c.text == stories_reference(kPrompts[i], kMaxTokens).text) ++complete;
  }
  for (size_t i = 0; i < d.workers().size(); ++i) EXPECT_TRUE(d.workers()[i].running) << "worker " << i << " exited";
  std::printf("outage %s: %d/20 complete with the reference text, outage %.1f s, last completion %.1f s after it began\n",
              name.c_str(), complete, outage_s, done_s);
}

TEST(FleetOutage, BrokerStoppedFor20SecondsAndStartedAgain) {
  run_through("kafka", [] {
    ASSERT_EQ(stack_command("kafka-stop"), 0);
    std::this_thread::sleep_for(20s);  // the outage itself, not a synchronization
    ASSERT_EQ(stack_command("kafka-start"), 0);
  });
}

TEST(FleetOutage, RedisShutDownAndStartedAgain) {
  run_through("redis", [] {
    ASSERT_EQ(stack_command("redis-stop"), 0);
    std::this_thread::sleep_for(5s);  // the outage itself, not a synchronization
    ASSERT_EQ(stack_command("redis-start"), 0);
  });
}

// SIGTERM to both workers of a deployment with requests in flight, around `away` (which stops
// the broker, Redis or both) run before or just after the signal; each must exit within
// timeouts.shutdown_s (the deadline is the worker's own; the test allows scheduling slack on a
// busy machine and prints the measured times). The stack is brought back afterwards.
void sigterm_while_away(const std::string& name, const std::vector<std::string>& stop, bool stop_first) {
  constexpr double kShutdownS = 4;
  DeploymentOptions o;
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 2, 1}, {2, 5, 1}};
  o.shutdown_s = kShutdownS;
  Deployment d(o);
  ResultCollector results(d.config());
  std::vector<std::pair<std::string, std::string>> recs;
  const std::string prefix = unique_name(name) + "-";
  for (size_t i = 0; i < 8; ++i) recs.emplace_back(prefix + std::to_string(i), greedy_record(prefix + std::to_string(i), kPrompts[i], kMaxTokens));
  d.submit(recs);
  ASSERT_TRUE(results.wait_token_events(20, 60s)) << d.log_tails();
  auto stop_all = [&] {
    for (const std::string& what : stop) ASSERT_EQ(stack_command(what + "-stop"), 0) << what;
  };
  if (stop_first) {
    ASSERT_NO_FATAL_FAILURE(stop_all());
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < d.workers().size(); ++i) d.signal_worker(i, SIGTERM);
  if (!stop_first) {
    ASSERT_NO_FATAL_FAILURE(stop_all());
  }
  std::string times;
  for (size_t i = 0; i < d.workers().size(); ++i) {
    const int status = d.wait_exit(i, std::chrono::seconds(static_cast<int>(kShutdownS) + 20));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    times += " " + std::to_string(i) + ": " + std::to_string(s).substr(0, 4) + " s (status " + std::to_string(status) + ")";
    EXPECT_GE(status, 0) << "worker " << i << " still running " << s << " s after SIGTERM\n" << d.log_tails(20);
    EXPECT_LT(status, 128) << "worker " << i << " died of a signal";
    // Its own deadline plus slack for a loaded machine (the measured figure is printed).
    EXPECT_LT(s, kShutdownS + 10) << "worker " << i << ": " << d.log_tails(20);
    if (status == 2) {
      EXPECT_NE(d.worker_log(i).find("abandoned while"), std::string::npos) << "status 2 without saying what was abandoned";
    }
  }
  for (const std::string& what : stop) EXPECT_EQ(stack_command(what + "-start"), 0) << what;
  std::printf("sigterm %s (shutdown_s %.0f):%s\n", name.c_str(), kShutdownS, times.c_str());
}

TEST(FleetShutdown, SigtermWithTheBrokerStopped) { sigterm_while_away("no-broker", {"kafka"}, true); }
TEST(FleetShutdown, SigtermWithRedisStopped) { sigterm_while_away("no-redis", {"redis"}, true); }
TEST(FleetShutdown, BrokerAndRedisStoppedJustAfterSigterm) { sigterm_while_away("both-after", {"kafka", "redis"}, false); }

}  // namespace
}  // namespace fleet::test
