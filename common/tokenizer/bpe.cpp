#include "bpe.h"

#include <queue>

namespace fleet::tok {

void BpeMerges::add(int32_t left, int32_t right, int32_t rank, int32_t result) {
  auto [it, inserted] = table_.try_emplace(key(left, right), MergeResult{rank, result});
  if (!inserted && rank < it->second.rank) it->second = MergeResult{rank, result};
}

namespace {

// Short sequences: keep each adjacent pair's merge and rescan for the best one
// (cheaper than a heap); only the two pairs touching a merge are looked up again.
void apply_bpe_scan(const BpeMerges& merges, std::vector<int32_t>& ids) {
  constexpr MergeResult kNone{INT32_MAX, -1};
  std::vector<MergeResult> pair(ids.size() - 1);
  auto lookup = [&](size_t i) {
    const MergeResult* m = merges.find(ids[i], ids[i + 1]);
    return m != nullptr ? *m : kNone;
  };
  for (size_t i = 0; i + 1 < ids.size(); ++i) pair[i] = lookup(i);
  while (!pair.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < pair.size(); ++i)
      if (pair[i].rank < pair[best].rank) best = i;
    if (pair[best].id < 0) return;
    ids[best] = pair[best].id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    pair.erase(pair.begin() + static_cast<std::ptrdiff_t>(best));
    if (best > 0) pair[best - 1] = lookup(best - 1);
    if (best < pair.size()) pair[best] = lookup(best);
  }
}

struct Candidate {
  int32_t rank;
  int32_t left;  // index of the left symbol (its original position: leftmost wins ties)
  int32_t right;
  int32_t left_id;
  int32_t right_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};

// Long sequences: doubly linked symbols and a min-heap of candidate merges.
void apply_bpe_heap(const BpeMerges& merges, std::vector<int32_t>& ids) {
  const auto n = static_cast<int32_t>(ids.size());
  std::vector<int32_t> prev(ids.size()), next(ids.size());
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = (i + 1 < n) ? i + 1 : -1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    if (const MergeResult* m = merges.find(ids[l], ids[r])) heap.push({m->rank, l, r, ids[l], ids[r]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  std::vector<bool> alive(ids.size(), true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || ids[c.left] != c.left_id ||
        ids[c.right] != c.right_id) {
      continue;  // stale
    }
    const MergeResult* m = merges.find(c.left_id, c.right_id);
    ids[c.left] = m->id;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0 && i < n; i = next[i]) ids[out++] = ids[i];
  ids.resize(out);
}

}  // namespace

void apply_bpe(const BpeMerges& merges, std::vector<int32_t>& ids) {
  if (ids.size() < 2) return;
  if (ids.size() <= 48) {
    apply_bpe_scan(merges, ids);
  } else {
    apply_bpe_heap(merges, ids);
  }
}

}  // namespace fleet::tok
