// Chaos: a seeded random schedule of overlapping faults against a live fleet (3 stages of
// stories260K, 2 replicas each) while requests (greedy and seeded samples) arrive continuously.
// Faults, one every 2.5-5 s: kill -9 of a random worker, of one worker in each of two stages at
// once, of the newest worker (a replacement, likely still replaying), SIGTERM of a worker, an
// added replica, the broker stopped and started, redis-server killed with -9 and started. Killed
// and stopped workers are replaced at once, so faults overlap with recoveries. On a 3-broker
// stack (FLEET_TEST_BROKERS=3) the broker fault is a kill -9 of a partition's leader, started
// again after the outage.
//
// The checker reads everything the results topic carried: every request must end with exactly
// one terminal event, each token index exactly once before it, and the text (and tokens) of
// fleet generate with the same seed. It prints requests, faults by kind and the longest stall
// per request (p50 / p99 / max: gaps between a request's consecutive events, Kafka timestamps).
// Then Redis: no request left in fleet:progress, no key of a request without its TTL. A soak
// (10 minutes or more) spares the first worker of each stage from the faults and checks that
// its RSS at the end is at most 1.05x its RSS at minute 5.
//
//   FLEET_CHAOS_SEED=7 FLEET_CHAOS_MINUTES=30 build/tests/fleet/fleet_chaos_test   (bench/chaos)
//
// The same seed replays the same schedule of fault kinds, targets and gaps (what they meet
// depends on timing). CI runs 2 minutes with seed 1.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet/deployment.h"
#include "state/keys.h"
#include "state/redis_client.h"
#include "state/request_store.h"
#include "state/redis_server.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"
#include "util/process_memory.h"

namespace fleet::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kStages = 3;
constexpr int kMaxTokens = 120;
constexpr size_t kInFlight = 12;
constexpr int kMaxReplicas = 3;

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}

enum class FaultKind { KillWorker, KillTwoStages, KillNewest, Sigterm, AddReplica, BrokerRestart, LeaderKill9, RedisKill9 };
const char* name_of(FaultKind k) {
  switch (k) {
    case FaultKind::KillWorker: return "kill -9 worker";
    case FaultKind::KillTwoStages: return "kill -9 two stages";
    case FaultKind::KillNewest: return "kill -9 newest worker";
    case FaultKind::Sigterm: return "SIGTERM worker";
    case FaultKind::AddReplica: return "add replica";
    case FaultKind::BrokerRestart: return "broker stop/start";
    case FaultKind::LeaderKill9: return "kill -9 partition leader/start";
    case FaultKind::RedisKill9: return "redis kill -9/start";
  }
  return "?";
}

struct Request {
  std::string id, prompt;
  float temperature = 0;
  uint64_t seed = 0;
};

class Chaos {
 public:
  Chaos(Deployment& d, uint64_t seed) : d_(d), rng_(seed) {
    for (size_t i = 0; i < d_.workers().size(); ++i) alive_.push_back(true);
  }
  // Workers no fault targets (the soak's RSS witnesses): they serve through every other fault.
  void spare(const std::vector<size_t>& workers) { spared_.insert(workers.begin(), workers.end()); }

