// Elastic stages, end to end: stories260K in three stages ([0,2), [2,4), [4,5)) serves 25
// requests (20 greedy, 5 seeded samples, 150 tokens each) while, after the first 100 token
// events are out, a worker is killed and replaced, a replica is added, or a replica is
// removed (SIGTERM or kill -9). Every request must complete with exactly the text and tokens
// of one process (fleet generate), and the results topic must carry each token index of a
// request exactly once and exactly one terminal event, nothing after it.
//
// One Kafka + Redis stack for the binary (stack_env); a fresh deployment (topic prefix,
// workers) per scenario. Each scenario prints one line:
//   churn kill-stage1: 25/25 complete, 9.8 s after the fault, longest stall 4.1 s
// "after the fault": from the fault to the last terminal event; "stall": the longest gap
// between consecutive token events of one request, or between its last token event and its
// terminal event (Kafka record timestamps, so the test's own waits do not count). A baseline
// scenario with no fault runs the same workload and checks first.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "fleet/deployment.h"
#include "generate/generate.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kMaxTokens = 150;
constexpr size_t kFaultAfterTokenEvents = 100;  // across all requests of the scenario
constexpr auto kScenarioTimeout = 120s;         // from submitting to the last terminal event
// After the last request finished, the results topic is read until no record came for this
// long: a duplicate token or terminal event produced late (a replayed step) is still counted.
constexpr auto kGrace = 2s;

struct Request {
  std::string prompt;
  float temperature = 0;
  uint64_t seed = 0;  // sampled requests only
};

// 20 greedy requests and 5 seeded samples at temperature 0.8.
const std::vector<Request>& workload() {
  static const std::vector<Request> w = [] {
    std::vector<Request> r;
    for (const std::string& p : story_prompts()) r.push_back({p, 0.0f, 0});
    const char* sampled[] = {"Once upon a time", "The little dog", "Lily and Ben went to the park", "Mom said",
                             "There was a tiny bird who"};
    uint64_t seed = 1001;
    for (const char* p : sampled) r.push_back({p, 0.8f, seed += 7919});
    return r;
  }();
  return w;
}

std::string record(const std::string& id, const Request& r) {
  nlohmann::json j = {{"id", id}, {"prompt", r.prompt}, {"max_tokens", kMaxTokens}, {"temperature", r.temperature}};
  if (r.temperature > 0) j["seed"] = r.seed;
  return j.dump();
}


enum class Fault { None, KillAndRestart, AddReplica, RemoveBySigterm, RemoveByKill, Zombie };

