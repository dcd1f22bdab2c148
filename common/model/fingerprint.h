#pragma once
// Weight fingerprints: a hash of the exact bytes a stage loaded, per layer, so that workers
// running different weights for the same layers are detected (the manifest in Redis keeps the
// first worker's hash for each layer; a worker whose hash differs refuses to start).
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "model/weights.h"

namespace fleet {

// 64-bit hash of a byte range (four independent multiply-rotate lanes over 8-byte words,
// ~10 GB/s); not cryptographic, it guards against accidents, not adversaries.
uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0);

// Hash of layer l's tensors as stored in the file: names, dtypes, shapes and bytes. Pseudo
// layers: -1 is the embedding, n_layers is the final norm plus the output head.
std::string layer_fingerprint(const ModelSource& source, int layer);

// Fingerprints of everything a stage holds, keyed like layer_fingerprint. `progress`, when
// given, is called after each layer with (layers hashed, layers in all, bytes hashed).
using FingerprintProgress = std::function<void(size_t done, size_t total, uint64_t bytes)>;
std::map<int, std::string> stage_fingerprints(const ModelSource& source, const StageWeights& weights,
                                              const FingerprintProgress& progress = nullptr);
// The bytes layer_fingerprint(source, layer) reads.
uint64_t layer_bytes_in_file(const ModelSource& source, int layer);

}  // namespace fleet
