#include "stage/offset_tracker.h"

#include <algorithm>

namespace fleet {

void OffsetTracker::hold(const std::string& request, uint64_t step, const bus::Message& record) {
  partial_[{request, step}].push_back({{record.topic, record.partition}, record.offset});
}

void OffsetTracker::release_step(const std::string& request, uint64_t step) { partial_.erase({request, step}); }

void OffsetTracker::release_request(const std::string& request) {
  std::erase_if(partial_, [&](const auto& entry) { return entry.first.first == request; });
}

void OffsetTracker::forget(const std::vector<bus::TopicPartition>& partitions) {
  for (const bus::TopicPartition& tp : partitions) {
    commit_points_.erase(tp);
    for (auto& [key, held] : partial_) std::erase_if(held, [&](const auto& h) { return h.first == tp; });
  }
  std::erase_if(partial_, [](const auto& entry) { return entry.second.empty(); });
}

void OffsetTracker::processed(const std::vector<bus::Message>& records) {
  std::map<bus::TopicPartition, int64_t> oldest_partial;
  for (const auto& [key, held] : partial_)
    for (const auto& [tp, offset] : held) {
      auto it = oldest_partial.find(tp);
      if (it == oldest_partial.end() || offset < it->second) oldest_partial[tp] = offset;
    }
  std::map<bus::TopicPartition, int64_t> next;
  for (const bus::Message& m : records) {
    const bus::TopicPartition tp{m.topic, m.partition};
    int64_t candidate = m.offset + 1;
    auto held = oldest_partial.find(tp);
    if (held != oldest_partial.end()) candidate = std::min(candidate, held->second);
    int64_t& n = next[tp];
    n = std::max(n, candidate);
  }
  for (const auto& [tp, offset] : next) {
    int64_t& known = commit_points_[tp];
    known = std::max(known, offset);
  }
}

}  // namespace fleet
