#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace fleet {

double uniform_from(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t index) {
  if (logits.empty()) throw std::runtime_error("sample_token: empty logits");
  if (p.temperature < 0 || !std::isfinite(p.temperature)) throw std::runtime_error("temperature must be >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw std::runtime_error("top_p must be in (0, 1]");
  if (p.top_k < 0) throw std::runtime_error("top_k must be >= 0");
  const int32_t n = static_cast<int32_t>(logits.size());
  if (p.temperature == 0 || p.top_k == 1) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit, descending (ties: lower id first), cut to top_k.
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t keep = p.top_k > 0 ? std::min<size_t>(static_cast<size_t>(p.top_k), ids.size()) : ids.size();
  std::partial_sort(ids.begin(), ids.begin() + static_cast<long>(keep), ids.end(), by_logit);
  ids.resize(keep);
  // Softmax at temperature T over the candidates, in double.
  std::vector<double> prob(ids.size());
  const double mx = logits[ids[0]];
  double sum = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    prob[i] = std::exp((logits[ids[i]] - mx) / p.temperature);
    sum += prob[i];
  }
  // Nucleus: the shortest prefix whose mass reaches top_p.
  size_t cut = ids.size();
  if (p.top_p < 1) {
    double acc = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      acc += prob[i] / sum;
      if (acc >= p.top_p) {
        cut = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (size_t i = 0; i < cut; ++i) total += prob[i];
  const double u = uniform_from(p.seed, index) * total;
  double acc = 0;
  size_t last_possible = 0;  // masked tokens (logit -inf) have probability 0: never drawn
  for (size_t i = 0; i < cut; ++i) {
    acc += prob[i];
    if (prob[i] > 0) last_possible = i;
    if (u < acc) return ids[i];
  }
  return ids[last_possible];
}

}  // namespace fleet
