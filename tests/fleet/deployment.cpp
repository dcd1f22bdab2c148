#include "fleet/deployment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

namespace {
// A double-quoted YAML scalar.
std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

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
  std::string props;
  for (const auto& [name, value] : options_.kafka_properties)
    props += (props.empty() ? "" : ", ") + name + ": " + yaml_quoted(value);
  y << "kafka: {brokers: \"" << (options_.kafka_brokers.empty() ? kafka_brokers() : options_.kafka_brokers)
    << "\", topic_prefix: " << prefix << ", partitions: 4"
    << (options_.replication_factor == 1 ? "" : ", replication_factor: " + std::to_string(options_.replication_factor))
    << (props.empty() ? "" : ", properties: {" + props + "}")
    << "}\n"
    << "redis: {url: \"" << (options_.redis_url.empty() ? redis_url() : options_.redis_url) << "\""
    << (options_.redis_password.empty() ? "" : ", password: " + yaml_quoted(options_.redis_password)) << "}\n"
    << "model: {name: " << options_.model_name << ", path: \"" << options_.model_path << "\", tokenizer: \""
    << options_.tokenizer << "\", weights: " << options_.weights << ", activations: " << options_.activations << "}\n"
    << "stages:\n";
  for (const StageSpec& s : options_.stages) y << "  - layers: [" << s.first << ", " << s.end << "]\n";
  y << "batching: {max_batch_tokens: " << options_.max_batch_tokens
    << ", window_ms: 0, prefill_chunk: " << options_.prefill_chunk << "}\n"
    << "kv: {budget_bytes: " << options_.kv_budget << ", max_requests: " << options_.max_requests << "}\n"
    << "timeouts: {request_s: 600, heartbeat_ttl_s: " << options_.heartbeat_ttl_s
    << ", finished_request_ttl_s: 3600, shutdown_s: " << options_.shutdown_s << "}\n";
  config_path_ = dir_ + "/deployment.yaml";
  std::ofstream(config_path_) << y.str();
  config_ = load_config(config_path_);
  for (size_t k = 0; k < options_.stages.size(); ++k)
    for (int r = 0; r < options_.stages[k].replicas; ++r) {
      const auto& kernels = options_.stages[k].kernels;
      start_worker(static_cast<int>(k), static_cast<size_t>(r) < kernels.size() ? kernels[static_cast<size_t>(r)] : "");
    }
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

size_t Deployment::start_worker(int stage, const std::string& kernels) {
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
    if (kernels.empty()) {
      unsetenv("FLEET_KERNELS");
    } else {
      setenv("FLEET_KERNELS", kernels.c_str(), 1);
    }
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

std::string Deployment::worker_log(size_t i) const { return log_of(workers_[i].log); }

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

void Deployment::submit(const std::vector<std::pair<std::string, std::string>>& records) {
  bus::Producer producer(config_.kafka.brokers, config_.kafka.properties);
  for (const auto& [id, json] : records) producer.produce(config_.prompts_topic(), id, json);
  producer.flush(30000);
}

std::map<std::string, Completion> Deployment::run(const std::vector<std::pair<std::string, std::string>>& records,
                                                  std::chrono::seconds timeout) {
  // Following the results topic from its end before producing: only this run's events count.
  ResultCollector results(config_);
  submit(records);
  std::vector<std::string> ids;
  for (const auto& r : records) ids.push_back(r.first);
  if (!results.wait_all_finished(ids, timeout)) {
    std::string logs;
    for (const Worker& w : workers_) logs += "--- " + w.log + "\n" + log_of(w.log);
    ADD_FAILURE() << results.unfinished(ids).size() << " of " << records.size() << " requests unfinished after "
                  << timeout.count() << " s\n" << logs;
  }
  for (const auto& [id, t] : results.traces()) {
    int next = 0;
    for (const ObservedEvent& e : t.events) {
      if (e.event.type == ResultEvent::Type::Token) {
        EXPECT_EQ(e.event.index, next++) << "token events out of order for " << id;
      }
    }
  }
  return results.completions();
}

// ---- ResultCollector ----

namespace {
// The collector's client stays quiet while a test stops the broker on purpose (librdkafka would
// print every refused reconnect to stderr, burying the test's own report in CI's output).
std::map<std::string, std::string> quiet(std::map<std::string, std::string> properties) {
  properties.emplace("log_level", "2");
  return properties;
}
}  // namespace

ResultCollector::ResultCollector(const DeploymentConfig& config)
    : consumer_(bus::Consumer::from_end(config.kafka.brokers, config.results_topic(), quiet(config.kafka.properties))) {}

ResultCollector::~ResultCollector() = default;

size_t ResultCollector::poll(int timeout_ms) {
  std::vector<bus::Message> batch = consumer_->poll_batch(512, timeout_ms);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  for (const bus::Message& m : batch) {
    ++records_;
    std::string err;
    auto ev = parse_result_event(m.value, &err);
    if (!ev) {
      ADD_FAILURE() << "unparsable result event: " << err << ": " << m.value;
      continue;
    }
    RequestTrace& t = traces_[ev->id];
    if (ev->type == ResultEvent::Type::Token) ++token_events_;
    else ++t.terminal_events;
    t.events.push_back({std::move(*ev), m.timestamp_ms > 0 ? m.timestamp_ms : now_ms});
  }
  return batch.size();
}


bool ResultCollector::wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    poll(static_cast<int>(std::min<long long>(left, 100)));
  }
  return true;
}

bool ResultCollector::wait_token_events(size_t n, std::chrono::milliseconds timeout) {
  return wait_until([&] { return token_events_ >= n; }, timeout);
}