struct Scenario {
  std::string name;
  Fault fault;
  int stage;
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The first running worker of a stage.
size_t worker_of(Deployment& d, int stage) {
  for (size_t i = 0; i < d.workers().size(); ++i)
    if (d.workers()[i].running && d.workers()[i].stage == stage) return i;
  ADD_FAILURE() << "no running worker of stage " << stage;
  return 0;
}

// Serves rounds of 8 short requests until one round completes without an error (at most 3):
// the workers' consumers have joined their groups and requests flow through every stage.
// Relies only on "ready" lines and results, not on the workers' assignment log lines.
void settle(Deployment& d) {
  for (int round = 1; round <= 3; ++round) {
    ResultCollector results(d.config());
    std::vector<std::pair<std::string, std::string>> recs;
    std::vector<std::string> ids;
    const std::string stem = unique_name("warm");
    for (int k = 0; k < 8; ++k) {
      ids.push_back(stem + "-" + std::to_string(k));
      recs.emplace_back(ids.back(), greedy_record(ids.back(), workload()[static_cast<size_t>(k)].prompt, 4));
    }
    d.submit(recs);
    const bool finished = results.wait_all_finished(ids, 60s);
    std::map<std::string, int> errors;
    for (const std::string& id : ids)
      if (const RequestTrace* t = results.trace(id); t && t->finished() && !t->completion().error_code.empty())
        ++errors[t->completion().error_code];
    if (finished && errors.empty()) return;
    std::string what = finished ? "" : std::to_string(results.unfinished(ids).size()) + " unfinished";
    for (const auto& [code, n] : errors) what += (what.empty() ? "" : ", ") + std::to_string(n) + " " + code;
    std::printf("warm-up round %d before the fault: %s\n", round, what.c_str());
  }
  FAIL() << "the deployment did not serve 8 short requests cleanly in 3 rounds before the fault\n" << d.log_tails(40);
}

void run_scenario(const Scenario& s) {
  const std::vector<Request>& reqs = workload();
  size_t reference_tokens = 0;
  for (const Request& r : reqs) reference_tokens += stories_reference(r.prompt, kMaxTokens, r.temperature, r.seed).tokens.size();
  ASSERT_GT(reference_tokens, 2 * kFaultAfterTokenEvents) << "the workload must outlast the fault";

  DeploymentOptions o;
  o.name = "churn";
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 2, 1}, {2, 4, 1}, {4, 5, 1}};
  if (s.fault == Fault::RemoveBySigterm || s.fault == Fault::RemoveByKill || s.fault == Fault::Zombie)
    o.stages[static_cast<size_t>(s.stage)].replicas = 2;
  o.wait_ready = false;  // wait_ready() reads assignment lines; this test relies on "ready" and results only
  Deployment d(o);
  ASSERT_NO_FATAL_FAILURE(d.wait_workers_ready());
  ASSERT_NO_FATAL_FAILURE(settle(d));

  std::vector<std::string> ids;
  std::vector<std::pair<std::string, std::string>> recs;
  const std::string stem = unique_name(s.name);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ids.push_back(stem + "-" + std::to_string(i));
    recs.emplace_back(ids.back(), record(ids.back(), reqs[i]));
  }
  ResultCollector results(d.config());  // from the topic's end, before submitting
  d.submit(recs);
  const auto deadline = Clock::now() + kScenarioTimeout;
  auto left = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()); };
  ASSERT_TRUE(results.wait_token_events(kFaultAfterTokenEvents, left()))
      << s.name << ": only " << results.token_events() << " token events within " << kScenarioTimeout.count()
      << " s, before any fault (" << results.unfinished(ids).size() << " of " << ids.size() << " unfinished)\n" << d.log_tails(40);

  // The fault.
  const int64_t fault_ms = now_ms();
  switch (s.fault) {
    case Fault::None:  // the baseline: the same workload and checks, nothing happens
      break;
    case Fault::KillAndRestart: {
      const size_t victim = worker_of(d, s.stage);
      d.signal_worker(victim, SIGKILL);
      EXPECT_EQ(d.wait_exit(victim, 10s), 128 + SIGKILL) << "worker " << victim << " should die of SIGKILL";
      const size_t fresh = d.start_worker(s.stage);
      ASSERT_NO_FATAL_FAILURE(d.wait_worker_ready(fresh));
      break;
    }
    case Fault::AddReplica: {
      const size_t fresh = d.start_worker(s.stage);
      ASSERT_NO_FATAL_FAILURE(d.wait_worker_ready(fresh));
      break;
    }
    case Fault::RemoveBySigterm: {
      const size_t victim = worker_of(d, s.stage);
      d.signal_worker(victim, SIGTERM);
      EXPECT_EQ(d.wait_exit(victim, 10s), 0) << "a SIGTERMed worker should exit with status 0 within 10 s "
                                                "(-1: still running)\n" << d.log_tails(40);
      break;
    }
    case Fault::RemoveByKill: {
      const size_t victim = worker_of(d, s.stage);
      d.signal_worker(victim, SIGKILL);
      EXPECT_EQ(d.wait_exit(victim, 10s), 128 + SIGKILL) << "worker " << victim << " should die of SIGKILL";
      break;
    }
    case Fault::Zombie: {
      // One replica stops (SIGSTOP) past its consumer session (3 s): the other takes its
      // partitions over, fencing their producers. Then it resumes, still believing it owns
      // them, with steps in hand: whatever it tries to publish for them must not get out.
      const size_t zombie = worker_of(d, s.stage);
      size_t other = zombie;
      for (size_t i = 0; i < d.workers().size(); ++i)
        if (i != zombie && d.workers()[i].running && d.workers()[i].stage == s.stage) other = i;
      ASSERT_NE(other, zombie) << "the zombie scenario needs two replicas";
      const std::string took_over = "fenced the previous owners of";
      const size_t before = occurrences(d.worker_log(other), took_over);
      d.signal_worker(zombie, SIGSTOP);
      const auto until = Clock::now() + 60s;
      while (occurrences(d.worker_log(other), took_over) == before && Clock::now() < until)
        std::this_thread::sleep_for(50ms);  // polling the other replica's log for the takeover
      const bool taken = occurrences(d.worker_log(other), took_over) > before;
      d.signal_worker(zombie, SIGCONT);
      ASSERT_TRUE(taken) << "the other replica did not take the stopped one's partitions over within 60 s\n"
                         << d.log_tails(40);
      break;
    }
  }

  const bool finished = results.wait_all_finished(ids, std::max(left(), std::chrono::milliseconds(1)));
  results.drain(kGrace, 15s);

  // The checks, summarized per kind so a broken run reads at a glance.
  int complete = 0;
  std::map<std::string, int> errors;
  std::vector<std::string> error_examples, wrong, delivery;
  int64_t last_terminal_ms = 0, stall_ms = 0;
  std::string stall_at;
  const int64_t end_ms = now_ms();  // the end of observation (after the grace period)
  for (size_t i = 0; i < ids.size(); ++i) {
    const RequestTrace* t = results.trace(ids[i]);
    if (!t) continue;
    const Completion c = t->completion();
    const GenerateResult& ref = stories_reference(reqs[i].prompt, kMaxTokens, reqs[i].temperature, reqs[i].seed);
    const std::string who = ids[i] + " (\"" + reqs[i].prompt + "\"" +
                            (reqs[i].temperature > 0 ? ", seed " + std::to_string(reqs[i].seed) : "") + ")";
    if (!c.error_code.empty()) {
      ++errors[c.error_code];
      if (error_examples.size() < 5) error_examples.push_back(who + ": " + c.error_code + ": " + c.text);
    } else if (t->finished()) {
      ++complete;
    }
    // Tokens so far must be the reference's (a prefix when the request did not complete).
    size_t differ = 0;
    while (differ < c.tokens.size() && differ < ref.tokens.size() && c.tokens[differ] == ref.tokens[differ]) ++differ;
    if (differ < c.tokens.size() || (t->finished() && c.error_code.empty() && c.tokens.size() != ref.tokens.size()))
      wrong.push_back(who + ": tokens differ from the reference at index " + std::to_string(differ) + " (got " +
                      std::to_string(c.tokens.size()) + ", reference " + std::to_string(ref.tokens.size()) + ")");
    else if (t->finished() && c.error_code.empty() &&
             (c.text != ref.text || c.token_text != ref.text || c.finish_reason != ref.finish_reason ||
              c.prompt_tokens != ref.prompt_tokens))
      wrong.push_back(who + ": text/finish_reason/prompt_tokens differ: got \"" + c.text + "\" (" + c.finish_reason +
                      "), reference \"" + ref.text + "\" (" + ref.finish_reason + ")");
    for (const std::string& p : ResultCollector::delivery_problems(*t)) delivery.push_back(ids[i] + ": " + p);
    int64_t prev = -1;  // the previous token event's time
    for (const ObservedEvent& e : t->events) {
      const bool token = e.event.type == ResultEvent::Type::Token;
      if (!token) last_terminal_ms = std::max(last_terminal_ms, e.time_ms);
      if (prev >= 0 && e.time_ms - prev > stall_ms) {
        stall_ms = e.time_ms - prev;
        stall_at = ids[i] + " before " + (token ? "token index " + std::to_string(e.event.index) : "its terminal event");
      }
      if (!token) break;  // events after the terminal one are delivery problems, not stalls
      prev = e.time_ms;
    }
    if (!t->finished() && prev >= 0 && end_ms - prev > stall_ms) {  // still stalled
      stall_ms = end_ms - prev;
      stall_at = ids[i] + " after token index " + std::to_string(c.tokens.size() - 1) + ", unfinished";
    }
  }
  std::vector<std::string> unfinished = results.unfinished(ids);
  for (std::string& id : unfinished) {
    const RequestTrace* t = results.trace(id);
    const size_t n = t ? t->completion().tokens.size() : 0;
    id += ": " + std::to_string(n) + " tokens" +
          (t && n ? ", the last " + std::to_string((end_ms - t->events.back().time_ms) / 1000) + " s ago" : "");
  }

  std::string line = "churn " + s.name + ": " + std::to_string(complete) + "/" + std::to_string(ids.size()) + " complete";
  int n_errors = 0;
  std::string codes;
  for (const auto& [code, n] : errors) {
    n_errors += n;
    codes += (codes.empty() ? "" : ", ") + code + " " + std::to_string(n);
  }
  if (n_errors) line += ", " + std::to_string(n_errors) + " errors (" + codes + ")";
  if (!unfinished.empty()) line += ", " + std::to_string(unfinished.size()) + " unfinished";
  if (!wrong.empty()) line += ", " + std::to_string(wrong.size()) + " differ from the reference";
  if (!delivery.empty()) line += ", " + std::to_string(delivery.size()) + " delivery problems";
  char tail[160];
  if (last_terminal_ms > 0)
    std::snprintf(tail, sizeof tail, ", %.1f s after the fault, longest stall %.1f s", (last_terminal_ms - fault_ms) / 1e3,
                  stall_ms / 1e3);
  else
    std::snprintf(tail, sizeof tail, ", nothing finished, longest stall %.1f s", stall_ms / 1e3);
  line += tail;
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  if (stall_ms > 0) std::printf("  longest stall: %s\n", stall_at.c_str());

  auto listing = [](const std::vector<std::string>& v) {
    std::string out;
    for (size_t k = 0; k < v.size() && k < 8; ++k) out += "  " + v[k] + "\n";
    if (v.size() > 8) out += "  ... and " + std::to_string(v.size() - 8) + " more\n";
    return out;
  };
  EXPECT_EQ(complete, static_cast<int>(ids.size())) << s.name << ": requests with a done event";
  if (n_errors) ADD_FAILURE() << s.name << ": " << n_errors << " error events (" << codes << "), e.g.:\n"
                              << listing(error_examples);
  if (!finished || !unfinished.empty())
    ADD_FAILURE() << s.name << ": " << unfinished.size() << " requests without a done or error event "
                  << kScenarioTimeout.count() << " s after submitting:\n" << listing(unfinished) << d.log_tails(40);
  if (!wrong.empty()) ADD_FAILURE() << s.name << ": not the one-process result:\n" << listing(wrong);
  if (!delivery.empty())
    ADD_FAILURE() << s.name << ": results topic breaks \"each token index once, one terminal event\" (read until "
                  << kGrace.count() << " s without a record):\n" << listing(delivery);
  if (n_errors && unfinished.empty()) std::printf("%s", d.log_tails(15).c_str());
  if (s.fault == Fault::Zombie) {  // what the zombie met when it resumed (informational)
    size_t fenced = 0, lost = 0;
    for (size_t i = 0; i < d.workers().size(); ++i)
      if (d.workers()[i].stage == s.stage) {
        fenced += occurrences(d.worker_log(i), "this worker's producer was fenced");
        lost += occurrences(d.worker_log(i), "(lost: another member may own them already)");
      }
    std::printf("  zombie: %zu partition(s) found fenced by a refused write, %zu revocation(s) reported lost\n", fenced,
                lost);
  }
}

