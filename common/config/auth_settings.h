#pragma once
// Kafka client properties and Redis authentication of a deployment: the checks and the
// environment overrides parse_config applies (declared for deployment_config.cpp; see
// deployment_config.h for the rules, docs/security.md for the whole story).
#include <optional>
#include <string>

#include "config/deployment_config.h"

namespace fleet::detail {

// Why `name` cannot be a kafka.properties key ("" when it can): not a property name, or a
// property the fleet sets itself.
std::string kafka_property_problem(const std::string& name);

// Normalizes aliases (sasl.mechanisms -> sasl.mechanism) and applies FLEET_KAFKA_<NAME>.
void finish_kafka_properties(KafkaConfig& kafka, const std::string& source, const EnvLookup& env);

// Checks redis.url (non-empty) with parse_redis_url and puts the password of FLEET_REDIS_PASSWORD,
// else of the file's redis.password, into it. Throws ConfigError without the password.
void finish_redis(RedisConfig& redis, const std::optional<std::string>& file_password, const std::string& source,
                  const EnvLookup& env);

}  // namespace fleet::detail
