#pragma once
// Errors and configuration shared by the bus classes (Producer, Consumer, Admin).
#include <map>
#include <stdexcept>
#include <string>

namespace fleet::bus {

// librdkafka configuration properties, e.g. {"linger.ms", "5"}. Passed as overrides:
// they replace the defaults each class documents. The values of secret properties
// (sasl.password, ssl.key.password, ...: fleet::is_secret_property in config/redact.h) never
// appear in a BusError's message. A deployment's kafka.properties is such a map.
using Config = std::map<std::string, std::string>;

// base with extra's properties added (extra wins), e.g.
// Producer(brokers, with(cfg.kafka.properties, {{"message.max.bytes", "1000000"}})).
inline Config with(Config base, const Config& extra) {
  for (const auto& [k, v] : extra) base[k] = v;
  return base;
}

// Every failure the bus reports is a BusError: the message names the operation, the
// topic and librdkafka's own error text; code() is librdkafka's rd_kafka_resp_err_t.
class BusError : public std::runtime_error {
 public:
  BusError(const std::string& what, int code, bool retriable = false, bool fatal = false)
      : std::runtime_error(what), code_(code), retriable_(retriable), fatal_(fatal) {}
  int code() const { return code_; }
  // librdkafka's symbolic name of code(), e.g. "MSG_SIZE_TOO_LARGE".
  std::string code_name() const;
  // Transient (broker unreachable, leader moving, rebalance in progress): retrying the
  // same call later may succeed.
  bool retriable() const { return retriable_; }
  // The client instance is unusable (e.g. an idempotence violation); recreate it.
  bool fatal() const { return fatal_; }

 private:
  int code_;
  bool retriable_;
  bool fatal_;
};

}  // namespace fleet::bus
