#include "fleet/deployment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bus/consumer.h"
#include "bus/producer.h"
#include "contracts/result_events.h"
#include "support/stack_env.h"
#include "test_support.h"

namespace fleet::test {

using Clock = std::chrono::steady_clock;

std::string greedy_record(const std::string& id, const std::string& prompt, int max_tokens) {
  return nlohmann::json{{"id", id}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}}.dump();
}

size_t process_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

namespace {
// A worker's log so far ("" until the child has created it).
std::string log_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

Deployment::Deployment(DeploymentOptions o) : options_(std::move(o)) {
  const std::string prefix = unique_name(options_.name);
  dir_ = scratch_dir(prefix);
  std::ostringstream y;
  y << "kafka: {brokers: \"" << kafka_brokers() << "\", topic_prefix: " << prefix << ", partitions: 4}\n"
    << "redis: {url: \"" << redis_url() << "\"}\n"
    << "model: {name: " << options_.model_name << ", path: \"" << options_.model_path << "\", tokenizer: \""
    << options_.tokenizer << "\", weights: " << options_.weights << "}\n"
    << "stages:\n";
  for (const StageSpec& s : options_.stages) y << "  - layers: [" << s.first << ", " << s.end << "]\n";
  y << "batching: {max_batch_tokens: " << options_.max_batch_tokens
    << ", window_ms: 2, prefill_chunk: " << options_.prefill_chunk << "}\n"
    << "kv: {budget_bytes: " << options_.kv_budget << "}\n"
    << "timeouts: {request_s: 600, heartbeat_ttl_s: " << options_.heartbeat_ttl_s << ", finished_request_ttl_s: 3600}\n";
  config_path_ = dir_ + "/deployment.yaml";
  std::ofstream(config_path_) << y.str();
  config_ = load_config(config_path_);
  for (size_t k = 0; k < options_.stages.size(); ++k)
    for (int r = 0; r < options_.stages[k].replicas; ++r) start_worker(static_cast<int>(k));
  if (options_.wait_ready) wait_ready();
}

Deployment::~Deployment() {
  for (size_t i = 0; i < workers_.size(); ++i)
    if (workers_[i].running) signal_worker(i, SIGTERM);
  for (size_t i = 0; i < workers_.size(); ++i)
    if (workers_[i].running && wait_exit(i, std::chrono::seconds(20)) < 0) {
      signal_worker(i, SIGKILL);
      wait_exit(i, std::chrono::seconds(5));
    }
}

size_t Deployment::start_worker(int stage) {
  Worker w;
  w.stage = stage;
  w.log = dir_ + "/worker-" + std::to_string(workers_.size()) + "-stage" + std::to_string(stage) + ".log";
  const std::string binary = std::string(FLEET_BINARY_DIR) + "/services/fleet-stage/fleet-stage";
  const std::string stage_s = std::to_string(stage), threads_s = std::to_string(options_.threads);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(w.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(binary.c_str(), binary.c_str(), "--config", config_path_.c_str(), "--stage", stage_s.c_str(), "--threads",
          threads_s.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid < 0) throw std::runtime_error("fork failed");
  w.pid = pid;
  w.running = true;
  workers_.push_back(w);
  return workers_.size() - 1;
}

void Deployment::signal_worker(size_t i, int sig) { ::kill(workers_[i].pid, sig); }

int Deployment::wait_exit(size_t i, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(workers_[i].pid, &status, WNOHANG);
    if (r == workers_[i].pid) {
      workers_[i].running = false;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child's exit
  }
  return -1;
}

std::string Deployment::worker_id(size_t i) const {
  std::string log = log_of(workers_[i].log);
  size_t at = log.find("] ready");
  if (at == std::string::npos) return "";
  size_t open = log.rfind('[', at);
  return log.substr(open + 1, at - open - 1);
}

void Deployment::wait_ready(std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string problem;
  while (Clock::now() < deadline) {
    problem.clear();
    // stage -> partitions of its topic covered by the replicas' latest assignments
    std::map<int, std::set<int>> covered;
    for (size_t i = 0; i < workers_.size() && problem.empty(); ++i) {
      const Worker& w = workers_[i];
      if (!w.running) continue;
      if (waitpid(w.pid, nullptr, WNOHANG) == w.pid) {
        workers_[i].running = false;
        FAIL() << "worker " << i << " (stage " << w.stage << ") exited during start-up:\n" << log_of(w.log);
      }
      std::string log = log_of(w.log);
      if (log.find("] ready") == std::string::npos) {
        problem = "worker " + std::to_string(i) + " not ready";
        break;
      }
      size_t at = log.rfind("] assignment");
      if (at == std::string::npos) {
        problem = "worker " + std::to_string(i) + " has no assignment yet";
        break;
      }
      std::istringstream line(log.substr(at + 12, log.find('\n', at) - at - 12));
      const std::string topic = config_.stage_topic(w.stage) + ":";
      std::string tp;
      int mine = 0;
      while (line >> tp)
        if (tp.rfind(topic, 0) == 0) {
          covered[w.stage].insert(std::stoi(tp.substr(topic.size())));
          ++mine;
        }
      if (mine == 0) problem = "worker " + std::to_string(i) + " holds no partition of " + config_.stage_topic(w.stage);
    }
    for (size_t k = 0; k < options_.stages.size() && problem.empty(); ++k)
      if (static_cast<int>(covered[static_cast<int>(k)].size()) != config_.kafka.partitions)
        problem = "stage " + std::to_string(k) + " partitions not all assigned";
    if (problem.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling the workers' logs
  }
  std::string logs;
  for (const Worker& w : workers_) logs += "--- " + w.log + "\n" + log_of(w.log);
  FAIL() << "deployment not ready: " << problem << "\n" << logs;
}

std::map<std::string, Completion> Deployment::run(const std::vector<std::pair<std::string, std::string>>& records,
                                                  std::chrono::seconds timeout) {
  // Following the results topic from its end before producing: only this run's events count.
  auto results = bus::Consumer::from_end(kafka_brokers(), config_.results_topic());
  bus::Producer producer(kafka_brokers());
  for (const auto& [id, json] : records) producer.produce(config_.prompts_topic(), id, json);
  producer.flush(30000);
  std::map<std::string, Completion> out;
  std::set<std::string> pending;
  for (const auto& r : records) pending.insert(r.first);
  const auto deadline = Clock::now() + timeout;
  while (!pending.empty() && Clock::now() < deadline) {
    for (const bus::Message& m : results->poll_batch(512, 200)) {
      std::string err;
      auto ev = parse_result_event(m.value, &err);
      if (!ev) {
        ADD_FAILURE() << "unparsable result event: " << err << ": " << m.value;
        continue;
      }
      Completion& c = out[ev->id];
      switch (ev->type) {
        case ResultEvent::Type::Token:
          EXPECT_EQ(ev->index, static_cast<int>(c.tokens.size())) << "token events out of order for " << ev->id;
          c.tokens.push_back(ev->token_id);
          c.token_text += ev->text;
          break;
        case ResultEvent::Type::Done:
          c.text = ev->text;
          c.finish_reason = ev->finish_reason;
          c.prompt_tokens = ev->usage.prompt_tokens;
          c.completion_tokens = ev->usage.completion_tokens;
          pending.erase(ev->id);
          break;
        case ResultEvent::Type::Error:
          c.error_code = ev->error.code;
          c.text = ev->error.message;
          pending.erase(ev->id);
          break;
      }
    }
  }
  if (!pending.empty()) {
    std::string logs;
    for (const Worker& w : workers_) logs += "--- " + w.log + "\n" + log_of(w.log);
    ADD_FAILURE() << pending.size() << " of " << records.size() << " requests unfinished after " << timeout.count()
                  << " s\n" << logs;
  }
  return out;
}

}  // namespace fleet::test
