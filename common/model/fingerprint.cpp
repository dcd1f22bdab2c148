#include "model/fingerprint.h"

#include <cstdio>
#include <cstring>

#include "model/model_writer.h"

namespace fleet {

namespace {
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL, kP2 = 0xC2B2AE3D27D4EB4FULL, kP3 = 0x165667B19E3779F9ULL;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t round_(uint64_t acc, uint64_t v) { return rotl(acc + v * kP2, 31) * kP1; }
inline uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  return h ^ (h >> 32);
}
std::string hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}
}  // namespace

uint64_t hash_bytes(const void* data, size_t n, uint64_t seed) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t a = seed + kP1 + kP2, b = seed + kP2, c = seed, d = seed - kP1;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a = round_(a, w[0]);
    b = round_(b, w[1]);
    c = round_(c, w[2]);
    d = round_(d, w[3]);
  }
  uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + n;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = rotl(h ^ round_(0, w), 27) * kP1 + kP3;
  }
  for (; i < n; ++i) h = rotl(h ^ (p[i] * kP3), 11) * kP1;
  return mix(h);
}

namespace {
// The tensor names of layer l (pseudo layers as layer_fingerprint).
std::vector<std::string> layer_tensor_names(const ModelConfig& c, int layer) {
  if (layer < 0) return {kEmbedName};
  if (layer >= c.n_layers) return {kFinalNormName, c.tie_embeddings ? kEmbedName : kHeadName};
  std::vector<std::string> names;
  const std::string prefix = layer_tensor_name(layer, "");
  for (const auto& t : hf_tensor_shapes(c))
    if (t.name.starts_with(prefix)) names.push_back(t.name);
  return names;
}
}  // namespace

std::string layer_fingerprint(const ModelSource& source, int layer) {
  uint64_t h = 0;
  for (const auto& name : layer_tensor_names(source.config, layer)) {
    const TensorRef* t = source.store->find(name);
    if (!t) throw std::runtime_error(source.store->description() + ": missing tensor " + name);
    std::string meta = name;
    meta.append("|").append(dtype_name(t->dtype));
    for (int64_t d : t->shape) meta.append("|").append(std::to_string(d));
    h = hash_bytes(meta.data(), meta.size(), h);
    h = hash_bytes(t->data, t->nbytes, h);
  }
  return hex(h);
}

uint64_t layer_bytes_in_file(const ModelSource& source, int layer) {
  uint64_t n = 0;
  for (const auto& name : layer_tensor_names(source.config, layer))
    if (const TensorRef* t = source.store->find(name)) n += t->nbytes;
  return n;
}

std::map<int, std::string> stage_fingerprints(const ModelSource& source, const StageWeights& w,
                                              const FingerprintProgress& progress) {
  std::vector<int> layers;
  if (w.has_embedding()) layers.push_back(-1);
  for (const auto& l : w.layers) layers.push_back(l.index);
  if (w.has_head()) layers.push_back(w.config.n_layers);
  std::map<int, std::string> out;
  uint64_t bytes = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    out[layers[i]] = layer_fingerprint(source, layers[i]);
    bytes += layer_bytes_in_file(source, layers[i]);
    if (progress) progress(i + 1, layers.size(), bytes);
  }
  return out;
}

}  // namespace fleet
