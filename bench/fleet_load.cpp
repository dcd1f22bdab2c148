// fleet_bench_load: a load generator for a running deployment. Keeps N requests in flight
// (a new one is produced when one ends) until M have completed, over the deployment's prompts
// and results topics, and reports what the clients saw.
//
//   fleet_bench_load --config FILE --prompts FILE --requests M --in-flight N [--max-tokens T]
//                    [--timeout-s S] [--id-prefix P]
//
// Prompts are taken in turn from the file (one per line); every request is greedy
// (temperature 0). Output, JSON lines on stdout: one {"type":"completion"} per request (its
// prompt index, text, token count) and a {"type":"summary"}: aggregate tokens/s (completion
// tokens / time from the first produce to the last done), inter-token gaps p50/p99 in ms
// (between successive token events of one request, as received), first-token p50/p99 ms.
// Exit 1 on any error event or timeout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"
#include "config/deployment_config.h"
#include "contracts/prompt_request.h"
#include "contracts/result_events.h"

using namespace fleet;
using Clock = std::chrono::steady_clock;

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct InFlight {
  size_t prompt = 0;
  Clock::time_point sent, last_token;
  int next_index = 0;
  bool any_token = false;
};

}  // namespace

int main(int argc, char** argv) {
  std::string config, prompts_file, prefix = "load";
  int requests = 16, in_flight = 4, max_tokens = 64;
  double timeout_s = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--config") config = v;
    else if (a == "--prompts") prompts_file = v;
    else if (a == "--requests") requests = std::stoi(v);
    else if (a == "--in-flight") in_flight = std::stoi(v);
    else if (a == "--max-tokens") max_tokens = std::stoi(v);
    else if (a == "--timeout-s") timeout_s = std::stod(v);
    else if (a == "--id-prefix") prefix = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (config.empty() || prompts_file.empty() || requests < 1 || in_flight < 1) {
    std::fprintf(stderr, "usage: %s --config FILE --prompts FILE [--requests M] [--in-flight N] [--max-tokens T] "
                 "[--timeout-s S] [--id-prefix P]\n", argv[0]);
    return 2;
  }
  try {
    std::vector<std::string> prompts;
    std::ifstream in(prompts_file);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
    if (prompts.empty()) throw std::runtime_error(prompts_file + ": no prompts");
    const DeploymentConfig cfg = load_config(config);
    bus::ensure_topics(cfg.kafka.brokers,
                       {{cfg.prompts_topic(), cfg.kafka.partitions, cfg.kafka.replication_factor},
                        {cfg.results_topic(), cfg.kafka.partitions, cfg.kafka.replication_factor}},
                       30000, cfg.kafka.properties);
    auto results = bus::Consumer::from_end(cfg.kafka.brokers, cfg.results_topic(), cfg.kafka.properties);
    bus::Producer producer(cfg.kafka.brokers, cfg.kafka.properties);

    std::map<std::string, InFlight> flying;
    int produced = 0, completed = 0;
    int64_t tokens = 0;
    std::vector<double> gaps, first_token;
    const auto t0 = Clock::now();
    auto produce_next = [&] {
      const std::string id = prefix + "-" + std::to_string(produced);
      PromptRequest req;
      req.id = id;
      req.prompt = prompts[static_cast<size_t>(produced) % prompts.size()];
      req.max_tokens = max_tokens;
      req.temperature = 0;
      flying[id] = {static_cast<size_t>(produced) % prompts.size(), Clock::now(), {}, 0, false};
      producer.produce(cfg.prompts_topic(), id, req.to_json().dump());
      ++produced;
    };
    while (produced < std::min(in_flight, requests)) produce_next();
    producer.flush(10000);
    auto last_done = t0;
    while (completed < requests) {
      if (ms_between(t0, Clock::now()) > timeout_s * 1000) {
        std::fprintf(stderr, "fleet_bench_load: timed out after %.0f s with %d of %d requests done\n", timeout_s,
                     completed, requests);
        return 1;
      }
      auto m = results->poll(200);
      if (!m) continue;
      auto it = flying.find(m->key);
      if (it == flying.end()) continue;
      std::string why;
      auto ev = parse_result_event(m->value, &why);
      if (!ev) continue;
      InFlight& f = it->second;
      const auto now = Clock::now();
      if (ev->type == ResultEvent::Type::Token) {
        if (ev->index < f.next_index) continue;  // redelivered
        f.next_index = ev->index + 1;
        if (f.any_token) gaps.push_back(ms_between(f.last_token, now));
        else first_token.push_back(ms_between(f.sent, now));
        f.any_token = true;
        f.last_token = now;
        continue;
      }
      if (ev->type == ResultEvent::Type::Error) {
        std::fprintf(stderr, "fleet_bench_load: request %s failed: %s: %s\n", m->key.c_str(), ev->error.code.c_str(),
                     ev->error.message.c_str());
        return 1;
      }
      nlohmann::json line = {{"type", "completion"}, {"id", m->key}, {"prompt_index", f.prompt}, {"text", ev->text},
                             {"completion_tokens", ev->usage.completion_tokens}, {"finish_reason", ev->finish_reason}};
      std::printf("%s\n", line.dump().c_str());
      tokens += ev->usage.completion_tokens;
      ++completed;
      last_done = now;
      flying.erase(it);
      if (produced < requests) {
        produce_next();
        producer.flush(10000);
      }
    }
    const double seconds = ms_between(t0, last_done) / 1000;
    nlohmann::json summary = {{"type", "summary"}, {"requests", requests}, {"in_flight", in_flight},
                              {"completion_tokens", tokens}, {"seconds", seconds},
                              {"aggregate_tokens_per_s", seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0},
                              {"token_gap_ms_p50", percentile(gaps, 0.5)}, {"token_gap_ms_p99", percentile(gaps, 0.99)},
                              {"first_token_ms_p50", percentile(first_token, 0.5)},
                              {"first_token_ms_p99", percentile(first_token, 0.99)}};
    std::printf("%s\n", summary.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet_bench_load: %s\n", e.what());
    return 1;
  }
}
