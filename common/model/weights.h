#pragma once
// The weights one stage holds: layers [begin, end) of a model, plus the embedding when
// begin == 0 and the final norm and output head when end == n_layers. Nothing else of the
// checkpoint is read. Matrices stay zero-copy views of the mapped file when the requested
// in-memory dtype equals the file's (always so for GGUF's quantized types under "auto"), and
// are converted (or quantized to Q8_0) otherwise.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/model_config.h"
#include "model/tensor_store.h"

namespace fleet {

// A row-major [rows, cols] weight matrix. For a block-quantized dtype each row is
// blocks_per_row() ggml blocks (row_bytes() bytes); a row whose length is not a multiple of
// the block size (only when the engine quantizes to Q8_0 itself) ends in a zero-padded block.
struct Matrix {
  Matrix() = default;
  Matrix(Matrix&&) = default;             // moving keeps `data` pointing into `owned`
  Matrix& operator=(Matrix&&) = default;
  Matrix(const Matrix&) = delete;
  Matrix& operator=(const Matrix&) = delete;

  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  std::vector<uint8_t> owned;  // storage when converted

  int64_t blocks_per_row() const;
  size_t row_bytes() const;
  size_t bytes() const;  // bytes this matrix occupies in memory
  // Row r as f32: exact for f32/f16/bf16, dequantized (bit-identical to ggml) otherwise.
  void row_to_f32(int64_t r, float* out) const;
};

// A tensor of shape [rows, cols] as a Matrix of dtype `want`: a zero-copy view when the types
// are equal, else converted (f32, bf16) or quantized (q8_0, as ggml's quantize_row_q8_0_ref).
Matrix matrix_from_tensor(const TensorRef& t, DType want);

struct LayerWeights {
  int index = 0;
  std::vector<float> attn_norm, ffn_norm;  // [dim]
  Matrix wq, wk, wv, wo;                   // [q_dim, dim], [kv_dim, dim] x2, [dim, q_dim]
  std::vector<float> bq, bk, bv;           // Qwen2 biases (empty otherwise)
  std::vector<float> q_norm, k_norm;       // Qwen3 per-head RMSNorm [head_dim] (empty otherwise)
  Matrix w_gate, w_up, w_down;             // [hidden, dim] x2, [dim, hidden]
};

struct LoadOptions {
  int layer_begin = 0;
  int layer_end = -1;           // -1: n_layers
  // auto: the file's type, else f32, bf16 or q8_0 (dequantized / converted)
  std::string weight_dtype = "auto";
};

class StageWeights {
 public:
  ModelConfig config;
  int layer_begin = 0, layer_end = 0;
  bool has_embedding() const { return embedding.rows > 0; }
  bool has_head() const { return head.rows > 0; }
  Matrix embedding;               // [vocab, dim], only when layer_begin == 0
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // only when layer_end == n_layers
  Matrix head;                    // [vocab, dim], only when layer_end == n_layers
  size_t bytes() const;           // bytes of all weights held (views and copies)
  std::shared_ptr<TensorStore> store;  // keeps the mapped files alive
};

// A checkpoint opened for reading: its config and its tensors (metadata only).
struct ModelSource {
  ModelConfig config;
  std::shared_ptr<TensorStore> store;
  std::string path;
};

// PATH: a Hugging Face directory (config.json + safetensors), a GGUF file, or a llama2.c
// checkpoint file.
ModelSource open_model(const std::string& path);

StageWeights load_stage_weights(const ModelSource& source, const LoadOptions& options);

// The in-memory dtype of a matrix stored as `file_dtype` under LoadOptions::weight_dtype
// `option` (auto: as stored); throws for an option the engine cannot hold.
DType resolve_weight_dtype(const std::string& option, DType file_dtype);

// The tensors of each layer, as suffixes after "model.layers.<l>." (canonical names).
std::vector<std::string> layer_tensor_suffixes(const ModelConfig& config);

// The parameter bytes of layers [begin, end) as stored in the file (for memory checks).
size_t layer_file_bytes(const ModelSource& source, int begin, int end);

}  // namespace fleet
