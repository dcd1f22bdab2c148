// The fleet with secrets: a Kafka broker that takes clients only over SASL/PLAIN and a Redis
// that requires a password (scripts/stack.sh up DIR --sasl-plain USER:PASS --redis-password PASS),
// both secrets in the deployment config (kafka.properties, redis.password). Requests are served;
// then neither secret may appear in a worker log, in any file the stack wrote (its configuration
// files aside), or in any record of the deployment's topics (results and dead-letter included).
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <algorithm>

#include <gtest/gtest.h>

#include "bus/admin.h"
#include "bus/producer.h"
#include "bus/topic_scan.h"
#include "fleet/deployment.h"
#include "state/redis_client.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

namespace fs = std::filesystem;

std::string random_hex() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string env_value(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string value;
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  return value;
}

int shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// The files under dir that contain any of the needles (binary-safe), as "path: needle".
std::vector<std::string> files_containing(const std::string& dir, const std::vector<std::string>& needles,
                                          const std::vector<std::string>& skip_names, size_t* files_read) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (std::find(skip_names.begin(), skip_names.end(), name) != skip_names.end()) continue;
    const std::string text = read_file(e.path().string());
    ++*files_read;
    for (const std::string& n : needles)
      if (text.find(n) != std::string::npos) found.push_back(e.path().string() + ": " + n.substr(0, 3) + "...");
  }
  return found;
}

class FleetAuth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    kafka_secret_ = "kafkaSecret-" + random_hex();
    redis_secret_ = "redisSecret-" + random_hex();
    script_ = std::string(FLEET_SOURCE_ROOT) + "/scripts/stack.sh";
    const std::string old = std::string(FLEET_BINARY_DIR) + "/test-scratch/auth-stack";
    if (fs::exists(old + "/stack.env")) shell("'" + script_ + "' down '" + old + "' >/dev/null 2>&1");
    dir_ = scratch_dir("auth-stack");
    // The secrets go on the command line of this short-lived script only (never of the broker
    // or redis-server), and never into its output.
    const int rc = shell("'" + script_ + "' up '" + dir_ + "' --sasl-plain fleet:" + kafka_secret_ +
                         " --redis-password " + redis_secret_ + " >'" + dir_ + "/stack-up.log' 2>&1");
    if (rc != 0) {
      setup_error_ = "scripts/stack.sh up --sasl-plain failed (exit " + std::to_string(rc) + "):\n" +
                     read_file(dir_ + "/stack-up.log");
      return;
    }
    sasl_brokers_ = env_value(dir_ + "/stack.env", "FLEET_KAFKA_SASL_BROKERS");
    plain_brokers_ = env_value(dir_ + "/stack.env", "FLEET_KAFKA_BROKERS");
    redis_url_ = env_value(dir_ + "/stack.env", "FLEET_REDIS_URL");
    if (sasl_brokers_.empty() || redis_url_.empty()) setup_error_ = "no FLEET_KAFKA_SASL_BROKERS in stack.env";
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) shell("'" + script_ + "' down '" + dir_ + "' >>'" + dir_ + "/stack-down.log' 2>&1");
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // A stories260K deployment on the authenticated stack, secrets in its config file.
  static DeploymentOptions options(std::vector<StageSpec> stages, const std::string& redis_password) {
    DeploymentOptions o;
    o.name = "auth";
    o.model_path = stories_bin();
    o.tokenizer = stories_tok();
    o.stages = std::move(stages);
    o.kafka_brokers = sasl_brokers_;  // the SASL listener only: nothing works without the properties
    o.redis_url = redis_url_;         // no password in the URL: it comes from redis.password
    o.redis_password = redis_password;
    o.kafka_properties = {{"security.protocol", "SASL_PLAINTEXT"},
                          {"sasl.mechanism", "PLAIN"},
                          {"sasl.username", "fleet"},
                          {"sasl.password", kafka_secret_}};
    return o;
  }

  static inline std::string kafka_secret_, redis_secret_, script_, dir_, setup_error_;
  static inline std::string sasl_brokers_, plain_brokers_, redis_url_;
};

