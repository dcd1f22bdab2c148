#pragma once
// What a model costs in memory, per layer and for the embedding / head, read from its header
// alone: no tensor bytes are touched.
//
//   - a Hugging Face directory with weights, a GGUF file, a llama2.c checkpoint: model/weights.h
//     open_model (maps the files, parses the headers), each tensor's size from its shape and the
//     in-memory dtype the worker will use (quantized GGUF tensors stay as stored);
//   - config.json alone (a directory with config.json and no weights, or the file itself): the
//     tensor shapes implied by the config, at the config's torch_dtype (or `weights`).
//
// The embedding lives on the first stage, the final norm and the output head on the last (a
// tied head still costs a copy there: the last stage holds the embedding matrix as its head).
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace fleet {

struct ModelShape {
  std::string path;         // as given
  std::string name;         // default model name: the file name without extension / the directory name
  std::string source;       // "config.json", "safetensors", "gguf", "llama2.c"
  std::string dtype;        // in-memory dtype of the matrices ("bf16", ...; "as stored" for GGUF)
  ModelConfig config;
  std::vector<uint64_t> layer_bytes;  // per layer
  uint64_t embedding_bytes = 0;       // first stage
  uint64_t head_bytes = 0;            // last stage: output head + final norm
  bool weights_present = false;       // tensors were found (false for config.json alone)
  // Compute per token, in multiply-adds of the matrices (attention over the context not
  // counted): a layer's q/k/v/o and feed-forward matrices; the head's vocab x dim on the last
  // stage; the embedding is a row lookup (none).
  uint64_t layer_macs = 0;
  uint64_t head_macs = 0;

  int n_layers() const { return static_cast<int>(layer_bytes.size()); }
  uint64_t total_bytes() const;
  // Weights of a stage holding layers [first, end) of a model split into stages.
  uint64_t stage_bytes(int first, int end) const;
  uint64_t total_macs() const { return stage_macs(0, n_layers()); }
  uint64_t stage_macs(int first, int end) const;
};

// `weights`: the deployment's model.weights ("auto", "f32", "bf16", "q8_0"). Throws
// std::runtime_error naming the path when it is not a model.
ModelShape read_model_shape(const std::string& path, const std::string& weights = "auto");

}  // namespace fleet
