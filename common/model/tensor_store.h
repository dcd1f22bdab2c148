#pragma once
// Read-only access to the named tensors of a checkpoint, backed by memory-mapped files.
// Opening a store parses and validates metadata only; tensor bytes are read when a caller
// touches them, so tensors a stage does not need are never read.
//
// Tensor names follow Hugging Face's Llama convention (model.layers.N.self_attn.q_proj.weight);
// the llama2.c reader presents its checkpoint under the same names.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/model_config.h"
#include "util/mapped_file.h"

namespace fleet {

struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // little-endian elements, row-major
  size_t nbytes = 0;
  std::string file;  // for error messages
  int64_t numel() const;
};

class TensorStore {
 public:
  virtual ~TensorStore() = default;
  const TensorRef* find(const std::string& name) const;
  // The tensor with this name and shape; throws naming file, tensor and the mismatch.
  const TensorRef& require(const std::string& name, const std::vector<int64_t>& shape) const;
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const std::string& description() const { return description_; }

 protected:
  std::map<std::string, TensorRef> tensors_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::string description_;
};

// One model.safetensors, or the shards listed by model.safetensors.index.json, in `dir`.
std::unique_ptr<TensorStore> open_safetensors_dir(const std::string& dir);
// One .safetensors file.
std::unique_ptr<TensorStore> open_safetensors_file(const std::string& path);

// A llama2.c legacy checkpoint; fills `config` from its header (RoPE layout Adjacent).
std::unique_ptr<TensorStore> open_llama2c(const std::string& path, ModelConfig* config);

// Canonical tensor names.
std::string layer_tensor_name(int layer, const char* suffix);  // "model.layers.<l>.<suffix>"
inline constexpr const char* kEmbedName = "model.embed_tokens.weight";
inline constexpr const char* kFinalNormName = "model.norm.weight";
inline constexpr const char* kHeadName = "lm_head.weight";

}  // namespace fleet