TEST_F(FleetAuth, SecretsReachKafkaAndRedisButNoLogOrTopic) {
  // The SASL listener refuses a client without the credentials (so the workers below can only
  // have connected through kafka.properties).
  EXPECT_THROW(bus::Admin(sasl_brokers_).exists("anything", 3000), bus::BusError);

  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Mom said"};
  std::vector<std::pair<std::string, std::string>> records;
  const std::string ids = unique_name("auth") + "-";
  for (size_t i = 0; i < prompts.size(); ++i)
    records.emplace_back(ids + std::to_string(i), greedy_record(ids + std::to_string(i), prompts[i], 24));
  // A bad record: an error event and a dead-letter record, whose text must not carry a secret.
  records.emplace_back(ids + "bad", R"({"id": ")" + ids + R"(bad", "prompt": "x", "max_token": 5})");

  std::vector<std::string> worker_logs;
  std::string deployment_dir;
  DeploymentConfig config;
  {
    Deployment d(options({{0, 3, 1}, {3, 5, 1}}, redis_secret_));
    ASSERT_FALSE(HasFatalFailure());
    config = d.config();
    deployment_dir = fs::path(d.config_path()).parent_path().string();
    EXPECT_EQ(config.kafka.properties.at("sasl.password"), kafka_secret_);
    EXPECT_EQ(config.secrets().size(), 2u);  // the Redis password and sasl.password

    auto got = d.run(records, std::chrono::seconds(120));
    for (size_t i = 0; i < prompts.size(); ++i) {
      const Completion& c = got[ids + std::to_string(i)];
      EXPECT_EQ(c.error_code, "") << c.text;
      EXPECT_EQ(c.text, stories_reference(prompts[i], 24).text) << prompts[i];
    }
    EXPECT_EQ(got[ids + "bad"].error_code, "invalid_request");
    // Redis holds the request state: the workers authenticated with redis.password.
    RedisClient redis(config.redis.url);
    EXPECT_EQ(redis.hget("fleet:req:" + ids + "0", "status"), "done");
    for (const auto& w : d.workers()) worker_logs.push_back(w.log);
  }  // workers stopped (SIGTERM): their shutdown lines are in the logs too

  const std::vector<std::string> secrets = {kafka_secret_, redis_secret_};
  // Worker logs (the deployment's directory holds its config file, which does hold them).
  size_t files = 0;
  std::vector<std::string> leaks = files_containing(deployment_dir, secrets, {"deployment.yaml"}, &files);
  EXPECT_EQ(files, worker_logs.size()) << "the deployment directory holds other files than its config and logs";
  for (const std::string& log : worker_logs) EXPECT_GT(fs::file_size(log), 0u) << log;
  // Everything the stack wrote, its configuration files aside (the broker's JAAS config, the
  // redis.conf with requirepass, kcat's SASL config, the clients' stack.auth.env).
  std::vector<std::string> stack_leaks = files_containing(
      dir_, secrets, {"server.properties", "redis.conf", "kcat-sasl.conf", "stack.auth.env"}, &files);
  leaks.insert(leaks.end(), stack_leaks.begin(), stack_leaks.end());
  EXPECT_TRUE(leaks.empty()) << "secret found in: " << ::testing::PrintToString(leaks);
  EXPECT_TRUE(fs::exists(dir_ + "/kafka/server.log"));

  // Every record of every topic of the deployment.
  std::map<std::string, size_t> seen;
  for (const std::string& topic : config.all_topics()) {
    bus::scan_topic_since(
        config.kafka.brokers, topic, 0,
        [&](const bus::Message& m) {
          ++seen[topic];
          for (const std::string& s : secrets) {
            EXPECT_EQ(m.key.find(s), std::string::npos) << topic << " key";
            EXPECT_EQ(m.value.find(s), std::string::npos) << topic << " record " << m.offset << ": " << m.value;
          }
        },
        20000, config.kafka.properties);
  }
  EXPECT_GT(seen[config.results_topic()], prompts.size() * 24) << "token and done events";
  EXPECT_GE(seen[config.dead_letter_topic()], 1u);
  EXPECT_GT(seen[config.stage_topic(1)], 0u);
}

TEST_F(FleetAuth, WrongRedisPasswordStopsTheWorkerWithAClearErrorWithoutIt) {
  const std::string wrong = "wrongSecret-" + random_hex();
  DeploymentOptions o = options({{0, 5, 1}}, wrong);
  o.wait_ready = false;
  Deployment d(o);
  ASSERT_EQ(d.wait_exit(0, std::chrono::seconds(60)), 1) << d.log_tails();
  const std::string log = read_file(d.workers()[0].log);
  EXPECT_NE(log.find("AUTH failed"), std::string::npos) << log;
  EXPECT_NE(log.find("WRONGPASS"), std::string::npos) << log;
  EXPECT_NE(log.find("redis://:***@127.0.0.1:"), std::string::npos) << log;
  EXPECT_EQ(log.find(wrong), std::string::npos) << log;
  EXPECT_EQ(log.find(kafka_secret_), std::string::npos) << log;
}

// The bus never puts a secret property's value into an error (no broker needed: creating a
// client validates its configuration).
TEST(BusSecrets, ConfigurationErrorsRedactSecretValues) {
  const std::string secret = "busSecret-" + random_hex();
  // An invalid value of a secret property: the name is shown, the value is not.
  std::string err = error_of([&] { bus::Producer p("127.0.0.1:1", {{"ssl.key.password", secret}, {"linger.ms", secret}}); });
  EXPECT_NE(err.find("bus: invalid configuration linger.ms=***"), std::string::npos) << err;
  EXPECT_EQ(err.find(secret), std::string::npos) << err;
  // librdkafka's own text of a failed client creation (it names the key file) is scrubbed.
  err = error_of([&] {
    bus::Producer p("127.0.0.1:1", {{"security.protocol", "SSL"}, {"ssl.key.location", "/nonexistent/" + secret},
                                    {"ssl.key.password", secret}});
  });
  EXPECT_NE(err.find("cannot create producer"), std::string::npos) << err;
  EXPECT_EQ(err.find(secret), std::string::npos) << err;
  err = error_of([&] {
    bus::Admin a("127.0.0.1:1", {{"security.protocol", "SASL_PLAINTEXT"}, {"sasl.mechanism", "NOPE"},
                                 {"sasl.password", secret}});
  });
  EXPECT_NE(err.find("cannot create admin client"), std::string::npos) << err;
  EXPECT_EQ(err.find(secret), std::string::npos) << err;
}

}  // namespace
}  // namespace fleet::test
