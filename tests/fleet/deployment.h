#pragma once
// A fleet deployment for tests: a config file with a unique topic prefix, real fleet-stage
// processes (one per stage replica) against the test binary's Kafka + Redis stack, and a
// client that submits prompt records and collects the results topic.
//
//   Deployment d(options);                      // starts the workers, waits until ready
//   auto got = d.run(records);                  // submit + collect until all finished
//
// or, to act while requests are in flight (tests/fleet/churn_test.cpp):
//
//   ResultCollector results(d.config());        // follows the results topic from its end
//   d.submit(records);
//   results.wait_token_events(100, timeout);
//   size_t j = d.start_worker(1);               // ... inject a fault ...
//   d.wait_worker_ready(j);
//   results.wait_all_finished(ids, timeout);
//   results.drain(std::chrono::seconds(2));     // late duplicates, events after the terminal one
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/deployment_config.h"
#include "contracts/result_events.h"

namespace fleet::bus {
class Consumer;
}

namespace fleet::test {

struct StageSpec {
  int first = 0, end = 0;
  int replicas = 1;  // fleet-stage processes started for this stage by the constructor
  // FLEET_KERNELS of each replica started by the constructor ("" or missing: chosen at run time).
  std::vector<std::string> kernels = {};
};

struct DeploymentOptions {
  std::string name = "fleet";  // topic prefix stem and scratch directory name
  std::string model_path, tokenizer, model_name = "stories260K";
  std::vector<StageSpec> stages;
  double heartbeat_ttl_s = 3;
  double shutdown_s = 10;  // timeouts.shutdown_s
  std::string kv_budget = "64MiB";
  int max_requests = 256;  // kv.max_requests
  std::string weights = "auto";
  std::string activations = "auto";  // model.activations
  int threads = 1;  // compute threads per worker (the machine has 2 cores for everything)
  int prefill_chunk = 256;
  int max_batch_tokens = 512;
  bool wait_ready = true;  // the constructor calls wait_ready()
  // Another stack than the test binary's (tests/fleet/auth_test.cpp); "" = kafka_brokers() / redis_url().
  std::string kafka_brokers, redis_url;
  // Written into the config (kafka.properties, e.g. SASL settings; redis.password, "" = none). The
  // test's own clients (submit, ResultCollector) use the config's brokers and properties too.
  std::map<std::string, std::string> kafka_properties;
  std::string redis_password;
  // kafka.replication_factor of the deployment's topics (3 on a --brokers 3 stack, cluster_test.cpp).
  int replication_factor = 1;
};

struct Completion {
  std::string text;            // the done event's text
  std::vector<int32_t> tokens; // token_id of each token index (its first event), in index order
  std::string token_text;      // concatenated text of those token events
  std::string finish_reason;
  std::string error_code;      // set when an error event arrived instead
  int prompt_tokens = 0, completion_tokens = 0;
  std::optional<ToolCallsOutput> tool_calls;  // the done event's, when the output was calls
};

// One results record as a ResultCollector saw it.
struct ObservedEvent {
  ResultEvent event;
  int64_t time_ms = 0;  // the record's Kafka timestamp (producer create time, ms since epoch),
                        // or when it was read if the record has none
};

// Everything the results topic carried for one request id.
struct RequestTrace {
  std::vector<ObservedEvent> events;  // every event in arrival order, duplicates included
  int terminal_events = 0;            // done + error events
  bool finished() const { return terminal_events > 0; }
  // From the first event of each token index (in index order) and the first terminal event.
  Completion completion() const;
};

// Follows a deployment's results topic from its end (create it before submitting: only
// events produced after the constructor returns are seen) and records every event.
class ResultCollector {
 public:
  explicit ResultCollector(const DeploymentConfig& config);
  ~ResultCollector();
  ResultCollector(const ResultCollector&) = delete;
  ResultCollector& operator=(const ResultCollector&) = delete;

