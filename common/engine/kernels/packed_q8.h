#pragma once
// Block-quantized weights repacked once at load for the q8-activation kernels (layout in
// kernel_types.h: 16 rows interleaved per group, 4 values per row per 32-bit lane), and
// activation rows quantized to their partner format.
//
// Values keep their width: 4 bits (Q4_0, Q4_1, Q4_K) as nibbles, 5 and 6 bits (Q5_0, Q5_1,
// Q5_K, Q6_K) as nibbles plus a high-bit vector, Q8_0 as bytes. Scales are the file's: f16 d (and m for Q4_1, Q5_1) per block
// of 32 values; for K-quants f16 d (and dmin for Q4_K, Q5_K) per 256 values and integer sc (and
// mn) per block of 32 values (16 for Q6_K).
#include <cstdint>
#include <vector>

#include "engine/kernels/kernel_types.h"
#include "model/weights.h"

namespace fleet::kernels {

class PackedQ8 {
 public:
  PackedQ8() = default;
  explicit PackedQ8(const Matrix& W);  // W.dtype block-quantized
  PackedQ8(PackedQ8&&) = default;      // the view keeps pointing into the moved buffers
  PackedQ8& operator=(PackedQ8&&) = default;
  PackedQ8(const PackedQ8&) = delete;
  PackedQ8& operator=(const PackedQ8&) = delete;
  const PackedQ8View& view() const { return view_; }
  size_t bytes() const { return quants_.size() + 2 * (d_.size() + m_.size()) + sc_.size() + mn_.size(); }

 private:
  PackedQ8View view_;
  std::vector<uint8_t> quants_;
  std::vector<uint16_t> d_, m_;  // f16 scales (per block, or per K-quant super-block)
  std::vector<int8_t> sc_, mn_;  // K-quant block scales and mins
};

// Activation rows quantized like llama.cpp's reference quantize_row_q8_0_ref / _q8_1_ref
// (blocks of 32: d = amax / 127 kept as f16, q = roundf(x / d), s = f16(d * sum q)) or
// quantize_row_q8_K_ref (blocks of 256: d = max / -127, q = nearest(x / d)), arranged for a
// PackedQ8 matrix of the given block size. Plain C++, so every variant reads the same bits.
class Q8Activations {
 public:
  Q8Activations() = default;
  Q8Activations(Q8Activations&&) = default;
  Q8Activations& operator=(Q8Activations&&) = default;
  Q8Activations(const Q8Activations&) = delete;
  Q8Activations& operator=(const Q8Activations&) = delete;
  // X: [n_tokens, cols] f32 (cols as the matrix's, before padding to whole blocks).
  void quantize(const float* X, int64_t n_tokens, int64_t cols, const PackedQ8View& like);
  // Whether these activations fit a matrix (same format, block size and columns).
  bool fits(const PackedQ8View& W) const {
    return view_.tokens > 0 && k_partner_ == W.k_partner && view_.block == W.block && view_.cols == W.cols;
  }
  const Q8ActView& view() const { return view_; }

 private:
  Q8ActView view_;
  bool k_partner_ = false;
  std::vector<int8_t> q_;
  std::vector<float> dx_, sx_, row_;
  std::vector<int32_t> sum_;
};

}  // namespace fleet::kernels
