#include "stage/kv_cache_pool.h"

#include <stdexcept>

namespace fleet {

KVCache* KvCachePool::find(const std::string& id) {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.cache.get();
}

int KvCachePool::cached_length(const std::string& id) {
  KVCache* c = find(id);
  return c ? c->length() : 0;
}

KVCache* KvCachePool::reserve(const std::string& id, int len, const std::set<std::string>& pinned) {
  auto it = entries_.find(id);
  const bool created = it == entries_.end();
  if (created) it = entries_.emplace(id, Entry{factory_(), Clock::now()}).first;
  Entry& e = it->second;
  if (len > e.cache->max_len()) {
    const int max_len = e.cache->max_len();
    if (created) entries_.erase(it);
    throw std::length_error("sequence of " + std::to_string(len) + " tokens exceeds the context length " +
                            std::to_string(max_len));
  }
  e.last_used = Clock::now();
  const size_t before = e.cache->bytes();
  e.cache->reserve(len);
  bytes_ += e.cache->bytes() - before;
  while (bytes_ > budget_) {
    auto victim = entries_.end();
    for (auto j = entries_.begin(); j != entries_.end(); ++j)
      if (j->first != id && !pinned.count(j->first) &&
          (victim == entries_.end() || j->second.last_used < victim->second.last_used))
        victim = j;
    if (victim == entries_.end()) {
      const uint64_t needed = e.cache->bytes();
      drop(id);
      throw std::runtime_error("the KV cache budget of " + std::to_string(budget_) + " bytes cannot hold " +
                               std::to_string(needed) + " bytes for this request next to the batch's others");
    }
    bytes_ -= victim->second.cache->bytes();
    entries_.erase(victim);
    ++evictions_;
  }
  return e.cache.get();
}

bool KvCachePool::drop(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  bytes_ -= it->second.cache->bytes();
  entries_.erase(it);
  return true;
}

std::vector<std::string> KvCachePool::drop_idle(std::chrono::milliseconds max_idle, Clock::time_point now) {
  std::vector<std::string> dropped;
  for (const auto& [id, e] : entries_)
    if (now - e.last_used > max_idle) dropped.push_back(id);
  for (const std::string& id : dropped) drop(id);
  return dropped;
}

size_t KvCachePool::drop_if(const std::function<bool(const std::string&)>& pred) {
  std::vector<std::string> ids;
  for (const auto& [id, e] : entries_)
    if (pred(id)) ids.push_back(id);
  for (const std::string& id : ids) drop(id);
  return ids.size();
}

}  // namespace fleet