  // Applies one fault drawn from the schedule; returns its kind.
  FaultKind strike() {
    static const FaultKind kinds[] = {FaultKind::KillWorker, FaultKind::KillTwoStages, FaultKind::KillNewest,
                                      FaultKind::Sigterm,    FaultKind::AddReplica,    FaultKind::BrokerRestart,
                                      FaultKind::RedisKill9};
    FaultKind k = kinds[draw(std::size(kinds))];
    if (k == FaultKind::BrokerRestart && stack_brokers() > 1) k = FaultKind::LeaderKill9;  // a cluster
    switch (k) {
      case FaultKind::KillWorker: kill_and_replace(pick(static_cast<int>(draw(kStages)))); break;
      case FaultKind::KillTwoStages: {
        const int a = static_cast<int>(draw(kStages));
        const int b = (a + 1 + static_cast<int>(draw(kStages - 1))) % kStages;
        const size_t va = pick(a), vb = pick(b);
        kill9(va);
        kill9(vb);
        start(a);
        start(b);
        break;
      }
      case FaultKind::KillNewest: {
        size_t newest = 0;
        for (size_t i = 0; i < alive_.size(); ++i)
          if (alive_[i] && !spared_.count(i)) newest = i;
        if (spared_.count(newest)) newest = pick(static_cast<int>(draw(kStages)));
        kill_and_replace(newest);
        break;
      }
      case FaultKind::Sigterm: {
        const size_t v = pick(static_cast<int>(draw(kStages)));
        d_.signal_worker(v, SIGTERM);  // it hands over and exits on its own; reaped at the end
        alive_[v] = false;
        start(d_.workers()[v].stage);
        break;
      }
      case FaultKind::AddReplica: {
        const int s = static_cast<int>(draw(kStages));
        if (replicas(s) < kMaxReplicas) start(s);
        break;
      }
      case FaultKind::BrokerRestart:
        EXPECT_EQ(stack_command("kafka-stop"), 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(500 + draw(2500)));  // the outage itself
        EXPECT_EQ(stack_command("kafka-start"), 0);
        break;
      case FaultKind::LeaderKill9: {
        // The leader of a random partition of a random topic of the fleet: a crash, then the
        // node back on the same data (the others have elected new leaders meanwhile).
        const std::vector<std::string> topics = {d_.config().results_topic(), d_.config().prompts_topic(),
                                                 d_.config().stage_topic(static_cast<int>(draw(kStages)))};
        const std::map<int, int> leaders = partition_leaders(d_.config().kafka.brokers, topics[draw(topics.size())]);
        if (leaders.empty()) break;  // metadata not readable now (a node still starting): no fault
        auto it = std::next(leaders.begin(), static_cast<long>(draw(leaders.size())));
        if (it->second <= 0) break;
        const std::string node = std::to_string(it->second);
        EXPECT_EQ(stack_command("node-kill", node), 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(500 + draw(2500)));  // the outage itself
        EXPECT_EQ(stack_command("node-start", node), 0);
        break;
      }
      case FaultKind::RedisKill9:
        EXPECT_EQ(stack_command("redis-kill"), 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(200 + draw(1800)));  // the outage itself
        EXPECT_EQ(stack_command("redis-start"), 0);
        break;
    }
    return k;
  }

  std::chrono::milliseconds next_gap() { return std::chrono::milliseconds(2500 + draw(2500)); }
  size_t draw(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

 private:
  int replicas(int stage) const {
    int n = 0;
    for (size_t i = 0; i < alive_.size(); ++i) n += alive_[i] && d_.workers()[i].stage == stage;
    return n;
  }
  size_t pick(int stage) {  // a random live worker of the stage (not a spared one)
    std::vector<size_t> of;
    for (size_t i = 0; i < alive_.size(); ++i)
      if (alive_[i] && !spared_.count(i) && d_.workers()[i].stage == stage) of.push_back(i);
    return of.empty() ? start(stage) : of[draw(of.size())];
  }
  size_t start(int stage) {
    const size_t i = d_.start_worker(stage);
    alive_.push_back(true);
    return i;
  }
  void kill9(size_t i) {
    d_.signal_worker(i, SIGKILL);
    d_.wait_exit(i, 10s);
    alive_[i] = false;
  }
  void kill_and_replace(size_t i) {
    kill9(i);
    start(d_.workers()[i].stage);
  }

  Deployment& d_;
  std::mt19937_64 rng_;
  std::vector<bool> alive_;  // per worker index: started and not yet killed or SIGTERMed
  std::set<size_t> spared_;
};

std::vector<std::string> keys_matching(RedisClient& redis, const std::string& pattern) {
  std::vector<std::string> out;
  std::string cursor = "0";
  do {
    RedisReply r = redis.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    cursor = r.elements.at(0).as_string();
    for (std::string& k : r.elements.at(1).as_string_list()) out.push_back(std::move(k));
  } while (cursor != "0");
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

TEST(FleetChaos, OverlappingRandomFaults) {
  const uint64_t seed = static_cast<uint64_t>(env_number("FLEET_CHAOS_SEED", 1));
  const double minutes = env_number("FLEET_CHAOS_MINUTES", 2);
  std::printf("chaos: seed %llu, %.1f minutes of faults, %d broker(s) (FLEET_CHAOS_SEED, FLEET_CHAOS_MINUTES, "
              "FLEET_TEST_BROKERS)\n", static_cast<unsigned long long>(seed), minutes, stack_brokers());
  std::fflush(stdout);

  DeploymentOptions o;
  o.name = "chaos";
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 2, 2}, {2, 4, 2}, {4, 5, 2}};
  o.wait_ready = false;
  o.replication_factor = stack_brokers() > 1 ? 3 : 1;  // FLEET_TEST_BROKERS=3 (bench/chaos --brokers 3)
  Deployment d(o);
  ASSERT_NO_FATAL_FAILURE(d.wait_workers_ready());
  ResultCollector results(d.config());
  Chaos chaos(d, seed);
  // A soak (10 minutes or more) checks that memory stays bounded: the first worker of each stage
  // is spared by the faults, and its RSS at the end may be at most 1.05x its RSS at minute 5.
  const bool soak = minutes >= 10;
  std::vector<size_t> witnesses;
  std::vector<size_t> rss_minute5;
  std::vector<std::map<int, size_t>> rss_peak_per_minute(kStages);  // per witness: minute -> peak RSS
  auto next_rss_sample = Clock::now();
  if (soak) {
    for (int k = 0; k < kStages; ++k)
      for (size_t i = 0; i < d.workers().size(); ++i)
        if (d.workers()[i].stage == k) {
          witnesses.push_back(i);
          break;
        }
    chaos.spare(witnesses);
  }

