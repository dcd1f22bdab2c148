#pragma once
// The KV caches a stage worker holds, one per request, within a byte budget. A cache is only
// ever a speed-up: whatever is dropped (budget, idleness, a partition moving to another
// replica, a restart) is rebuilt by replay (stage/replay.h), bit for bit.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "engine/kv_cache.h"

namespace fleet {

class KvCachePool {
 public:
  using Clock = std::chrono::steady_clock;
  using Factory = std::function<std::unique_ptr<KVCache>()>;

  KvCachePool(uint64_t budget_bytes, Factory factory) : budget_(budget_bytes), factory_(std::move(factory)) {}

  KVCache* find(const std::string& id);
  // Positions cached for the request (0 without a cache).
  int cached_length(const std::string& id);

  // The request's cache, created when absent, grown to hold positions [0, len). To stay within
  // the budget, the least recently used caches not in `pinned` are evicted (their requests
  // replay later). Throws std::length_error when len exceeds the context, std::runtime_error
  // when the budget cannot hold it even alone with the pinned ones.
  KVCache* reserve(const std::string& id, int len, const std::set<std::string>& pinned);

  bool drop(const std::string& id);  // true when there was a cache
  // Drops the caches idle longer than max_idle; returns their ids.
  std::vector<std::string> drop_idle(std::chrono::milliseconds max_idle, Clock::time_point now = Clock::now());
  // Drops the caches for which pred(id) holds; returns how many.
  size_t drop_if(const std::function<bool(const std::string&)>& pred);

  uint64_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::unique_ptr<KVCache> cache;
    Clock::time_point last_used;
  };
  uint64_t budget_;
  Factory factory_;
  std::map<std::string, Entry> entries_;
  uint64_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace fleet
