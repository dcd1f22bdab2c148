#pragma once
// The keys and values of one sequence for the layers one stage holds. Positions are explicit:
// a step that starts at position p truncates anything cached at or after p first, so replaying
// a step (at-least-once delivery, recovery) recomputes the same entries instead of appending.
#include <cstddef>
#include <vector>

namespace fleet {

class KVCache {
 public:
  KVCache(int n_layers, int kv_dim, int max_len);

  int length() const { return length_; }
  int max_len() const { return max_len_; }
  void truncate(int len);  // len <= length()
  // Makes room for positions [0, len); throws if len > max_len.
  void reserve(int len);
  void set_length(int len) { length_ = len; }

  float* k(int layer_slot, int pos) { return k_[layer_slot].data() + static_cast<size_t>(pos) * kv_dim_; }
  float* v(int layer_slot, int pos) { return v_[layer_slot].data() + static_cast<size_t>(pos) * kv_dim_; }
  const float* k(int layer_slot, int pos) const { return k_[layer_slot].data() + static_cast<size_t>(pos) * kv_dim_; }
  const float* v(int layer_slot, int pos) const { return v_[layer_slot].data() + static_cast<size_t>(pos) * kv_dim_; }

  size_t bytes() const;  // bytes allocated
  static size_t bytes_per_token(int n_layers, int kv_dim) { return static_cast<size_t>(n_layers) * kv_dim * 2 * 4; }

 private:
  int kv_dim_, max_len_;
  int capacity_ = 0, length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace fleet
