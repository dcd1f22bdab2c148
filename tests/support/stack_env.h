#pragma once
// A real Kafka broker and redis-server for tests: scripts/stack.sh up runs once per test
// binary (gtest global Environment, in test-scratch/<binary name>-stack) and down at the end.
#include <string>

namespace fleet::test {

// The broker list of the running stack ("127.0.0.1:port"); fails the test if the
// stack did not come up.
const std::string& kafka_brokers();
// redis://127.0.0.1:port/0 of the running stack.
const std::string& redis_url();

// The directory of this binary's stack (scripts/stack.sh's DIR).
const std::string& stack_dir();
// Runs `scripts/stack.sh COMMAND DIR` on this binary's stack (e.g. "kafka-stop",
// "kafka-start", "redis-restart"); returns its exit status (output in DIR/stack-commands.log).
int stack_command(const std::string& command);

// A topic / group name unique to this run: prefix + "-" + a random suffix.
std::string unique_name(const std::string& prefix);

}  // namespace fleet::test
