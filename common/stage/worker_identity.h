#pragma once
#include <string>

namespace fleet {
// "<host>-<pid>-<random hex>": unique per process start, readable in redis-cli.
std::string make_worker_id(int stage);
std::string host_name();
int64_t now_us();  // wall clock, microseconds since the Unix epoch
// Seconds from `since_us` (a now_us() value, possibly another worker's) to now; 0 when negative.
double seconds_since_us(int64_t since_us);
}  // namespace fleet
