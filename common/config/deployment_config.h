#pragma once
// One YAML file describes a deployment: Kafka, Redis, the model, how its layers are cut into
// stages, batching, the KV budget and timeouts. Example: configs/stories260K-2stage.yaml.
//
//   kafka:    {brokers: "host:port,...", topic_prefix: fleet, max_message_bytes: 1000000,
//              partitions: 8, replication_factor: 1,
//              properties: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN, ...}}
//   redis:    {url: "redis://127.0.0.1:6379/0", password: ...}   # password: optional
//   model:    {name: stories260K, path: ../models/x.bin, tokenizer: ../models/tok.bin, weights: auto,
//              activations: auto, chat_template: ../templates/chat.jinja}   # chat_template: optional
//   stages:   [{layers: [0, 3]}, {layers: [3, 5]}]       # half-open [first, end), contiguous
//   batching: {max_batch_tokens: 512, window_ms: 0, prefill_chunk: 256}
//   kv:       {budget_bytes: 1GiB, max_requests: 256}     # integer or with KB/KiB/MB/MiB/GB/GiB
//   timeouts: {request_s: 600, heartbeat_ttl_s: 10, finished_request_ttl_s: 3600, shutdown_s: 10, stall_s: 30}
//   metrics:  {port: 0, host: 0.0.0.0}    # a stage worker's GET /metrics (docs/metrics.md)
//   log:      {level: info, format: text} # or FLEET_LOG_LEVEL / FLEET_LOG_FORMAT (common/log/log.h)
//
// FLEET_KAFKA_BROKERS and FLEET_REDIS_URL (when set and non-empty) win over the file. Relative
// model.path / model.tokenizer resolve against the config file's directory. Unknown keys are
// errors (a typo must not silently fall back to a default).
//
// Secrets (docs/security.md): kafka.properties are librdkafka properties applied to every Kafka
// client of the fleet (SASL, SSL); FLEET_KAFKA_<NAME> (the property name uppercased, '.' as
// '_', e.g. FLEET_KAFKA_SASL_PASSWORD) overrides one, for the properties the file names and
// those of kafka_env_properties(). The Redis password is the URL's (redis://[user]:pw@host),
// or redis.password, or FLEET_REDIS_PASSWORD (each wins over the one before); after loading,
// redis.url is the effective URL with the password in it: print it with redacted_url().
// Error messages never contain a password or a secret property's value.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fleet {

// Thrown for an unreadable, malformed or invalid configuration; the message names the file
// and the key (e.g. "configs/a.yaml: batching.window_ms: expected an integer, got 'x' (line 12)").
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct StageLayers {
  int first = 0;  // first layer of the stage
  int end = 0;    // one past its last layer
  int count() const { return end - first; }
  bool operator==(const StageLayers&) const = default;
};

struct KafkaConfig {
  std::string brokers;                // bootstrap servers, "host:port[,host:port...]"
  std::string topic_prefix = "fleet";
  uint64_t max_message_bytes = 1000000;  // the broker's message.max.bytes; chunks stay below it
  int partitions = 8;                 // per topic, when the fleet creates its topics
  int replication_factor = 1;
  // librdkafka properties (name -> value) for every producer, consumer and admin client the fleet
  // creates, over the bus defaults, e.g. security.protocol, sasl.mechanism, sasl.username,
  // sasl.password, ssl.ca.location. Those the fleet sets itself are refused (bootstrap.servers:
  // kafka.brokers; message.max.bytes: kafka.max_message_bytes; group.id, enable.auto.commit,
  // enable.auto.offset.store, enable.partition.eof, partitioner). The same type as bus::Config.
  std::map<std::string, std::string> properties;
};

struct RedisConfig {
  // redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path/to/socket[?db=N]
  // (config/redis_url.h). After loading: the effective URL, with the password of redis.password
  // or FLEET_REDIS_PASSWORD in it (percent-encoded) when one is given. May hold a secret.
  std::string url;
  std::string redacted_url() const;  // the URL with the password as ***
};

struct ModelSection {
  std::string name;       // default: model.path's file name without extension
  std::string path;       // llama2.c checkpoint or Hugging Face directory (absolute after loading)
  std::string tokenizer;  // absolute after loading; "" = beside the model (as fleet generate)
  // A Jinja chat template file that replaces the model's own (absolute after loading; "" = the
  // model's: chat/chat.h chat_template_for), e.g. one whose tool-call format fleet reads.
  std::string chat_template;
  std::string weights = "auto";  // in-memory weight dtype: auto, f32, bf16, f16, q8_0
  // activations: auto (q8 for block-quantized weights, f32 otherwise), f32 or q8 (engine/linear.h)
  std::string activations = "auto";
  // OpenBLAS sgemm for the prefill of f32 matrices: faster, not batch-invariant (engine/linear.h).
  bool blas_prefill = false;
};

struct BatchingConfig {
  int max_batch_tokens = 512;  // rows of one batched forward pass
  int window_ms = 0;           // how long a worker waits for more work before a batch (0: takes what is there)
  int prefill_chunk = 256;     // prompt tokens per prefill step
};

