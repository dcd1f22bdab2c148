// Loading and validating the deployment YAML.
#include "config/deployment_config.h"

#include "config/auth_settings.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fleet {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads typed values out of YAML nodes; every error names the file, the key and the line.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& msg, const YAML::Node* at = nullptr) const {
    std::string where;
    if (at && at->IsDefined() && !at->Mark().is_null()) where = " (line " + std::to_string(at->Mark().line + 1) + ")";
    throw ConfigError(source_ + ": " + key + ": " + msg + where);
  }

  static bool present(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }

  // parent[name], or a null node when parent is not a mapping or lacks the key (yaml-cpp's
  // const operator[] returns an invalid node that throws on use).
  static YAML::Node child(const YAML::Node& parent, const char* name) {
    if (!present(parent) || !parent.IsMap()) return YAML::Node();
    for (const auto& kv : parent)
      if (kv.first.IsScalar() && kv.first.Scalar() == name) return kv.second;
    return YAML::Node();
  }

  // A mapping whose keys all appear in `known`; an absent or null node reads as empty.
  void check_map(const YAML::Node& n, const std::string& key, std::initializer_list<const char*> known) const {
    if (!present(n)) return;
    if (!n.IsMap()) fail(key, "expected a mapping", &n);
    for (const auto& kv : n) {
      const std::string k = kv.first.Scalar();
      if (std::none_of(known.begin(), known.end(), [&](const char* x) { return k == x; })) {
        std::string list;
        for (const char* x : known) list += (list.empty() ? "" : ", ") + std::string(x);
        fail(key.empty() ? k : key + "." + k, "unknown key (known here: " + list + ")", &kv.first);
      }
    }
  }

  std::string scalar(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(key, "expected a single value", &n);
    return n.Scalar();
  }

  std::optional<std::string> string(const YAML::Node& parent, const char* name, const std::string& key) const {
    YAML::Node n = child(parent, name);
    if (!present(n)) return std::nullopt;
    return scalar(n, key);
  }

  int64_t integer(const YAML::Node& n, const std::string& key, int64_t min, int64_t max) const {
    const std::string s = trim(scalar(n, key));
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) fail(key, "expected an integer, got '" + s + "'", &n);
    if (v < min || v > max)
      fail(key, std::to_string(v) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]", &n);
    return v;
  }

  void integer_field(const YAML::Node& parent, const char* name, const std::string& key, int& out, int64_t min,
                     int64_t max) const {
    if (YAML::Node n = child(parent, name); present(n)) out = static_cast<int>(integer(n, key, min, max));
  }

  void bool_field(const YAML::Node& parent, const char* name, const std::string& key, bool& out) const {
    YAML::Node n = child(parent, name);
    if (!present(n)) return;
    const std::string s = lower(trim(scalar(n, key)));
    if (s != "true" && s != "false") fail(key, "expected true or false, got '" + n.Scalar() + "'", &n);
    out = s == "true";
  }

  void seconds_field(const YAML::Node& parent, const char* name, const std::string& key, double& out) const {
    YAML::Node n = child(parent, name);
    if (!present(n)) return;
    const std::string s = trim(scalar(n, key));
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
      fail(key, "expected a number of seconds, got '" + s + "'", &n);
    if (v <= 0) fail(key, "must be > 0 seconds, got " + s, &n);
    out = v;
  }

  void bytes_field(const YAML::Node& parent, const char* name, const std::string& key, uint64_t& out,
                   uint64_t min) const {
    YAML::Node n = child(parent, name);
    if (!present(n)) return;
    const std::string s = scalar(n, key);
    auto v = parse_byte_size(s);
    if (!v) fail(key, "expected a byte size (e.g. 1000000, 512MiB, 1GiB), got '" + s + "'", &n);
    if (*v < min) fail(key, s + " is below the minimum of " + std::to_string(min) + " bytes", &n);
    out = *v;
  }

 private:
  std::string source_;
};

bool valid_topic_prefix(const std::string& p) {
  if (p.empty() || p.size() > 200) return false;
  return std::all_of(p.begin(), p.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::string resolve_path(const std::string& p, const std::string& base_dir) {
  fs::path path(p);
  if (path.is_relative()) path = fs::path(base_dir) / path;
  return path.lexically_normal().string();
}

}  // namespace

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  const std::string s = trim(text);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  const std::string number = s.substr(0, i);
  const std::string unit = lower(trim(s.substr(i)));
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "kb") mult = 1e3;
  else if (unit == "mb") mult = 1e6;
  else if (unit == "gb") mult = 1e9;
  else if (unit == "tb") mult = 1e12;
  else if (unit == "kib") mult = 1024.0;
  else if (unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else return std::nullopt;
  if (number.find('.') == std::string::npos) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
    if (ec != std::errc() || p != number.data() + number.size()) return std::nullopt;
    const auto m = static_cast<uint64_t>(mult);
    if (v != 0 && m > UINT64_MAX / v) return std::nullopt;
    return v * m;
  }
  if (std::count(number.begin(), number.end(), '.') != 1 || number == ".") return std::nullopt;
  const double v = std::strtod(number.c_str(), nullptr) * mult;
  if (!std::isfinite(v) || v >= 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(std::llround(v));
}

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::string prompts_topic(const std::string& prefix) { return prefix + ".prompts"; }
std::string results_topic(const std::string& prefix) { return prefix + ".results"; }
std::string dead_letter_topic(const std::string& prefix) { return prefix + ".dead-letter"; }
std::string stage_topic(const std::string& prefix, int k) { return prefix + ".stage." + std::to_string(k); }

