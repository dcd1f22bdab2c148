#pragma once
// One pass over what a topic holds since a point in time: every partition, from the first
// record written at or after since_ms up to the end as it was when the scan began. For rare
// look-ups (a worker taking a request over checks which of its results are out), not for
// streaming: it creates and closes its own client.
#include <cstdint>
#include <functional>
#include <string>

#include "bus/consumer.h"

namespace fleet::bus {

// Calls on_record for each record, partition by partition, in offset order. Throws BusError
// when the topic's metadata, offsets or records cannot be read within timeout_ms. overrides:
// client properties (e.g. a deployment's kafka.properties), over the scan's own settings
// except bootstrap.servers and group.id.
void scan_topic_since(const std::string& brokers, const std::string& topic, int64_t since_ms,
                      const std::function<void(const Message&)>& on_record, int timeout_ms = 10000,
                      const Config& overrides = {});

}  // namespace fleet::bus
