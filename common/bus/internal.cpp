#include "bus/internal.h"

#include <librdkafka/rdkafka.h>

namespace fleet::bus {

std::string BusError::code_name() const {
  return rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code_));
}

namespace detail {

Config merged(const Config& defaults, const Config& overrides) {
  Config all = defaults;
  for (const auto& [k, v] : overrides) all[k] = v;
  return all;
}

void set(RdKafka::Conf& conf, const std::string& name, const std::string& value) {
  std::string err;
  if (conf.set(name, value, err) != RdKafka::Conf::CONF_OK) {
    throw BusError("bus: invalid configuration " + name + "=" + value + ": " + err,
                   RdKafka::ERR__INVALID_ARG);
  }
}

std::unique_ptr<RdKafka::Conf> make_conf(const Config& defaults, const Config& overrides) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [k, v] : merged(defaults, overrides)) set(*conf, k, v);
  return conf;
}

bool is_retriable(RdKafka::ErrorCode code) {
  switch (code) {
    case RdKafka::ERR__TRANSPORT:
    case RdKafka::ERR__ALL_BROKERS_DOWN:
    case RdKafka::ERR__RESOLVE:
    case RdKafka::ERR__TIMED_OUT:
    case RdKafka::ERR__MSG_TIMED_OUT:
    case RdKafka::ERR__QUEUE_FULL:
    case RdKafka::ERR__WAIT_COORD:
    case RdKafka::ERR__IN_PROGRESS:
    case RdKafka::ERR__TIMED_OUT_QUEUE:
    case RdKafka::ERR__UNKNOWN_PARTITION:
    case RdKafka::ERR_REQUEST_TIMED_OUT:
    case RdKafka::ERR_NETWORK_EXCEPTION:
    case RdKafka::ERR_LEADER_NOT_AVAILABLE:
    case RdKafka::ERR_NOT_LEADER_FOR_PARTITION:
    case RdKafka::ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RdKafka::ERR_COORDINATOR_NOT_AVAILABLE:
    case RdKafka::ERR_NOT_COORDINATOR:
    case RdKafka::ERR_REBALANCE_IN_PROGRESS:
    case RdKafka::ERR_NOT_ENOUGH_REPLICAS:
    case RdKafka::ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
      return true;
    default:
      return false;
  }
}

std::string describe(RdKafka::ErrorCode code) {
  return RdKafka::err2str(code) + " (" + rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code)) + ")";
}

}  // namespace detail
}  // namespace fleet::bus
