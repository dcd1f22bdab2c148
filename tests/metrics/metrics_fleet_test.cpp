// A running pipeline's metrics: every fleet-stage worker registers its metrics port in Redis,
// its GET /metrics parses with prometheus_client's parser, and the counters move by exactly what
// the requests did (tokens generated, prompt tokens, outcomes, errors by code).
#include <httplib.h>

#include <chrono>
#include <functional>

#include <gtest/gtest.h>

#include "fleet/deployment.h"
#include "metrics/prometheus_parse.h"
#include "state/membership.h"
#include "state/redis_client.h"
#include "test_support.h"

namespace fleet::test {
namespace {

using Clock = std::chrono::steady_clock;

ParsedMetrics scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/metrics");
  if (!res) {
    ADD_FAILURE() << "GET http://127.0.0.1:" << port << "/metrics: " << httplib::to_string(res.error());
    return {};
  }
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  std::string error;
  std::optional<ParsedMetrics> m = parse_prometheus(res->body, &error);
  if (!m) {
    ADD_FAILURE() << "port " << port << ": " << error << "\n" << res->body;
    return {};
  }
  return *m;
}

// Scrapes until check(metrics) holds or 15 s pass; returns the last scrape.
ParsedMetrics scrape_until(int port, const std::function<bool(const ParsedMetrics&)>& check) {
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  ParsedMetrics m = scrape(port);
  while (!check(m) && Clock::now() < deadline) m = scrape(port);
  return m;
}

TEST(FleetMetrics, EveryWorkerServesMetricsThatCountTheRequests) {
  DeploymentOptions o;
  o.name = "metrics";
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 2, 1}, {2, 5, 1}};
  Deployment d(o);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());

  // The ports are chosen by the workers (metrics.port 0) and found in their membership entries.
  RedisClient redis(d.config().redis.url);
  Membership members(redis, std::chrono::seconds(10));
  std::vector<int> port;
  for (size_t i = 0; i < d.workers().size(); ++i) {
    std::optional<WorkerInfo> w = members.get(d.worker_id(i));
    ASSERT_TRUE(w) << "no membership entry for worker " << i << "\n" << d.log_tails();
    ASSERT_GT(w->metrics_port, 0) << d.log_tails();
    port.push_back(w->metrics_port);
  }
  ASSERT_NE(port[0], port[1]);

  const ParsedMetrics before0 = scrape(port[0]), before1 = scrape(port[1]);
  for (const ParsedMetrics* m : {&before0, &before1}) {
    for (const char* family : {"fleet_requests", "fleet_generated_tokens", "fleet_prompt_tokens",
                               "fleet_time_to_first_token_seconds", "fleet_time_per_output_token_seconds",
                               "fleet_hop_latency_seconds", "fleet_batch_tokens", "fleet_consumer_lag_records",
                               "fleet_kv_cache_bytes", "fleet_kv_cache_requests", "fleet_errors", "fleet_replays",
                               "fleet_worker_info", "process_resident_memory_bytes"})
      EXPECT_NE(m->family(family), nullptr) << family;
    EXPECT_EQ(m->sum("fleet_kv_cache_budget_bytes"), 64.0 * 1024 * 1024);  // the deployment's kv.budget_bytes
    EXPECT_GT(m->sum("process_resident_memory_bytes"), 1e6);
  }
  EXPECT_EQ(before0.samples("fleet_worker_info", {{"stage", "0"}, {"layers", "0-1"}}).size(), 1u);
  EXPECT_EQ(before1.samples("fleet_worker_info", {{"stage", "1"}, {"layers", "2-4"}}).size(), 1u);
  EXPECT_EQ(before0.samples("fleet_consumer_lag_records", {{"topic", d.config().prompts_topic()}}).size(), 1u);

  // Three requests and an invalid one.
  std::vector<std::pair<std::string, std::string>> records;
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Ben went to the park"};
  for (size_t i = 0; i < prompts.size(); ++i)
    records.emplace_back("m" + std::to_string(i), greedy_record("m" + std::to_string(i), prompts[i], 12 + 3 * i));
  records.emplace_back("m-bad", R"({"id": "m-bad", "prompt": "x", "max_tokens": -5})");
  const std::map<std::string, Completion> got = d.run(records);
  ASSERT_EQ(got.size(), records.size());
  double tokens = 0, prompt_tokens = 0;
  std::map<std::string, double> outcomes;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Completion& c = got.at("m" + std::to_string(i));
    ASSERT_EQ(c.error_code, "") << c.text;
    tokens += c.completion_tokens;
    prompt_tokens += c.prompt_tokens;
    ++outcomes[c.finish_reason];
  }
  EXPECT_EQ(got.at("m-bad").error_code, "invalid_request");
  EXPECT_GT(tokens, 0);

  auto delta = [](const ParsedMetrics& after, const ParsedMetrics& before, const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) {
    return after.sum(name, labels) - before.sum(name, labels);
  };
  // The last stage counts what it sampled and ended; its counters moved before the events left.
  const ParsedMetrics after1 = scrape_until(port[1], [&](const ParsedMetrics& m) {
    return delta(m, before1, "fleet_generated_tokens_total") >= tokens;
  });
  EXPECT_EQ(delta(after1, before1, "fleet_generated_tokens_total"), tokens);
  for (const char* reason : {"stop", "length", "cancelled", "error"})
    EXPECT_EQ(delta(after1, before1, "fleet_requests_total", {{"outcome", reason}}), outcomes[reason]) << reason;
  EXPECT_EQ(delta(after1, before1, "fleet_time_to_first_token_seconds_count"), 3);
  EXPECT_EQ(delta(after1, before1, "fleet_time_per_output_token_seconds_count"), tokens - 3);
  EXPECT_GE(delta(after1, before1, "fleet_hop_latency_seconds_count"), tokens);  // one hop in per token at least
  EXPECT_GT(delta(after1, before1, "fleet_batch_tokens_count"), 0);
  EXPECT_EQ(delta(after1, before1, "fleet_prompt_tokens_total"), 0);  // counted at stage 0

  // Stage 0 admitted three prompts with their tokens and answered the invalid one.
  const ParsedMetrics after0 = scrape_until(port[0], [&](const ParsedMetrics& m) {
    return delta(m, before0, "fleet_prompt_tokens_total") >= prompt_tokens;
  });
  EXPECT_EQ(delta(after0, before0, "fleet_prompt_tokens_total"), prompt_tokens);
  EXPECT_EQ(delta(after0, before0, "fleet_requests_admitted_total"), 3);
  EXPECT_EQ(delta(after0, before0, "fleet_errors_total", {{"code", "invalid_request"}}), 1);
  EXPECT_EQ(delta(after0, before0, "fleet_requests_total", {{"outcome", "error"}}), 1);
  EXPECT_EQ(delta(after0, before0, "fleet_dead_letter_records_total", {{"code", "invalid_request"}}), 1);
  EXPECT_EQ(delta(after0, before0, "fleet_generated_tokens_total"), 0);
  // Stage 0 runs the prefill and every decode step: at least one forward per token after the first.
  EXPECT_GE(delta(after0, before0, "fleet_batch_tokens_sum"), prompt_tokens + tokens - 3);

  // Released: no KV cache left on either stage.
  for (int p : port) {
    const ParsedMetrics m = scrape_until(p, [](const ParsedMetrics& x) {
      return x.sum("fleet_kv_cache_requests") == 0 && x.sum("fleet_kv_cache_bytes") == 0;
    });
    EXPECT_EQ(m.sum("fleet_kv_cache_requests"), 0) << "port " << p;
    EXPECT_EQ(m.sum("fleet_kv_cache_bytes"), 0) << "port " << p;
  }
}

}  // namespace
}  // namespace fleet::test
