// kafka.properties and the Redis password: validation, environment overrides, redaction.
#include "config/auth_settings.h"

#include <algorithm>
#include <cctype>

#include "config/redact.h"
#include "config/redis_url.h"

namespace fleet {
namespace {

// Properties the bus or the stage worker sets, with where their value comes from instead.
struct Reserved {
  const char* name;
  const char* instead;
};
constexpr Reserved kReserved[] = {
    {"bootstrap.servers", "use kafka.brokers (or FLEET_KAFKA_BROKERS)"},
    {"metadata.broker.list", "use kafka.brokers (or FLEET_KAFKA_BROKERS)"},
    {"message.max.bytes", "use kafka.max_message_bytes"},
    {"group.id", "the fleet names its consumer groups (<prefix>.stage.<k>)"},
    {"enable.auto.commit", "the workers commit what they processed themselves"},
    {"enable.auto.offset.store", "the workers commit what they processed themselves"},
    {"enable.partition.eof", "the bus relies on it being false"},
    {"partitioner", "a request's key must map to the same partition in every client (murmur2_random)"},
};

std::string upper_env_name(const std::string& name) {
  std::string out = "FLEET_KAFKA_";
  for (unsigned char c : name) out += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

}  // namespace

std::string kafka_property_env_var(const std::string& name) { return upper_env_name(name); }

const std::vector<std::string>& kafka_env_properties() {
  static const std::vector<std::string> names = {
      "security.protocol", "sasl.mechanism",           "sasl.username",    "sasl.password",
      "ssl.ca.location",   "ssl.certificate.location", "ssl.key.location", "ssl.key.password"};
  return names;
}

std::string RedisConfig::redacted_url() const { return redact_redis_url(url); }

std::vector<std::string> DeploymentConfig::secrets() const {
  std::vector<std::string> out;
  try {
    if (RedisUrl u = parse_redis_url(redis.url); !u.password.empty()) out.push_back(u.password);
  } catch (const RedisUrlError&) {
    // Not a valid URL (a config that did not come from parse_config): nothing to take from it.
  }
  for (const auto& [name, value] : kafka.properties)
    if (is_secret_property(name) && !value.empty()) out.push_back(value);
  return out;
}

std::string DeploymentConfig::endpoints_text() const {
  std::string props;
  for (const auto& [name, value] : kafka.properties)
    props += (props.empty() ? "" : ", ") + name + "=" + redacted_property(name, value);
  return "kafka " + kafka.brokers + (props.empty() ? "" : " (" + props + ")") + ", redis " + redis.redacted_url();
}

namespace detail {

std::string kafka_property_problem(const std::string& name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '_' || c == '-';
      }))
    return "not a librdkafka property name";
  for (const Reserved& r : kReserved)
    if (name == r.name) return std::string("set by the fleet: ") + r.instead;
  return "";
}

void finish_kafka_properties(KafkaConfig& kafka, const std::string& source, const EnvLookup& env) {
  auto& p = kafka.properties;
  if (auto alias = p.find("sasl.mechanisms"); alias != p.end()) {
    if (p.count("sasl.mechanism"))
      throw ConfigError(source + ": kafka.properties: both sasl.mechanism and sasl.mechanisms (one name, give one)");
    p["sasl.mechanism"] = alias->second;
    p.erase(alias);
  }
  std::vector<std::string> names = kafka_env_properties();
  for (const auto& [name, value] : p) names.push_back(name);
  for (const std::string& name : names) {
    if (auto v = env(kafka_property_env_var(name)); v && !v->empty()) p[name] = *v;
  }
}

void finish_redis(RedisConfig& redis, const std::optional<std::string>& file_password, const std::string& source,
                  const EnvLookup& env) {
  RedisUrl u;
  try {
    u = parse_redis_url(redis.url);
  } catch (const RedisUrlError& e) {
    throw ConfigError(source + ": redis.url: " + e.what());
  }
  std::optional<std::string> password = file_password;
  if (auto v = env("FLEET_REDIS_PASSWORD"); v && !v->empty()) password = v;
  if (password) {
    if (password->empty()) throw ConfigError(source + ": redis.password: empty (leave the key out for no password)");
    u.password = *password;
    redis.url = u.secret_url();
  }
  if (!u.user.empty() && u.password.empty())
    throw ConfigError(source + ": redis.url: '" + u.str() + "' names user '" + u.user +
                      "' but no password (give it in the URL, in redis.password or in FLEET_REDIS_PASSWORD)");
}

}  // namespace detail
}  // namespace fleet
