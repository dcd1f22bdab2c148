#include "engine/numerics_probe.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace fleet {

std::string numerics_probe(StageEngine& engine) {
  const ModelConfig& c = engine.config();
  const int D = c.dim;
  const int n = 5;  // sequence a: 4 tokens from position 0; sequence b: 1 token
  std::vector<float> hidden(static_cast<size_t>(n * D));
  if (engine.weights().has_embedding()) {
    std::vector<int32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((1 + 7919 * i) % c.vocab_size);
    engine.embed(ids, hidden.data());
  } else {  // a fixed pseudo-random input in [-1, 1)
    uint32_t s = 12345;
    for (float& x : hidden) {
      s = s * 1664525u + 1013904223u;
      x = static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f;
    }
  }
  auto a = engine.new_cache(8), b = engine.new_cache(8);
  const SeqChunk chunks[] = {{a.get(), 0, 4}, {b.get(), 0, 1}};
  engine.forward_layers(chunks, hidden.data());
  std::vector<float> out = hidden;
  if (engine.weights().has_head()) {
    const std::vector<int64_t> rows = {3, 4};
    out.assign(rows.size() * static_cast<size_t>(c.vocab_size), 0.f);
    engine.head(hidden.data(), rows, out.data());
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the bytes
  const auto* p = reinterpret_cast<const unsigned char*>(out.data());
  for (size_t i = 0; i < out.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace fleet
