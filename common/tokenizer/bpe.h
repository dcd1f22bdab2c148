#pragma once
// Byte-pair merging over token ids. A merge table maps an adjacent pair of ids to the
// id they merge into and a rank; the lowest rank merges first, and among equal ranks
// the leftmost pair (what both SentencePiece and Hugging Face tokenizers do).
#include <cstddef>
#include <cstdint>
#include <climits>
#include <unordered_map>
#include <vector>

namespace fleet::tok {

struct MergeResult {
  int32_t rank;
  int32_t id;
};

class BpeMerges {
 public:
  void reserve(size_t n) { table_.reserve(n); }
  // Keeps the existing entry if the pair is already present with a lower rank.
  void add(int32_t left, int32_t right, int32_t rank, int32_t result);
  const MergeResult* find(int32_t left, int32_t right) const {
    auto it = table_.find(key(left, right));
    return it == table_.end() ? nullptr : &it->second;
  }
  size_t size() const { return table_.size(); }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [k, v] : table_) f(static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xffffffffu), v);
  }

 private:
  static uint64_t key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  std::unordered_map<uint64_t, MergeResult> table_;
};

// Merges `ids` in place until no adjacent pair is in the table.
void apply_bpe(const BpeMerges& merges, std::vector<int32_t>& ids);

}  // namespace fleet::tok
