#pragma once
// Helpers shared by the bus implementation files (not part of the public API).
#include <memory>
#include <string>

#include <librdkafka/rdkafkacpp.h>

#include "bus/error.h"

namespace fleet::bus::detail {

// Builds a global RdKafka::Conf from defaults then overrides (overrides win); throws
// BusError naming the property on an unknown name or invalid value.
std::unique_ptr<RdKafka::Conf> make_conf(const Config& defaults, const Config& overrides);

// Sets one property (throws BusError like make_conf).
void set(RdKafka::Conf& conf, const std::string& name, const std::string& value);

// True for error codes where a later retry may succeed.
bool is_retriable(RdKafka::ErrorCode code);

// "Broker: Message size too large (MSG_SIZE_TOO_LARGE)".
std::string describe(RdKafka::ErrorCode code);

// Overrides merged over defaults.
Config merged(const Config& defaults, const Config& overrides);

}  // namespace fleet::bus::detail
