#pragma once
// One results-topic consumer for all of an ingress's requests: a dispatcher thread reads
// <prefix>.results and hands each event to the waiting HTTP handler of its request id.
//
// Several ingress replicas run side by side: each follows every partition of the results topic
// from its end (an assign-based consumer, no consumer group: nothing to rebalance, nothing
// committed) and keeps only the events of the ids it created. An id is registered before its
// prompt is produced, so none of its events can be missed; records of other ids are dropped by
// their key (the request id) without being parsed.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <atomic>

#include "bus/consumer.h"
#include "contracts/result_events.h"

namespace fleet::ingress {

// The events of one request, filled by the dispatcher, drained by its handler.
class ResultChannel {
 public:
  void push(ResultEvent ev);
  // Waits up to `timeout` for events; returns those that arrived (empty on timeout or close()).
  std::deque<ResultEvent> wait(std::chrono::milliseconds timeout);
  void close();  // wakes the waiter for good (shutdown)
  bool closed() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ResultEvent> events_;
  bool closed_ = false;
};

class ResultRouter {
 public:
  // Starts following the results topic from its end (returns once every partition is
  // assigned: events produced after this returns are seen) and the dispatcher thread.
  // log: one line per problem (unreadable records, consumer errors).
  ResultRouter(std::unique_ptr<bus::Consumer> consumer, std::function<void(const std::string&)> log);
  ~ResultRouter();  // stop()
  ResultRouter(const ResultRouter&) = delete;
  ResultRouter& operator=(const ResultRouter&) = delete;

  // Before producing the prompt: the channel receives every event of `id` from now on.
  std::shared_ptr<ResultChannel> open(const std::string& id);
  void close(const std::string& id);
  void stop();  // ends the thread; closes every channel

  size_t open_channels() const;
  uint64_t events_routed() const { return routed_.load(); }
  uint64_t records_skipped() const { return skipped_.load(); }  // other ids (other replicas' requests)

 private:
  void run();

  std::unique_ptr<bus::Consumer> consumer_;
  std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ResultChannel>> channels_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> routed_{0}, skipped_{0};
  std::thread thread_;
};

}  // namespace fleet::ingress
