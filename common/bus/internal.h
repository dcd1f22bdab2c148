#pragma once
// Helpers shared by the bus implementation files (not part of the public API).
#include <exception>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <librdkafka/rdkafkacpp.h>

#include "bus/consumer.h"
#include "bus/error.h"

namespace fleet::bus::detail {

// Builds a global RdKafka::Conf from defaults then overrides (overrides win); throws
// BusError naming the property on an unknown name or invalid value.
std::unique_ptr<RdKafka::Conf> make_conf(const Config& defaults, const Config& overrides);

// Sets one property (throws BusError like make_conf).
void set(RdKafka::Conf& conf, const std::string& name, const std::string& value);

// "bus: invalid configuration name=value: err", the value shown as *** for a secret property
// and every secret value of `all` scrubbed from the whole text.
BusError invalid_property(const std::string& name, const std::string& value, const std::string& err,
                          const Config& all = {});

// text with the value of every secret property of conf replaced by *** (for librdkafka's own
// error texts, which may quote a value).
std::string scrub_secrets(const std::string& text, const Config& conf);

// True for error codes where a later retry may succeed.
bool is_retriable(RdKafka::ErrorCode code);

// "Broker: Message size too large (MSG_SIZE_TOO_LARGE)".
std::string describe(RdKafka::ErrorCode code);

// Overrides merged over defaults.
Config merged(const Config& defaults, const Config& overrides);

// A list of librdkafka partitions that destroys them when it goes out of scope.
struct PartitionListGuard {
  std::vector<RdKafka::TopicPartition*> list;
  ~PartitionListGuard() { RdKafka::TopicPartition::destroy(list); }
};

}  // namespace fleet::bus::detail

// ---------------------------------------------------------------- group consumer rebalances
// (consumer.cpp's Consumer::Impl owns one; here to keep that file short.)
namespace fleet::bus::detail {

std::vector<TopicPartition> to_topic_partitions(const std::vector<RdKafka::TopicPartition*>& list);

// The rebalance callback of every Consumer: (incremental_)assign / (incremental_)unassign as
// the protocol requires, telling the listener (if any) after assigning and before revoking.
// Runs inside consume() / close(); nothing propagates into librdkafka's C code: a listener
// exception or a refused (un)assign is kept for throw_pending().
class Rebalancer : public RdKafka::RebalanceCb {
 public:
  Rebalancer(std::string group_id, RebalanceListener* listener) : group_id_(std::move(group_id)), listener_(listener) {}

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

  // Leaves the group of a subscribed consumer by unsubscribe(), serving its callbacks
  // (messages fetched meanwhile are dropped: uncommitted, the next owner gets them) until
  // the member has left or timeout_ms passed, so that KafkaConsumer::close() finds nothing
  // to revoke. librdkafka 2.0.2 mishandles a cooperative rebalance that overlaps close():
  // a rebalance callback queued before close() makes it leave the group before close()'s own
  // revoke callback (whose commit then fails with UNKNOWN_MEMBER_ID) and may block that
  // callback's incremental_unassign() forever (librdkafka #4527); and a member destroyed after
  // joining but before its first assignment can abort in the sticky assignor (#4312). A member
  // whose JoinGroup has completed is therefore given up to timeout_ms to get its first
  // assignment first.
  void leave(RdKafka::KafkaConsumer& c, int timeout_ms);

  // From now on callbacks come from inside KafkaConsumer::close(): see rebalance_cb.
  void closing() { closing_ = true; }

  bool error_pending() const { return listener_error_ || rebalance_error_; }
  // Throws (and forgets) the listener's exception, else a rebalance error, if any.
  void throw_pending();

 private:
  bool apply(bool cooperative, bool assign, RdKafka::KafkaConsumer* c, std::vector<RdKafka::TopicPartition*>& parts);
  void revoke(const std::vector<TopicPartition>& tps, bool lost);
  template <typename F>
  void guard(F&& call);

  std::string group_id_;
  RebalanceListener* listener_;
  std::set<TopicPartition> owned_;  // what the listener was told this member owns
  bool assigned_once_ = false;      // an assign callback came (the sticky assignor has its state)
  bool closing_ = false;
  bool close_call_made_ = false;
  std::exception_ptr listener_error_;
  std::optional<BusError> rebalance_error_;
};

}  // namespace fleet::bus::detail
