#include "bus/internal.h"

#include <algorithm>
#include <chrono>

#include <librdkafka/rdkafka.h>

#include "config/redact.h"

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

std::string scrub_secrets(const std::string& text, const Config& conf) {
  std::vector<std::string> secrets;
  for (const auto& [k, v] : conf)
    if (is_secret_property(k)) secrets.push_back(v);
  return scrub(text, secrets);
}

BusError invalid_property(const std::string& name, const std::string& value, const std::string& err,
                          const Config& all) {
  std::string text = "bus: invalid configuration " + name + "=" + redacted_property(name, value) + ": " + err;
  if (is_secret_property(name)) text = scrub(text, {value});
  return BusError(scrub_secrets(text, all), RdKafka::ERR__INVALID_ARG);
}

void set(RdKafka::Conf& conf, const std::string& name, const std::string& value) {
  std::string err;
  if (conf.set(name, value, err) != RdKafka::Conf::CONF_OK) throw invalid_property(name, value, err);
}

std::unique_ptr<RdKafka::Conf> make_conf(const Config& defaults, const Config& overrides) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  const Config all = merged(defaults, overrides);
  for (const auto& [k, v] : all) {
    std::string err;
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) throw invalid_property(k, v, err, all);
  }
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

// ---------------------------------------------------------------- group consumer rebalances
namespace fleet::bus::detail {

std::vector<TopicPartition> to_topic_partitions(const std::vector<RdKafka::TopicPartition*>& list) {
  std::vector<TopicPartition> out;
  out.reserve(list.size());
  for (const auto* tp : list) out.push_back({tp->topic(), tp->partition()});
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

std::string partitions_text(const std::vector<TopicPartition>& tps) {
  std::string out;
  for (const auto& tp : tps) out += (out.empty() ? "" : ", ") + tp.topic + "[" + std::to_string(tp.partition) + "]";
  return out;
}

}  // namespace

template <typename F>
void Rebalancer::guard(F&& call) {
  try {
    call();
  } catch (...) {
    if (!listener_error_) listener_error_ = std::current_exception();
  }
}

void Rebalancer::rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                              std::vector<RdKafka::TopicPartition*>& partitions) {
  const bool cooperative = c->rebalance_protocol() == "COOPERATIVE";
  const bool assign = err == RdKafka::ERR__ASSIGN_PARTITIONS;
  if (closing_) {
    // Inside KafkaConsumer::close() (leave() did not get out first): librdkafka 2.0.2 turns
    // the first (un)assign call made now into a full unassign and may finish terminating
    // right after it; a second call would then block forever (#4527). So everything still
    // owned is revoked through the listener now, and only the first call is made.
    if (close_call_made_) return;
    close_call_made_ = true;
    revoke({owned_.begin(), owned_.end()}, c->assignment_lost());
    apply(cooperative, assign, c, partitions);
    return;
  }
  const std::vector<TopicPartition> tps = to_topic_partitions(partitions);
  if (assign) {
    assigned_once_ = true;
    if (!apply(cooperative, true, c, partitions)) return;
    std::vector<TopicPartition> added;
    for (const auto& tp : tps) {
      if (owned_.insert(tp).second) added.push_back(tp);
    }
    if (listener_ && !added.empty()) guard([&] { listener_->on_assigned(added); });
    return;
  }
  // ERR__REVOKE_PARTITIONS, or any other error, where librdkafka's docs say to give the
  // partitions up: the listener first, while this member still owns them.
  if (err != RdKafka::ERR__REVOKE_PARTITIONS && !rebalance_error_) {
    rebalance_error_.emplace("bus: rebalance of group '" + group_id_ + "' failed: " + describe(err), err,
                             is_retriable(err));
  }
  revoke(tps, c->assignment_lost());
  apply(cooperative, false, c, partitions);
}

void Rebalancer::revoke(const std::vector<TopicPartition>& tps, bool lost) {
  std::vector<TopicPartition> removed;
  for (const auto& tp : tps) {
    if (owned_.erase(tp)) removed.push_back(tp);
  }
  if (listener_ && !removed.empty()) guard([&] { listener_->on_revoked(removed, lost); });
}

bool Rebalancer::apply(bool cooperative, bool assign, RdKafka::KafkaConsumer* c,
                       std::vector<RdKafka::TopicPartition*>& parts) {
  RdKafka::ErrorCode code = RdKafka::ERR_NO_ERROR;
  std::string text;
  if (cooperative) {
    std::unique_ptr<RdKafka::Error> e(assign ? c->incremental_assign(parts) : c->incremental_unassign(parts));
    if (e) {
      code = e->code();
      text = e->str() + " (" + e->name() + ")";
    }
  } else {
    code = assign ? c->assign(parts) : c->unassign();
    if (code != RdKafka::ERR_NO_ERROR) text = describe(code);
  }
  if (code == RdKafka::ERR_NO_ERROR) return true;
  if (!rebalance_error_) {
    rebalance_error_.emplace("bus: " + std::string(assign ? "assigning " : "revoking ") +
                                 partitions_text(to_topic_partitions(parts)) + " (group '" + group_id_ +
                                 "') failed: " + text,
                             code, is_retriable(code));
  }
  return false;
}

void Rebalancer::leave(RdKafka::KafkaConsumer& c, int timeout_ms) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  auto serve = [&] { std::unique_ptr<RdKafka::Message> m(c.consume(20)); };
  // The protocol is known (not "NONE") once a JoinGroup response chose the assignor.
  while (!assigned_once_ && c.rebalance_protocol() != "NONE" && clock::now() < deadline) serve();
  if (c.unsubscribe() != RdKafka::ERR_NO_ERROR) return;  // close() then does what it can
  while (!c.memberid().empty() && clock::now() < deadline) serve();
}

void Rebalancer::throw_pending() {
  if (listener_error_) {
    std::exception_ptr e = listener_error_;
    listener_error_ = nullptr;
    std::rethrow_exception(e);
  }
  if (rebalance_error_) {
    BusError e = *rebalance_error_;
    rebalance_error_.reset();
    throw e;
  }
}

}  // namespace fleet::bus::detail
