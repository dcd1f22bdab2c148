// The deployment YAML: defaults, validation, env overrides, path resolution, topic names.
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "config/deployment_config.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::error_of;

const char* kMinimal = R"(
kafka: {brokers: "k1:9092"}
redis: {url: "redis://r1:6379/0"}
model: {path: models/m.bin}
stages:
  - layers: [0, 2]
  - layers: [2, 5]
)";

EnvLookup no_env() {
  return [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
}

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

DeploymentConfig parse(const std::string& text, const EnvLookup& env = no_env()) {
  return parse_config(text, "test.yaml", "/base/dir", env);
}

// The message of the ConfigError that parsing `text` throws ("" when it parses).
std::string parse_error(const std::string& text) {
  return error_of([&] { parse(text); });
}

TEST(DeploymentConfig, MinimalFileGetsDefaults) {
  DeploymentConfig c = parse(kMinimal);
  EXPECT_EQ(c.kafka.brokers, "k1:9092");
  EXPECT_EQ(c.kafka.topic_prefix, "fleet");
  EXPECT_EQ(c.kafka.max_message_bytes, 1000000u);
  EXPECT_EQ(c.redis.url, "redis://r1:6379/0");
  EXPECT_EQ(c.model.path, "/base/dir/models/m.bin");
  EXPECT_EQ(c.model.name, "m");
  EXPECT_EQ(c.model.tokenizer, "");
  EXPECT_EQ(c.model.weights, "auto");
  ASSERT_EQ(c.stage_count(), 2);
  EXPECT_EQ(c.stage(0), (StageLayers{0, 2}));
  EXPECT_EQ(c.stage(1), (StageLayers{2, 5}));
  EXPECT_EQ(c.stage(1).count(), 3);
  EXPECT_EQ(c.batching.max_batch_tokens, 512);
  EXPECT_EQ(c.batching.window_ms, 0);
  EXPECT_EQ(c.batching.prefill_chunk, 256);
  EXPECT_EQ(c.kv.budget_bytes, uint64_t{1} << 30);
  EXPECT_EQ(c.timeouts.heartbeat_ttl_s, 10);
  EXPECT_EQ(c.timeouts.finished_request_ttl_s, 3600);
  EXPECT_EQ(c.timeouts.shutdown_s, 10);
  EXPECT_GT(c.timeouts.request_s, 0);
  EXPECT_NO_THROW(c.validate(5));
}

TEST(DeploymentConfig, TopicNames) {
  DeploymentConfig c = parse(std::string(kMinimal) + "\n");
  EXPECT_EQ(c.prompts_topic(), "fleet.prompts");
  EXPECT_EQ(c.results_topic(), "fleet.results");
  EXPECT_EQ(c.dead_letter_topic(), "fleet.dead-letter");
  EXPECT_EQ(c.stage_topic(1), "fleet.stage.1");
  EXPECT_EQ(c.stage_consumer_group(0), "fleet.stage.0");
  EXPECT_EQ(c.all_topics(),
            (std::vector<std::string>{"fleet.prompts", "fleet.results", "fleet.dead-letter", "fleet.control", "fleet.stage.0",
                                      "fleet.stage.1"}));
  EXPECT_NE(error_of([&] { c.stage_topic(2); }).find("stage 2 does not exist"), std::string::npos);
  EXPECT_EQ(stage_topic("x", 3), "x.stage.3");
  EXPECT_EQ(prompts_topic("x"), "x.prompts");
}

TEST(DeploymentConfig, EnvironmentWinsOverTheFile) {
  auto env = env_of({{"FLEET_KAFKA_BROKERS", "127.0.0.1:40001"}, {"FLEET_REDIS_URL", "redis://127.0.0.1:40002/0"}});
  DeploymentConfig c = parse(kMinimal, env);
  EXPECT_EQ(c.kafka.brokers, "127.0.0.1:40001");
  EXPECT_EQ(c.redis.url, "redis://127.0.0.1:40002/0");
  // Empty variables do not override.
  c = parse(kMinimal, env_of({{"FLEET_KAFKA_BROKERS", ""}}));
  EXPECT_EQ(c.kafka.brokers, "k1:9092");
  // The environment can supply what the file leaves out.
  const std::string no_endpoints = "model: {path: /abs/m.bin}\nstages: [{layers: [0, 1]}]\n";
  EXPECT_NE(parse_error(no_endpoints).find("kafka.brokers: missing"), std::string::npos);
  c = parse(no_endpoints, env);
  EXPECT_EQ(c.kafka.brokers, "127.0.0.1:40001");
  EXPECT_EQ(c.model.path, "/abs/m.bin");
}

TEST(DeploymentConfig, EverySettingIsRead) {
  DeploymentConfig c = parse(R"(
kafka: {brokers: "a:1,b:2", topic_prefix: my-fleet.v1, max_message_bytes: 2MiB, partitions: 3, replication_factor: 2}
redis: {url: "unix:///run/redis.sock"}
model: {name: tiny, path: /m, tokenizer: tok/t.json, weights: BF16, activations: Q8, blas_prefill: true}
stages: [{layers: [0, 22]}]
batching: {max_batch_tokens: 1024, window_ms: 0, prefill_chunk: 128}
kv: {budget_bytes: 1.5GB}
timeouts: {request_s: 30.5, heartbeat_ttl_s: 3, finished_request_ttl_s: 60, shutdown_s: 2.5}
)");
  EXPECT_EQ(c.kafka.topic_prefix, "my-fleet.v1");
  EXPECT_EQ(c.kafka.max_message_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(c.kafka.partitions, 3);
  EXPECT_EQ(c.kafka.replication_factor, 2);
  EXPECT_EQ(c.redis.url, "unix:///run/redis.sock");
  EXPECT_EQ(c.model.name, "tiny");
  EXPECT_EQ(c.model.tokenizer, "/base/dir/tok/t.json");
  EXPECT_EQ(c.model.weights, "bf16");
  EXPECT_EQ(c.model.activations, "q8");
  EXPECT_TRUE(c.model.blas_prefill);
  EXPECT_EQ(c.batching.max_batch_tokens, 1024);
  EXPECT_EQ(c.batching.window_ms, 0);
  EXPECT_EQ(c.batching.prefill_chunk, 128);
  EXPECT_EQ(c.kv.budget_bytes, 1500000000u);
  EXPECT_DOUBLE_EQ(c.timeouts.request_s, 30.5);
  EXPECT_DOUBLE_EQ(c.timeouts.heartbeat_ttl_s, 3);
  EXPECT_DOUBLE_EQ(c.timeouts.finished_request_ttl_s, 60);
  EXPECT_DOUBLE_EQ(c.timeouts.shutdown_s, 2.5);
  EXPECT_EQ(c.stage_topic(0), "my-fleet.v1.stage.0");
  EXPECT_NO_THROW(c.validate(22));
}

TEST(DeploymentConfig, ValidateAgainstTheModelsLayerCount) {
  DeploymentConfig c = parse(kMinimal);
  EXPECT_NE(error_of([&] { c.validate(6); }).find("cover layers [0, 5) but the model has 6 layers"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.validate(4); }).find("the model has 4 layers"), std::string::npos);
  c.stages = {{0, 2}, {3, 5}};
  EXPECT_NE(error_of([&] { c.validate(5); }).find("stage 1 starts at layer 3, expected 2"), std::string::npos);
  c.stages.clear();
  EXPECT_NE(error_of([&] { c.validate(5); }).find("no stages"), std::string::npos);
}

TEST(DeploymentConfig, ClearErrorsNameTheFileAndKey) {
  struct Case {
    std::string yaml, expected;
  };
  const std::string endpoints = "kafka: {brokers: k:1}\nredis: {url: 'redis://r:1'}\n";
  const std::string model = "model: {path: m.bin}\n";
  const std::string stages = "stages: [{layers: [0, 5]}]\n";
  const std::vector<Case> cases = {
      {"kafka: [unclosed", "test.yaml:1:"},
      {"", "test.yaml: the file is empty"},
      {"- a\n- b\n", "expected a mapping at the top level"},
      {endpoints + stages, "test.yaml: model: missing"},
      {endpoints + "model: {name: x}\n" + stages, "model.path: missing"},
      {endpoints + model, "stages: missing"},
      {endpoints + model + "stages: []\n", "stages: expected a non-empty list"},
      {endpoints + model + "stages: [{layers: [0]}]\n", "stages[0].layers: expected [first, end]"},
      {endpoints + model + "stages: [{layers: [0, x]}]\n", "stages[0].layers[1]: expected an integer, got 'x'"},
      {endpoints + model + "stages: [{layers: [2, 2]}]\n", "stages[0].layers: [2, 2] is empty"},
      {endpoints + model + "stages: [{layers: [1, 3]}]\n", "stages[0].layers: starts at layer 1, expected 0"},
      {endpoints + model + "stages: [{layers: [0, 2]}, {layers: [3, 5]}]\n",
       "stages[1].layers: starts at layer 3, expected 2"},
      {endpoints + model + "stages: [{layers: [0, 2], replicas: 2}]\n", "stages[0].replicas: unknown key"},
      {endpoints + model + "stages: [[0, 2]]\n", "stages[0]: expected {layers: [first, end]}"},
      {endpoints + model + stages + "batching: {window_ms: soon}\n",
       "batching.window_ms: expected an integer, got 'soon' (line 5)"},
      {endpoints + model + stages + "batching: {max_batch_tokens: 0}\n", "batching.max_batch_tokens: 0 is out of range"},
      {endpoints + model + stages + "batching: {max_batch_tokens: 64}\n",
       "batching.prefill_chunk: 256 exceeds batching.max_batch_tokens 64"},
      {endpoints + model + stages + "batchng: {window_ms: 1}\n", "test.yaml: batchng: unknown key"},
      {endpoints + model + stages + "kv: {budget: 1GiB}\n", "kv.budget: unknown key"},
      {endpoints + model + stages + "kv: {budget_bytes: lots}\n", "kv.budget_bytes: expected a byte size"},
      {endpoints + model + stages + "timeouts: {request_s: -1}\n", "timeouts.request_s: must be > 0"},
      {endpoints + model + stages + "timeouts: {heartbeat_ttl_s: x}\n",
       "timeouts.heartbeat_ttl_s: expected a number of seconds"},
      {endpoints + model + stages + "timeouts: 5\n", "timeouts: expected a mapping"},
      {"kafka: {brokers: k:1, topic_prefix: 'a b'}\nredis: {url: 'redis://r:1'}\n" + model + stages,
       "kafka.topic_prefix: 'a b' is not a valid topic prefix"},
      {"kafka: {brokers: k:1, max_message_bytes: 1000}\nredis: {url: 'redis://r:1'}\n" + model + stages,
       "kafka.max_message_bytes: 1000 is below the minimum"},
      {"kafka: {brokers: k:1}\nredis: {url: 'http://r:1'}\n" + model + stages,
       "redis.url: bad Redis URL 'http://r:1': it must start with redis:// or unix://"},
      {"kafka: {brokers: k:1}\n" + model + stages, "redis.url: missing"},
      {endpoints + "model: {path: m.bin, weights: int4}\n" + stages, "model.weights: 'int4' is not one of"},
      {endpoints + "model: {path: m.bin, activations: int8}\n" + stages,
       "model.activations: 'int8' is not one of auto, f32, q8"},
      {endpoints + "model: {path: m.bin, blas_prefill: yes}\n" + stages,
       "model.blas_prefill: expected true or false, got 'yes'"},
      {endpoints + "model: {path: m.bin, name: 'a b'}\n" + stages, "model.name: 'a b' must be non-empty"},
  };
  for (const auto& tc : cases) {
    const std::string err = parse_error(tc.yaml);
    EXPECT_NE(err.find(tc.expected), std::string::npos) << "yaml:\n" << tc.yaml << "\nerror: " << err;
    EXPECT_EQ(err.rfind("test.yaml", 0), 0u) << err;
  }
}

TEST(DeploymentConfig, MetricsAndLogSections) {
  DeploymentConfig d = parse(kMinimal);
  EXPECT_EQ(d.metrics.port, 0);  // a free port, registered in membership
  EXPECT_EQ(d.metrics.host, "0.0.0.0");
  EXPECT_EQ(d.log.level, "info");
  EXPECT_EQ(d.log.format, "text");
  DeploymentConfig c =
      parse(std::string(kMinimal) + "metrics: {port: 9464, host: 127.0.0.1}\nlog: {level: DEBUG, format: json}\n");
  EXPECT_EQ(c.metrics.port, 9464);
  EXPECT_EQ(c.metrics.host, "127.0.0.1");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(parse(std::string(kMinimal) + "metrics: {port: -1}\n").metrics.port, -1);  // none
  EXPECT_NE(parse_error(std::string(kMinimal) + "metrics: {port: 70000}\n").find("metrics.port"), std::string::npos);
  EXPECT_NE(parse_error(std::string(kMinimal) + "metrics: {prot: 1}\n").find("metrics.prot: unknown key"),
            std::string::npos);
  EXPECT_NE(parse_error(std::string(kMinimal) + "log: {level: loud}\n").find("log.level: 'loud' is not one of"),
            std::string::npos);
  EXPECT_NE(parse_error(std::string(kMinimal) + "log: {format: xml}\n").find("log.format"), std::string::npos);
}

TEST(DeploymentConfig, ByteSizes) {
  EXPECT_EQ(parse_byte_size("1000"), 1000u);
  EXPECT_EQ(parse_byte_size("1KiB"), 1024u);
  EXPECT_EQ(parse_byte_size(" 64 MiB "), 64u << 20);
  EXPECT_EQ(parse_byte_size("1gib"), uint64_t{1} << 30);
  EXPECT_EQ(parse_byte_size("2GB"), 2000000000u);
  EXPECT_EQ(parse_byte_size("0.5KB"), 500u);
  EXPECT_FALSE(parse_byte_size("-1"));
  EXPECT_FALSE(parse_byte_size("1 parsec"));
  EXPECT_FALSE(parse_byte_size(""));
  EXPECT_FALSE(parse_byte_size("1.2.3MB"));
  EXPECT_FALSE(parse_byte_size("99999999999999999999"));
  EXPECT_FALSE(parse_byte_size("99999999999 GiB"));
}

TEST(DeploymentConfig, LoadResolvesPathsAgainstTheFilesDirectory) {
  const std::string dir = test::scratch_dir("config_load");
  std::filesystem::create_directories(dir + "/conf");
  {
    std::ofstream(dir + "/conf/d.yaml") << kMinimal << "  \n";
  }
  DeploymentConfig c = load_config(dir + "/conf/d.yaml");
  EXPECT_EQ(c.source, dir + "/conf/d.yaml");
  EXPECT_EQ(c.model.path, std::filesystem::path(dir + "/conf/models/m.bin").lexically_normal().string());
  const std::string err = error_of([&] { load_config(dir + "/missing.yaml"); });
  EXPECT_NE(err.find("missing.yaml: cannot read"), std::string::npos) << err;
}

TEST(DeploymentConfig, ShippedExamplesLoadAndCoverTheirModels) {
  const std::string root = FLEET_SOURCE_ROOT;
  DeploymentConfig s = load_config(root + "/configs/stories260K-2stage.yaml");
  EXPECT_EQ(s.model.name, "stories260K");
  EXPECT_EQ(s.model.path, std::filesystem::path(root + "/models/stories260K/stories260K.bin").lexically_normal());
  EXPECT_EQ(s.model.tokenizer, std::filesystem::path(root + "/models/stories260K/tok512.bin").lexically_normal());
  EXPECT_TRUE(std::filesystem::exists(s.model.path)) << s.model.path;
  EXPECT_TRUE(std::filesystem::exists(s.model.tokenizer)) << s.model.tokenizer;
  ASSERT_EQ(s.stage_count(), 2);
  EXPECT_EQ(s.stage(0), (StageLayers{0, 3}));
  EXPECT_EQ(s.stage(1), (StageLayers{3, 5}));
  EXPECT_NO_THROW(s.validate(5));  // stories260K has 5 layers

  DeploymentConfig b = load_config(root + "/configs/llama-1b-4stage.yaml");
  EXPECT_EQ(b.stage_count(), 4);
  EXPECT_NO_THROW(b.validate(22));  // the llama-1b synthetic shape has 22 layers
  EXPECT_EQ(b.model.weights, "bf16");
  EXPECT_NE(b.kafka.topic_prefix, s.kafka.topic_prefix);
}

}  // namespace
}  // namespace fleet
