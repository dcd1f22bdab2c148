#include "support/stack_env.h"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace fleet::test {
namespace {

std::string g_brokers;
std::string g_redis_url;
std::string g_setup_error;

// Runs a shell command, returns its exit status; output goes to log.
int run(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string tail_of(const std::string& path) {
  try {
    std::string s = read_file(path);
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
  } catch (const std::exception&) {
    return "";
  }
}

std::string g_stack_dir;  // scripts/stack.sh's DIR of this binary's stack

class StackEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    // ctest sets FLEET_BUILD_DIR; a direct run uses this binary's build tree.
    setenv("FLEET_BUILD_DIR", FLEET_BINARY_DIR, 0);
    script_ = std::string(FLEET_SOURCE_ROOT) + "/scripts/stack.sh";
    // A stack left running by an interrupted earlier run is stopped before its
    // directory is wiped (down is idempotent).
    const std::string name = std::string(program_invocation_short_name) + "-stack";
    const std::string old = std::string(FLEET_BINARY_DIR) + "/test-scratch/" + name;
    if (std::filesystem::exists(old + "/stack.env")) run("'" + script_ + "' down '" + old + "' >/dev/null 2>&1");
    dir_ = scratch_dir(name);
    g_stack_dir = dir_;
    const std::string log = dir_ + "/stack-up.log";
    const char* brokers = std::getenv("FLEET_TEST_BROKERS");
    const std::string options = brokers && std::string(brokers) == "3" ? " --brokers 3" : "";
    int rc = run("'" + script_ + "' up '" + dir_ + "'" + options + " >'" + log + "' 2>&1");
    if (rc != 0) {
      g_setup_error = "scripts/stack.sh up " + dir_ + " failed (exit " + std::to_string(rc) + "):\n" + tail_of(log);
      FAIL() << g_setup_error;
    }
    std::ifstream env(dir_ + "/stack.env");
    std::string line;
    while (std::getline(env, line)) {
      const std::string key = "FLEET_KAFKA_BROKERS=", redis_key = "FLEET_REDIS_URL=";
      if (line.rfind(key, 0) == 0) g_brokers = line.substr(key.size());
      if (line.rfind(redis_key, 0) == 0) g_redis_url = line.substr(redis_key.size());
    }
    if (g_brokers.empty()) {
      g_setup_error = "no FLEET_KAFKA_BROKERS in " + dir_ + "/stack.env";
      FAIL() << g_setup_error;
    }
  }

  void TearDown() override {
    if (dir_.empty()) return;
    const std::string log = dir_ + "/stack-down.log";
    int rc = run("'" + script_ + "' down '" + dir_ + "' >'" + log + "' 2>&1");
    EXPECT_EQ(rc, 0) << "scripts/stack.sh down failed:\n" << tail_of(log);
  }

 private:
  std::string dir_;
  std::string script_;
};

// Registered before main() runs (gtest_main calls RUN_ALL_TESTS, which owns it).
[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new StackEnvironment);

}  // namespace

const std::string& kafka_brokers() {
  if (g_brokers.empty()) {
    ADD_FAILURE() << "Kafka stack is not up: " << g_setup_error;
  }
  return g_brokers;
}

const std::string& redis_url() {
  if (g_redis_url.empty()) {
    ADD_FAILURE() << "redis-server of the stack is not up: " << g_setup_error;
  }
  return g_redis_url;
}

std::string unique_name(const std::string& prefix) {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return prefix + "-" + buf;
}

}  // namespace fleet::test

namespace fleet::test {

const std::string& stack_dir() { return g_stack_dir; }

int stack_command(const std::string& command, const std::string& arg) {
  const std::string script = std::string(FLEET_SOURCE_ROOT) + "/scripts/stack.sh";
  const std::string log = g_stack_dir + "/stack-commands.log";
  return run("'" + script + "' " + command + " '" + g_stack_dir + "'" + (arg.empty() ? "" : " '" + arg + "'") +
             " >>'" + log + "' 2>&1");
}

int stack_brokers() { return 1 + static_cast<int>(std::count(g_brokers.begin(), g_brokers.end(), ',')); }

std::map<int, int> partition_leaders(const std::string& brokers, const std::string& topic) {
  std::map<int, int> leaders;
  std::string out;
  if (FILE* f = popen(("kcat -L -J -m 10 -b '" + brokers + "' -t '" + topic + "' 2>/dev/null").c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    pclose(f);
  }
  const nlohmann::json md = nlohmann::json::parse(out, nullptr, false);
  if (md.is_discarded() || !md.contains("topics")) return leaders;
  for (const auto& t : md["topics"])
    if (t.value("topic", "") == topic && t.contains("partitions"))
      for (const auto& p : t["partitions"]) leaders[p.value("partition", -1)] = p.value("leader", -1);
  return leaders;
}

}  // namespace fleet::test