std::string DeploymentConfig::prompts_topic() const { return fleet::prompts_topic(kafka.topic_prefix); }
std::string DeploymentConfig::results_topic() const { return fleet::results_topic(kafka.topic_prefix); }
std::string DeploymentConfig::dead_letter_topic() const { return fleet::dead_letter_topic(kafka.topic_prefix); }
std::string DeploymentConfig::control_topic() const { return kafka.topic_prefix + ".control"; }
std::string DeploymentConfig::stage_topic(int k) const {
  stage(k);  // range check
  return fleet::stage_topic(kafka.topic_prefix, k);
}
std::string DeploymentConfig::stage_consumer_group(int k) const { return stage_topic(k); }

std::vector<std::string> DeploymentConfig::all_topics() const {
  std::vector<std::string> t{prompts_topic(), results_topic(), dead_letter_topic(), control_topic()};
  for (int k = 0; k < stage_count(); ++k) t.push_back(stage_topic(k));
  return t;
}

const StageLayers& DeploymentConfig::stage(int k) const {
  if (k < 0 || k >= stage_count())
    throw ConfigError((source.empty() ? std::string("config") : source) + ": stage " + std::to_string(k) +
                      " does not exist (stages: " + std::to_string(stage_count()) + ")");
  return stages[static_cast<size_t>(k)];
}

void DeploymentConfig::validate(int n_layers) const {
  const std::string where = (source.empty() ? std::string("config") : source) + ": stages: ";
  if (stages.empty()) throw ConfigError(where + "no stages");
  int expected = 0;
  for (size_t k = 0; k < stages.size(); ++k) {
    const auto& s = stages[k];
    if (s.first != expected)
      throw ConfigError(where + "stage " + std::to_string(k) + " starts at layer " + std::to_string(s.first) +
                        ", expected " + std::to_string(expected) + " (stages must be contiguous from 0)");
    if (s.end <= s.first)
      throw ConfigError(where + "stage " + std::to_string(k) + " has no layers ([" + std::to_string(s.first) + ", " +
                        std::to_string(s.end) + "))");
    expected = s.end;
  }
  if (expected != n_layers)
    throw ConfigError(where + "the stages cover layers [0, " + std::to_string(expected) + ") but the model has " +
                      std::to_string(n_layers) + " layers");
}

