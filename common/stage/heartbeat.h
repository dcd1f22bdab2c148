#pragma once
// A worker's membership entry in Redis (fleet:worker:<id>), refreshed on its own thread with
// its own connection every third of the TTL, from a snapshot the worker provides, with the
// machine's hardware (hardware/hardware.h) and the rows computed per second added.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "state/membership.h"

namespace fleet {

class Heartbeat {
 public:
  // Registers the worker at once (throws if Redis is unreachable), then heartbeats.
  Heartbeat(std::string redis_url, std::chrono::milliseconds ttl, std::function<WorkerInfo()> snapshot);
  ~Heartbeat();  // stop(), without deregistering
  // Stops the thread and removes the entry (the worker is leaving).
  void deregister();

 private:
  void loop();
  void stop();

  std::string redis_url_;
  std::chrono::milliseconds ttl_;
  std::function<WorkerInfo()> snapshot_;
  // The snapshot with the machine's facts (detected once; available memory re-read) and the
  // rows/s since the previous heartbeat (from batch_stats.rows).
  WorkerInfo annotated();
  nlohmann::json hardware_;
  int64_t last_rows_ = -1;
  std::chrono::steady_clock::time_point last_time_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace fleet
