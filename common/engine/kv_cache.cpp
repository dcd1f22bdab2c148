#include "engine/kv_cache.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace fleet {

KVCache::KVCache(int n_layers, int kv_dim, int max_len)
    : kv_dim_(kv_dim), max_len_(max_len), k_(static_cast<size_t>(n_layers)), v_(static_cast<size_t>(n_layers)) {}

void KVCache::truncate(int len) {
  if (len < 0 || len > length_)
    throw std::runtime_error("KV cache truncate to " + std::to_string(len) + " but length is " + std::to_string(length_));
  length_ = len;
}

void KVCache::reserve(int len) {
  if (len > max_len_)
    throw std::runtime_error("sequence of " + std::to_string(len) + " tokens exceeds the context length " +
                             std::to_string(max_len_));
  if (len <= capacity_) return;
  int cap = std::min(max_len_, std::max({len, capacity_ * 2, 64}));
  for (auto* side : {&k_, &v_})
    for (auto& layer : *side) layer.resize(static_cast<size_t>(cap) * kv_dim_);
  capacity_ = cap;
}

size_t KVCache::bytes() const { return k_.size() * 2 * static_cast<size_t>(capacity_) * kv_dim_ * sizeof(float); }

}  // namespace fleet