  // The workload: story prompts, every third request sampled with a seed from the schedule's rng.
  std::vector<Request> requests;
  std::mt19937_64 load_rng(seed * 7919 + 1);
  auto next_request = [&] {
    Request r;
    r.id = unique_name("chaos") + "-" + std::to_string(requests.size());
    r.prompt = story_prompts()[load_rng() % story_prompts().size()];
    if (requests.size() % 3 == 2) {
      r.temperature = 0.8f;
      r.seed = 1 + load_rng() % 100000;
    }
    nlohmann::json j = {{"id", r.id}, {"prompt", r.prompt}, {"max_tokens", kMaxTokens}, {"temperature", r.temperature}};
    if (r.temperature > 0) j["seed"] = r.seed;
    requests.push_back(r);
    return std::make_pair(r.id, j.dump());
  };
  auto finished = [&] {
    size_t n = 0;
    for (const Request& r : requests)
      if (const RequestTrace* t = results.trace(r.id); t && t->finished()) ++n;
    return n;
  };

  std::map<std::string, int> faults;
  const auto start = Clock::now();
  const auto end_of_faults = start + std::chrono::milliseconds(static_cast<int64_t>(minutes * 60000));
  auto next_fault = start + chaos.next_gap();
  while (Clock::now() < end_of_faults) {
    results.poll(100);
    std::vector<std::pair<std::string, std::string>> batch;
    while (requests.size() - finished() + batch.size() < kInFlight) batch.push_back(next_request());
    if (!batch.empty()) {
      try {
        d.submit(batch);
      } catch (const std::exception& e) {  // the broker is away: produced again after the outage
        std::printf("submit: %s (the prompts are kept and submitted again)\n", e.what());
        requests.resize(requests.size() - batch.size());
      }
    }
    if (soak && Clock::now() >= next_rss_sample) {  // the RSS timeline, printed at the end
      const int minute = static_cast<int>(std::chrono::duration_cast<std::chrono::minutes>(Clock::now() - start).count());
      for (size_t k = 0; k < witnesses.size(); ++k) {
        size_t& peak = rss_peak_per_minute[k][minute];
        peak = std::max(peak, resident_bytes(d.workers()[witnesses[k]].pid));
      }
      next_rss_sample = Clock::now() + 5s;
    }
    if (soak && rss_minute5.empty() && Clock::now() >= start + 5min) {
      for (size_t w : witnesses) rss_minute5.push_back(resident_bytes(d.workers()[w].pid));
      std::printf("  %5.1f s  RSS of the spared workers recorded\n", std::chrono::duration<double>(Clock::now() - start).count());
    }
    if (Clock::now() >= next_fault) {
      const FaultKind k = chaos.strike();
      ++faults[name_of(k)];
      std::printf("  %5.1f s  %s\n", std::chrono::duration<double>(Clock::now() - start).count(), name_of(k));
      std::fflush(stdout);
      next_fault = Clock::now() + chaos.next_gap();
    }
  }

  std::vector<std::string> ids;
  for (const Request& r : requests) ids.push_back(r.id);
  const bool all = results.wait_all_finished(ids, 240s);
  results.drain(3s, 30s);

