#pragma once
// The random stream of synthetic models (model_synth.cpp, gguf_synth.cpp): splitmix64 seeded
// by (seed, tensor name), so a tensor's values do not depend on file order or format.
#include <cstdint>
#include <string>

namespace fleet {

struct SynthRng {
  uint64_t s;
  SynthRng(uint64_t seed, const std::string& name) : s(seed ^ 0x6a09e667f3bcc909ULL) {
    for (unsigned char ch : name) s = (s ^ ch) * 0x100000001b3ULL;
  }
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * 0x1.0p-24f * 2.f - 1.f; }  // [-1, 1)
};

}  // namespace fleet