// The workload and checks with no fault (passes without elastic stages): the harness's baseline.
TEST(FleetChurn, NoFaultBaseline) { run_scenario({"no-fault", Fault::None, 0}); }
TEST(FleetChurn, KillStage0WorkerAndStartAFreshOne) { run_scenario({"kill-stage0", Fault::KillAndRestart, 0}); }
TEST(FleetChurn, KillStage1WorkerAndStartAFreshOne) { run_scenario({"kill-stage1", Fault::KillAndRestart, 1}); }
TEST(FleetChurn, KillStage2WorkerAndStartAFreshOne) { run_scenario({"kill-stage2", Fault::KillAndRestart, 2}); }
TEST(FleetChurn, AddAReplicaToStage0InFlight) { run_scenario({"add-stage0", Fault::AddReplica, 0}); }
TEST(FleetChurn, AddAReplicaToStage1InFlight) { run_scenario({"add-stage1", Fault::AddReplica, 1}); }
TEST(FleetChurn, AddAReplicaToStage2InFlight) { run_scenario({"add-stage2", Fault::AddReplica, 2}); }
TEST(FleetChurn, RemoveAStage2ReplicaWithSigterm) { run_scenario({"sigterm-replica-stage2", Fault::RemoveBySigterm, 2}); }
// A last-stage replica paused past its session, resumed after the other took over: it publishes
// nothing (its writes are fenced), so every token index still reaches the results topic once.
TEST(FleetChurn, ZombieLastStageReplicaIsFenced) { run_scenario({"zombie-stage2", Fault::Zombie, 2}); }
TEST(FleetChurn, RemoveAStage0ReplicaWithKill) { run_scenario({"kill-replica-stage0", Fault::RemoveByKill, 0}); }

}  // namespace
}  // namespace fleet::test