  // Reads what arrives within timeout_ms (one poll of up to 512 records); returns how many.
  size_t poll(int timeout_ms = 100);
  // Polls until done() holds or the timeout passes; returns done(). done is checked first.
  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // Until at least n token events (all requests, duplicates included) have been read.
  bool wait_token_events(size_t n, std::chrono::milliseconds timeout);
  // Until each of ids has a done or error event.
  bool wait_all_finished(const std::vector<std::string>& ids, std::chrono::milliseconds timeout);
  // Keeps reading until no record arrived for `quiet` (or `limit` passed): catches duplicates
  // and events after a request's terminal event. Returns the records read meanwhile.
  size_t drain(std::chrono::milliseconds quiet, std::chrono::milliseconds limit = std::chrono::seconds(30));

  size_t token_events() const { return token_events_; }
  size_t records() const { return records_; }
  const std::map<std::string, RequestTrace>& traces() const { return traces_; }
  const RequestTrace* trace(const std::string& id) const;
  std::map<std::string, Completion> completions() const;
  std::vector<std::string> unfinished(const std::vector<std::string>& ids) const;

  // How a request's events break "each token index exactly once, in order, then one terminal
  // event (done or error) and nothing after it": one line per problem, empty if none. A request
  // without a terminal event is not reported here (see unfinished()); more than one is.
  static std::vector<std::string> delivery_problems(const RequestTrace& t);

 private:
  std::unique_ptr<bus::Consumer> consumer_;
  std::map<std::string, RequestTrace> traces_;
  size_t token_events_ = 0, records_ = 0;
};

class Deployment {
 public:
  struct Worker {
    pid_t pid = -1;
    int stage = 0;
    std::string log;
    bool running = false;
  };

  explicit Deployment(DeploymentOptions options);
  ~Deployment();  // SIGTERM to every worker, then waits for them
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;

  const DeploymentConfig& config() const { return config_; }
  const std::string& config_path() const { return config_path_; }
  std::vector<Worker>& workers() { return workers_; }

  // Returns its index in workers(); does not wait. `kernels`: its FLEET_KERNELS ("" = not set).
  size_t start_worker(int stage, const std::string& kernels = "");
  // Waits until every running worker printed "ready" and, per stage, the replicas' latest
  // assignments cover all partitions of the stage topic with none empty.
  void wait_ready(std::chrono::seconds timeout = std::chrono::seconds(90));
  // Whether worker i printed "[<worker-id>] ready" (its topics exist, its consumer is created).
  bool worker_ready(size_t i) const;
  // Waits until worker i printed "ready"; a fatal failure (with its log) if it exits first or
  // the timeout passes (use ASSERT_NO_FATAL_FAILURE). Relies on no assignment lines.
  void wait_worker_ready(size_t i, std::chrono::seconds timeout = std::chrono::seconds(60));
  // The same for every running worker.
  void wait_workers_ready(std::chrono::seconds timeout = std::chrono::seconds(90));
  void signal_worker(size_t i, int sig);
  int wait_exit(size_t i, std::chrono::seconds timeout);  // exit status (128+signal when killed), -1 on timeout
  std::string worker_id(size_t i) const;                   // from its log
  std::string worker_log(size_t i) const;                  // its whole log so far
  // The last `lines` lines of every worker's log, each under a header naming the worker.
  std::string log_tails(size_t lines = 30) const;

  // Produces each (id, record JSON) to the prompts topic (key = id) and flushes.
  void submit(const std::vector<std::pair<std::string, std::string>>& records);
  // submit() and read the results topic until every id has a done or error event; token
  // events must arrive in index order (a test failure otherwise).
  std::map<std::string, Completion> run(const std::vector<std::pair<std::string, std::string>>& records,
                                        std::chrono::seconds timeout = std::chrono::seconds(180));

 private:
  DeploymentOptions options_;
  std::string dir_, config_path_;
  DeploymentConfig config_;
  std::vector<Worker> workers_;
};

// {"id": id, "prompt": prompt, "max_tokens": n, "temperature": 0}
std::string greedy_record(const std::string& id, const std::string& prompt, int max_tokens);

}  // namespace fleet::test
