#include "sampling/logit_adjust.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace fleet {

void apply_penalties(std::span<float> logits, std::span<const int32_t> generated, double frequency, double presence) {
  if (frequency == 0 && presence == 0) return;
  std::map<int32_t, int64_t> counts;
  for (int32_t t : generated)
    if (t >= 0 && static_cast<size_t>(t) < logits.size()) ++counts[t];
  for (const auto& [t, n] : counts)
    logits[static_cast<size_t>(t)] =
        static_cast<float>(static_cast<double>(logits[static_cast<size_t>(t)]) -
                           (frequency * static_cast<double>(n) + presence));
}

TokenLogprobValues token_logprobs(std::span<const float> logits, int32_t sampled, int top_n) {
  if (logits.empty()) throw std::runtime_error("token_logprobs: empty logits");
  if (sampled < 0 || static_cast<size_t>(sampled) >= logits.size())
    throw std::runtime_error("token_logprobs: sampled token out of range");
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprobValues out;
  out.sampled = static_cast<double>(logits[static_cast<size_t>(sampled)]) - log_z;
  const size_t n = std::min(logits.size(), static_cast<size_t>(std::max(top_n, 0)));
  if (n > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<long>(n), ids.end(), [&](int32_t a, int32_t b) {
      return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
             (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
    });
    for (size_t i = 0; i < n; ++i) {
      const float l = logits[static_cast<size_t>(ids[i])];
      if (std::isinf(l)) break;  // masked out (a grammar): not an alternative
      out.top.emplace_back(ids[i], static_cast<double>(l) - log_z);
    }
  }
  return out;
}

TokenChoice choose_token(std::span<const float> logits, const SamplingParams& params,
                         std::span<const int32_t> generated, uint64_t index, int top_logprobs) {
  std::span<const float> row = logits;
  std::vector<float> adjusted;
  if (params.frequency_penalty != 0 || params.presence_penalty != 0 || !params.logit_bias.empty()) {
    adjusted.assign(logits.begin(), logits.end());
    apply_penalties(adjusted, generated, params.frequency_penalty, params.presence_penalty);
    for (const auto& [t, b] : params.logit_bias)  // ids outside the row were refused at intake
      if (t >= 0 && static_cast<size_t>(t) < adjusted.size())
        adjusted[static_cast<size_t>(t)] = static_cast<float>(static_cast<double>(adjusted[static_cast<size_t>(t)]) + b);
    row = adjusted;
  }
  TokenChoice c;
  c.token = sample_token(row, params, index);
  if (top_logprobs >= 0) c.logprobs = token_logprobs(row, c.token, top_logprobs);
  return c;
}

}  // namespace fleet