DeploymentConfig parse_config(const std::string& yaml_text, const std::string& source, const std::string& base_dir,
                              const EnvLookup& env) {
  const Reader rd(source);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": YAML syntax error: " + e.msg);
  }
  if (!Reader::present(root)) throw ConfigError(source + ": the file is empty");
  if (!root.IsMap()) throw ConfigError(source + ": expected a mapping at the top level");

  const YAML::Node& top = root;  // const access: a missing key never inserts a node
  DeploymentConfig c;
  c.source = source;
  std::optional<std::string> redis_password;
  try {
    // "ingress" is fleet-ingress's section, checked by it (common/ingress/ingress_settings.h).
    rd.check_map(top, "",
                 {"kafka", "redis", "model", "stages", "batching", "kv", "timeouts", "ingress", "metrics", "log"});

    const YAML::Node kafka = Reader::child(top, "kafka");
    rd.check_map(kafka, "kafka",
                 {"brokers", "topic_prefix", "max_message_bytes", "partitions", "replication_factor", "properties"});
    if (auto v = rd.string(kafka, "brokers", "kafka.brokers")) c.kafka.brokers = trim(*v);
    if (auto v = rd.string(kafka, "topic_prefix", "kafka.topic_prefix")) {
      if (!valid_topic_prefix(*v))
        rd.fail("kafka.topic_prefix", "'" + *v + "' is not a valid topic prefix (1-200 of [A-Za-z0-9._-])",
                &kafka);
      c.kafka.topic_prefix = *v;
    }
    rd.bytes_field(kafka, "max_message_bytes", "kafka.max_message_bytes", c.kafka.max_message_bytes, 65536);
    rd.integer_field(kafka, "partitions", "kafka.partitions", c.kafka.partitions, 1, 10000);
    rd.integer_field(kafka, "replication_factor", "kafka.replication_factor", c.kafka.replication_factor, 1, 100);
    if (YAML::Node props = Reader::child(kafka, "properties"); Reader::present(props)) {
      if (!props.IsMap()) rd.fail("kafka.properties", "expected a mapping of librdkafka property -> value", &props);
      for (const auto& kv : props) {  // errors name the property, never its value
        const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
        if (std::string why = detail::kafka_property_problem(name); !why.empty())
          rd.fail("kafka.properties." + name, why, &kv.first);
        if (!kv.second.IsScalar()) rd.fail("kafka.properties." + name, "expected a single value", &kv.first);
        c.kafka.properties[name] = kv.second.Scalar();
      }
    }

    const YAML::Node redis = Reader::child(top, "redis");
    rd.check_map(redis, "redis", {"url", "password"});
    if (auto v = rd.string(redis, "url", "redis.url")) c.redis.url = trim(*v);
    redis_password = rd.string(redis, "password", "redis.password");

    const YAML::Node model = Reader::child(top, "model");
    if (!Reader::present(model)) rd.fail("model", "missing (model.path is required)");
    rd.check_map(model, "model", {"name", "path", "tokenizer", "chat_template", "weights", "activations", "blas_prefill"});
    auto path = rd.string(model, "path", "model.path");
    if (!path || trim(*path).empty()) rd.fail("model.path", "missing", &model);
    c.model.path = resolve_path(trim(*path), base_dir);
    if (auto v = rd.string(model, "tokenizer", "model.tokenizer"); v && !trim(*v).empty())
      c.model.tokenizer = resolve_path(trim(*v), base_dir);
    if (auto v = rd.string(model, "chat_template", "model.chat_template"); v && !trim(*v).empty())
      c.model.chat_template = resolve_path(trim(*v), base_dir);
    if (auto v = rd.string(model, "name", "model.name")) {
      c.model.name = trim(*v);
      if (c.model.name.empty() || std::any_of(c.model.name.begin(), c.model.name.end(), [](char ch) {
            return std::isspace(static_cast<unsigned char>(ch)) || std::iscntrl(static_cast<unsigned char>(ch));
          }))
        rd.fail("model.name", "'" + *v + "' must be non-empty without spaces", &model);
    } else {
      fs::path p = fs::path(c.model.path);
      if (!p.has_filename()) p = p.parent_path();
      c.model.name = p.stem().string();
    }
    if (auto v = rd.string(model, "weights", "model.weights")) {
      const std::string w = lower(trim(*v));
      if (w != "auto" && w != "f32" && w != "bf16" && w != "f16" && w != "q8_0")
        rd.fail("model.weights", "'" + *v + "' is not one of auto, f32, bf16, f16, q8_0", &model);
      c.model.weights = w;
    }
    if (auto v = rd.string(model, "activations", "model.activations")) {
      const std::string a = lower(trim(*v));
      if (a != "auto" && a != "f32" && a != "q8")
        rd.fail("model.activations", "'" + *v + "' is not one of auto, f32, q8", &model);
      c.model.activations = a;
    }
    rd.bool_field(model, "blas_prefill", "model.blas_prefill", c.model.blas_prefill);

    const YAML::Node stages = Reader::child(top, "stages");
    if (!Reader::present(stages)) rd.fail("stages", "missing (a list of {layers: [first, end]})");
    if (!stages.IsSequence() || stages.size() == 0)
      rd.fail("stages", "expected a non-empty list of {layers: [first, end]}", &stages);
    for (size_t k = 0; k < stages.size(); ++k) {
      const std::string key = "stages[" + std::to_string(k) + "]";
      const YAML::Node s = stages[k];
      if (!s.IsMap()) rd.fail(key, "expected {layers: [first, end]}", &s);
      rd.check_map(s, key, {"layers"});
      const YAML::Node layers = Reader::child(s, "layers");
      if (!layers.IsSequence() || layers.size() != 2)
        rd.fail(key + ".layers", "expected [first, end] (two integers, end exclusive)", &s);
      StageLayers sl;
      sl.first = static_cast<int>(rd.integer(layers[0], key + ".layers[0]", 0, 1 << 20));
      sl.end = static_cast<int>(rd.integer(layers[1], key + ".layers[1]", 0, 1 << 20));
      if (sl.end <= sl.first)
        rd.fail(key + ".layers", "[" + std::to_string(sl.first) + ", " + std::to_string(sl.end) +
                                     "] is empty (end is exclusive and must exceed first)", &layers);
      const int expected = k == 0 ? 0 : c.stages.back().end;
      if (sl.first != expected)
        rd.fail(key + ".layers", "starts at layer " + std::to_string(sl.first) + ", expected " +
                                     std::to_string(expected) + " (stages must be contiguous from layer 0)", &layers);
      c.stages.push_back(sl);
    }

    const YAML::Node batching = Reader::child(top, "batching");
    rd.check_map(batching, "batching", {"max_batch_tokens", "window_ms", "prefill_chunk"});
    rd.integer_field(batching, "max_batch_tokens", "batching.max_batch_tokens", c.batching.max_batch_tokens, 1,
                     1 << 20);
    rd.integer_field(batching, "window_ms", "batching.window_ms", c.batching.window_ms, 0, 60000);
    rd.integer_field(batching, "prefill_chunk", "batching.prefill_chunk", c.batching.prefill_chunk, 1, 1 << 20);
    if (c.batching.prefill_chunk > c.batching.max_batch_tokens)
      rd.fail("batching.prefill_chunk", std::to_string(c.batching.prefill_chunk) +
                                            " exceeds batching.max_batch_tokens " +
                                            std::to_string(c.batching.max_batch_tokens), &batching);

    const YAML::Node kv = Reader::child(top, "kv");
    rd.check_map(kv, "kv", {"budget_bytes", "max_requests"});
    rd.bytes_field(kv, "budget_bytes", "kv.budget_bytes", c.kv.budget_bytes, 1);
    rd.integer_field(kv, "max_requests", "kv.max_requests", c.kv.max_requests, 1, 1000000);

    const YAML::Node timeouts = Reader::child(top, "timeouts");
    rd.check_map(timeouts, "timeouts",
                 {"request_s", "step_s", "heartbeat_ttl_s", "finished_request_ttl_s", "shutdown_s", "stall_s"});
    rd.seconds_field(timeouts, "request_s", "timeouts.request_s", c.timeouts.request_s);
    rd.seconds_field(timeouts, "step_s", "timeouts.step_s", c.timeouts.step_s);
    rd.seconds_field(timeouts, "heartbeat_ttl_s", "timeouts.heartbeat_ttl_s", c.timeouts.heartbeat_ttl_s);
    rd.seconds_field(timeouts, "finished_request_ttl_s", "timeouts.finished_request_ttl_s",
                     c.timeouts.finished_request_ttl_s);
    rd.seconds_field(timeouts, "shutdown_s", "timeouts.shutdown_s", c.timeouts.shutdown_s);
    rd.seconds_field(timeouts, "stall_s", "timeouts.stall_s", c.timeouts.stall_s);

    const YAML::Node metrics = Reader::child(top, "metrics");
    rd.check_map(metrics, "metrics", {"port", "host"});
    rd.integer_field(metrics, "port", "metrics.port", c.metrics.port, -1, 65535);
    if (auto v = rd.string(metrics, "host", "metrics.host")) c.metrics.host = trim(*v);

    const YAML::Node log = Reader::child(top, "log");
    rd.check_map(log, "log", {"level", "format"});
    if (auto v = rd.string(log, "level", "log.level")) {
      c.log.level = lower(trim(*v));
      const char* levels[] = {"trace", "debug", "info", "warn", "warning", "error", "critical", "off"};
      if (std::none_of(std::begin(levels), std::end(levels), [&](const char* l) { return c.log.level == l; }))
        rd.fail("log.level", "'" + *v + "' is not one of trace, debug, info, warn, error, critical, off", &log);
    }
    if (auto v = rd.string(log, "format", "log.format")) {
      c.log.format = lower(trim(*v));
      if (c.log.format != "text" && c.log.format != "json")
        rd.fail("log.format", "'" + *v + "' is not one of text, json", &log);
    }
  } catch (const YAML::Exception& e) {  // e.g. a scalar where a map was expected, deep inside
    throw ConfigError(source + (e.mark.is_null() ? std::string() : ":" + std::to_string(e.mark.line + 1)) + ": " +
                      e.msg);
  }

  if (auto v = env("FLEET_KAFKA_BROKERS"); v && !trim(*v).empty()) c.kafka.brokers = trim(*v);
  if (auto v = env("FLEET_REDIS_URL"); v && !trim(*v).empty()) c.redis.url = trim(*v);
  if (c.kafka.brokers.empty())
    throw ConfigError(source + ": kafka.brokers: missing (set it in the file or in FLEET_KAFKA_BROKERS)");
  if (c.redis.url.empty()) throw ConfigError(source + ": redis.url: missing (set it in the file or in FLEET_REDIS_URL)");
  detail::finish_redis(c.redis, redis_password, source, env);
  detail::finish_kafka_properties(c.kafka, source, env);
  return c;
}

DeploymentConfig load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the configuration file");
  std::stringstream ss;
  ss << in.rdbuf();
  fs::path base = fs::absolute(fs::path(path)).parent_path();
  return parse_config(ss.str(), path, base.string(), process_env);
}

}  // namespace fleet