struct KvConfig {
  uint64_t budget_bytes = uint64_t{1} << 30;  // per worker; past it, least recently used caches are evicted
  // Requests a worker holds a KV cache for. Stage 0 stops reading prompts (pauses the prompts
  // partitions) while it holds this many, or 90% of budget_bytes, and resumes below: admission
  // control for the whole pipeline, since every admitted request has a cache on each stage.
  int max_requests = 256;
};

struct TimeoutsConfig {
  double request_s = 600;  // default of a request's timeout_s: not finished by then, it fails with "timeout"
  // A step whose chunks do not all arrive within it fails its request ("timeout"); a KV cache
  // unused that long is dropped (replayed if its request goes on).
  double step_s = 60;
  double heartbeat_ttl_s = 10;         // TTL of fleet:worker:<id>
  double finished_request_ttl_s = 3600;  // finished requests expire from Redis after this
  // From SIGTERM to the process's end at most: the graceful exit (outputs delivered, offsets
  // committed, group left, deregistered) is abandoned past it, with a log line (exit status 2).
  double shutdown_s = 10;
  // An unfinished request without progress (no token stored) for this long is re-driven by a
  // stage-0 worker: its next step is asked for again (common/stage/stall_redrive.h). Above the
  // longest stall a takeover or replay causes (measured up to ~12 s for one fault) and the
  // slowest prefill, so that a slow request is not re-driven; a re-drive of a request that
  // was only slow costs a recomputation, never its text.
  double stall_s = 30;
};

struct MetricsConfig {
  // The port of each stage worker's Prometheus endpoint (GET /metrics): 0 = a free port chosen
  // at start (registered as metrics_port in the worker's membership entry, fleet:worker:<id>),
  // -1 = none. fleet-stage --metrics-port overrides it. The ingress serves /metrics on its own port.
  int port = 0;
  std::string host = "0.0.0.0";  // the address it listens on
};

struct LogConfig {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off (FLEET_LOG_LEVEL wins)
  std::string format = "text";  // text, or json: one JSON object per line (FLEET_LOG_FORMAT wins)
};

struct DeploymentConfig {
  std::string source;  // the file it was read from ("" when parsed from text)
  KafkaConfig kafka;
  RedisConfig redis;
  ModelSection model;
  std::vector<StageLayers> stages;
  BatchingConfig batching;
  KvConfig kv;
  TimeoutsConfig timeouts;
  MetricsConfig metrics;
  LogConfig log;

  int stage_count() const { return static_cast<int>(stages.size()); }
  // The stages must cover [0, n_layers) exactly, in order; throws ConfigError otherwise.
  void validate(int n_layers) const;
  // Stage k's layers; throws ConfigError when k is out of range.
  const StageLayers& stage(int k) const;

  std::string prompts_topic() const;      // <prefix>.prompts
  std::string results_topic() const;      // <prefix>.results
  std::string dead_letter_topic() const;  // <prefix>.dead-letter
  std::string control_topic() const;      // <prefix>.control: cancel records
  std::string stage_topic(int k) const;   // <prefix>.stage.<k>: activations into stage k
  std::string stage_consumer_group(int k) const;  // <prefix>.stage.<k> (replicas share it)
  std::vector<std::string> all_topics() const;    // prompts, results, dead-letter, every stage

  // The secret values of this config (the Redis password, secret Kafka properties: see
  // is_secret_property in config/redact.h), for scrub() and for tests that look for leaks.
  std::vector<std::string> secrets() const;
  // "kafka <brokers> (<property>=<value or ***>, ...), redis <redacted URL>": for logs.
  std::string endpoints_text() const;
};

// Topic names for a prefix (the same as the members above).
std::string prompts_topic(const std::string& prefix);
std::string results_topic(const std::string& prefix);
std::string dead_letter_topic(const std::string& prefix);
std::string stage_topic(const std::string& prefix, int k);

// Returns the value of an environment variable, or nullopt.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::optional<std::string> process_env(const std::string& name);

// FLEET_KAFKA_<NAME> for Kafka property `name` ("sasl.password" -> FLEET_KAFKA_SASL_PASSWORD).
std::string kafka_property_env_var(const std::string& name);
// The properties overridable from the environment even when the file does not name them:
// security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location,
// ssl.certificate.location, ssl.key.location, ssl.key.password.
const std::vector<std::string>& kafka_env_properties();

// Reads and validates path; applies FLEET_KAFKA_BROKERS / FLEET_REDIS_URL from the process.
DeploymentConfig load_config(const std::string& path);
// Same from text: `source` names it in errors, relative model paths resolve against base_dir.
DeploymentConfig parse_config(const std::string& yaml_text, const std::string& source, const std::string& base_dir,
                              const EnvLookup& env = process_env);

// "1GiB", "512 MiB", "1.5GB", "1000000" -> bytes; nullopt when malformed or negative.
std::optional<uint64_t> parse_byte_size(const std::string& text);

}  // namespace fleet
