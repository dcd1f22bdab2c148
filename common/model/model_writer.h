#pragma once
// Producing Hugging Face model directories: from a llama2.c checkpoint (`fleet convert`) and
// with random weights of a realistic shape (`fleet synth`).
#include <cstdint>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/model_config.h"

namespace fleet {

// Writes config.json and model.safetensors (f32, Q and K permuted from llama2.c's adjacent
// RoPE pairs to Hugging Face's half-split layout), plus tokenizer.json and
// tokenizer_config.json made from the llama2.c tokenizer.bin.
void convert_llama2c_to_hf(const std::string& model_file, const std::string& tokenizer_file,
                           const std::string& out_dir);

// Named shapes for synthetic models.
std::vector<std::string> synth_shape_names();
ModelConfig synth_shape(const std::string& name);  // throws listing the known names

// Writes config.json, safetensors (sharded in files of at most shard_bytes) with random
// weights, reproducible from `seed` (each tensor's values depend only on (seed, its name)),
// and a llama2.c tokenizer.bin of synthetic pieces covering the whole vocabulary.
void write_synthetic_model(const ModelConfig& config, DType dtype, uint64_t seed, const std::string& out_dir,
                           uint64_t shard_bytes = 2ull << 30);

// The tensor names and shapes of a model with this config, in file order.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<TensorShape> hf_tensor_shapes(const ModelConfig& config);

}  // namespace fleet
