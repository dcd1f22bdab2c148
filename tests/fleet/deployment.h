#pragma once
// A fleet deployment for tests: a config file with a unique topic prefix, real fleet-stage
// processes (one per stage replica) against the test binary's Kafka + Redis stack, and a
// client that submits prompt records and collects the results topic.
#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "config/deployment_config.h"

namespace fleet::test {

struct StageSpec {
  int first = 0, end = 0;
  int replicas = 1;
};

struct DeploymentOptions {
  std::string name = "fleet";  // topic prefix stem and scratch directory name
  std::string model_path, tokenizer, model_name = "stories260K";
  std::vector<StageSpec> stages;
  double heartbeat_ttl_s = 3;
  std::string kv_budget = "64MiB";
  std::string weights = "auto";
  int threads = 1;  // compute threads per worker (the machine has 2 cores for everything)
  int prefill_chunk = 256;
  int max_batch_tokens = 512;
  bool wait_ready = true;
};

struct Completion {
  std::string text;            // the done event's text
  std::vector<int32_t> tokens; // token_id of each token event, in index order
  std::string token_text;      // concatenated text of the token events
  std::string finish_reason;
  std::string error_code;      // set when an error event arrived instead
  int prompt_tokens = 0, completion_tokens = 0;
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

  size_t start_worker(int stage);  // returns its index in workers()
  // Waits until every running worker printed "ready" and, per stage, the replicas' latest
  // assignments cover all partitions of the stage topic with none empty.
  void wait_ready(std::chrono::seconds timeout = std::chrono::seconds(90));
  void signal_worker(size_t i, int sig);
  int wait_exit(size_t i, std::chrono::seconds timeout);  // exit status (128+signal when killed)
  std::string worker_id(size_t i) const;                   // from its log

  // Produces each (id, record JSON) to the prompts topic (key = id) and reads the results
  // topic until every id has a done or error event.
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

// Resident set size of another process, from /proc/<pid>/status.
size_t process_rss_bytes(pid_t pid);

}  // namespace fleet::test