bool ResultCollector::wait_all_finished(const std::vector<std::string>& ids, std::chrono::milliseconds timeout) {
  return wait_until([&] { return unfinished(ids).empty(); }, timeout);
}

size_t ResultCollector::drain(std::chrono::milliseconds quiet, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  auto last = Clock::now();
  size_t n = 0;
  while (Clock::now() - last < quiet && Clock::now() < deadline) {
    const size_t got = poll(100);
    n += got;
    if (got > 0) last = Clock::now();
  }
  return n;
}

const RequestTrace* ResultCollector::trace(const std::string& id) const {
  auto it = traces_.find(id);
  return it == traces_.end() ? nullptr : &it->second;
}

std::map<std::string, Completion> ResultCollector::completions() const {
  std::map<std::string, Completion> out;
  for (const auto& [id, t] : traces_) out[id] = t.completion();
  return out;
}

std::vector<std::string> ResultCollector::unfinished(const std::vector<std::string>& ids) const {
  std::vector<std::string> out;
  for (const std::string& id : ids)
    if (const RequestTrace* t = trace(id); !t || !t->finished()) out.push_back(id);
  return out;
}

Completion RequestTrace::completion() const {
  Completion c;
  std::map<int, const ResultEvent*> first;  // token index -> its first event
  bool terminal = false;
  for (const ObservedEvent& o : events) {
    const ResultEvent& e = o.event;
    if (e.type == ResultEvent::Type::Token) {
      first.emplace(e.index, &e);
    } else if (!terminal) {
      terminal = true;
      if (e.type == ResultEvent::Type::Done) {
        c.text = e.text;
        c.finish_reason = e.finish_reason;
        c.prompt_tokens = e.usage.prompt_tokens;
        c.completion_tokens = e.usage.completion_tokens;
        c.tool_calls = e.tool_calls;
      } else {
        c.error_code = e.error.code;
        c.text = e.error.message;
      }
    }
  }
  for (const auto& [index, e] : first) {
    c.tokens.push_back(e->token_id);
    c.token_text += e->text;
  }
  return c;
}

std::vector<std::string> ResultCollector::delivery_problems(const RequestTrace& t) {
  std::vector<std::string> out;
  std::map<int, int> count;
  int max_index = -1, prev = -1, after_terminal = 0;
  bool terminal = false, out_of_order = false;
  for (const ObservedEvent& o : t.events) {
    const ResultEvent& e = o.event;
    if (terminal) ++after_terminal;
    if (e.type != ResultEvent::Type::Token) {
      terminal = true;
      continue;
    }
    if (++count[e.index] == 1) {
      if (e.index < prev && !out_of_order) {
        out_of_order = true;
        out.push_back("token index " + std::to_string(e.index) + " arrived after index " + std::to_string(prev));
      }
      prev = std::max(prev, e.index);
    }
    max_index = std::max(max_index, e.index);
  }
  std::string dups, missing;
  int n_dups = 0, n_missing = 0;
  for (const auto& [index, n] : count)
    if (n > 1 && ++n_dups <= 8) dups += " " + std::to_string(index) + "(x" + std::to_string(n) + ")";
  for (int i = 0; i <= max_index; ++i)
    if (!count.count(i) && ++n_missing <= 8) missing += " " + std::to_string(i);
  if (n_dups) out.push_back(std::to_string(n_dups) + " token indices more than once:" + dups + (n_dups > 8 ? " ..." : ""));
  if (n_missing) out.push_back(std::to_string(n_missing) + " token indices missing:" + missing + (n_missing > 8 ? " ..." : ""));
  if (t.terminal_events > 1) out.push_back(std::to_string(t.terminal_events) + " terminal (done/error) events");
  if (after_terminal) out.push_back(std::to_string(after_terminal) + " events after the terminal event");
  return out;
}

// ---- worker start-up and logs ----

bool Deployment::worker_ready(size_t i) const { return log_of(workers_[i].log).find("] ready") != std::string::npos; }

void Deployment::wait_worker_ready(size_t i, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!worker_ready(i)) {
    Worker& w = workers_[i];
    if (w.running && waitpid(w.pid, nullptr, WNOHANG) == w.pid) w.running = false;
    if (!w.running)
      FAIL() << "worker " << i << " (stage " << w.stage << ") exited before it was ready:\n" << log_of(w.log);
    if (Clock::now() >= deadline)
      FAIL() << "worker " << i << " (stage " << w.stage << ") not ready after " << timeout.count() << " s:\n"
             << log_of(w.log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling the worker's log
  }
}

void Deployment::wait_workers_ready(std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i].running) continue;
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now());
    wait_worker_ready(i, std::max(left, std::chrono::seconds(1)));
    if (::testing::Test::HasFatalFailure()) return;
  }
}

std::string Deployment::log_tails(size_t lines) const {
  std::string out;
  for (size_t i = 0; i < workers_.size(); ++i) {
    const Worker& w = workers_[i];
    std::vector<std::string> all;
    std::istringstream in(log_of(w.log));
    for (std::string line; std::getline(in, line);) all.push_back(line);
    const size_t from = all.size() > lines ? all.size() - lines : 0;
    out += "--- worker " + std::to_string(i) + " (stage " + std::to_string(w.stage) + ", pid " + std::to_string(w.pid) +
           (w.running ? "" : ", exited") + ") " + w.log +
           (from ? " (last " + std::to_string(lines) + " of " + std::to_string(all.size()) + " lines)" : "") + "\n";
    for (size_t k = from; k < all.size(); ++k) out += all[k] + "\n";
  }
  return out;
}

}  // namespace fleet::test