  RedisClient redis(d.config().redis.url);
  // Where an unfinished request stands in Redis, for the failure message.
  auto state_in_redis = [&](const std::string& id) -> std::string {
    try {
      std::optional<RequestRecord> rec = RequestStore(redis).load(id);
      if (!rec) return "no state in Redis";
      const RedisReply score = redis.command({"ZSCORE", keys::progress(), id});
      return std::string("Redis: ") + to_string(rec->status) + ", " + std::to_string(rec->generated.size()) + " tokens" +
             (rec->cancel_requested_ms ? ", cancel requested" : "") +
             (score.type == RedisReply::Type::Nil ? ", not in fleet:progress" : ", in fleet:progress");
    } catch (const std::exception& e) {
      return std::string("Redis: ") + e.what();
    }
  };
  int exact = 0;
  std::vector<std::string> problems;
  std::vector<double> stalls;
  for (const Request& r : requests) {
    const RequestTrace* t = results.trace(r.id);
    if (!t || !t->finished()) {
      problems.push_back(r.id + ": no terminal event (" + state_in_redis(r.id) + ")");
      continue;
    }
    for (const std::string& p : ResultCollector::delivery_problems(*t)) problems.push_back(r.id + ": " + p);
    const Completion c = t->completion();
    const GenerateResult& ref = stories_reference(r.prompt, kMaxTokens, r.temperature, r.seed);
    if (!c.error_code.empty())
      problems.push_back(r.id + ": error " + c.error_code + ": " + c.text);
    else if (c.tokens != ref.tokens || c.text != ref.text)
      problems.push_back(r.id + ": text differs from fleet generate (seed " + std::to_string(r.seed) + ")");
    else
      ++exact;
    int64_t longest = 0;
    for (size_t k = 1; k < t->events.size(); ++k)
      longest = std::max(longest, t->events[k].time_ms - t->events[k - 1].time_ms);
    stalls.push_back(static_cast<double>(longest) / 1000);
  }
  // Nothing left behind in Redis: every request out of the progress index (a request still in it
  // would be re-driven), every key of a request expiring (a key without TTL would stay for ever).
  // An ended request whose worker died before taking it out is checked by a re-drive first, a
  // stall (timeouts.stall_s, 30 s) after its end.
  if (!eventually([&] { return redis.command({"ZCARD", keys::progress()}).as_integer() == 0; }, 150s))
    for (const std::string& id : redis.command({"ZRANGE", keys::progress(), "0", "-1"}).as_string_list())
      problems.push_back(id + ": still in fleet:progress after it ended");
  for (const std::string& key : keys_matching(redis, std::string(keys::kPrefix) + "*"))
    if ((key.rfind(keys::request(""), 0) == 0 || key.rfind(keys::kv(""), 0) == 0) && redis.pttl(key) == -1)
      problems.push_back(key + ": no TTL after its request ended");

  // Memory: the spared workers served through every fault of the soak.
  for (size_t k = 0; k < rss_minute5.size(); ++k) {
    const size_t w = witnesses[k], now = resident_bytes(d.workers()[w].pid);
    const double ratio = rss_minute5[k] ? static_cast<double>(now) / static_cast<double>(rss_minute5[k]) : 0;
    std::printf("RSS of worker %zu (stage %d, spared): %.1f MiB at minute 5, %.1f MiB at the end (%.3fx)\n", w,
                d.workers()[w].stage, static_cast<double>(rss_minute5[k]) / (1 << 20), static_cast<double>(now) / (1 << 20),
                ratio);
    std::string timeline;
    for (const auto& [minute, peak] : rss_peak_per_minute[k]) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " %d:%.1f", minute, static_cast<double>(peak) / (1 << 20));
      timeline += buf;
    }
    std::printf("  its peak RSS per minute (minute:MiB):%s\n", timeline.c_str());
    if (!(ratio > 0 && ratio <= 1.05))
      problems.push_back("worker " + std::to_string(w) + ": RSS grew " + std::to_string(ratio) + "x from minute 5");
  }

  std::string kinds;
  int total = 0;
  for (const auto& [k, n] : faults) {
    kinds += (kinds.empty() ? "" : ", ") + k + " " + std::to_string(n);
    total += n;
  }
  std::printf("chaos seed %llu: %d/%zu requests exact, %zu problems; %d faults (%s); longest stall per request "
              "p50 %.1f s, p99 %.1f s, max %.1f s\n",
              static_cast<unsigned long long>(seed), exact, requests.size(), problems.size(), total, kinds.c_str(),
              percentile(stalls, 0.5), percentile(stalls, 0.99), percentile(stalls, 1.0));
  for (size_t k = 0; k < problems.size() && k < 20; ++k) std::printf("  %s\n", problems[k].c_str());
  EXPECT_TRUE(all) << results.unfinished(ids).size() << " requests unfinished\n" << d.log_tails(30);
  std::string first;
  for (size_t k = 0; k < problems.size() && k < 5; ++k) first += "\n  " + problems[k];
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, the first:" << first << "\n" << d.log_tails(20);
  EXPECT_GT(requests.size(), 0u);
}

}  // namespace
}  // namespace fleet::test
