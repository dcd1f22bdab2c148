#pragma once
// A real Kafka broker and redis-server for tests: scripts/stack.sh up runs once per test
// binary (gtest global Environment, in test-scratch/<binary name>-stack) and down at the end.
#include <map>
#include <string>

namespace fleet::test {

// The broker list of the running stack ("127.0.0.1:port"); fails the test if the
// stack did not come up.
const std::string& kafka_brokers();
// redis://127.0.0.1:port/0 of the running stack.
const std::string& redis_url();

// The directory of this binary's stack (scripts/stack.sh's DIR).
const std::string& stack_dir();
// Runs `scripts/stack.sh COMMAND DIR [ARG]` on this binary's stack (e.g. "kafka-stop",
// "kafka-start", "redis-restart", "node-kill" with a node id); returns its exit status (output
// in DIR/stack-commands.log).
int stack_command(const std::string& command, const std::string& arg = "");
// How many Kafka brokers the stack has: 1, or 3 when FLEET_TEST_BROKERS=3 (scripts/stack.sh up
// --brokers 3: a KRaft cluster; topics then need replication factor 3).
int stack_brokers();
// The leader (node id) of each partition of `topic`, from kcat's metadata; empty when it
// cannot be read.
std::map<int, int> partition_leaders(const std::string& brokers, const std::string& topic);

// A topic / group name unique to this run: prefix + "-" + a random suffix.
std::string unique_name(const std::string& prefix);

}  // namespace fleet::test
