#include "engine/matmul.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "engine/kernels/kernel_select.h"

namespace fleet {

const char* kernel_variant() { return kernels::active_kernels().name; }

void matmul(const Matrix& W, const float* X, int64_t n_tokens, float* Y, ThreadPool& pool) {
  const kernels::KernelTable& k = kernels::active_kernels();
  kernels::F32WeightsView v;
  v.dtype = static_cast<int>(W.dtype);
  v.data = W.data;
  v.rows = W.rows;
  v.cols = W.cols;
  v.padded_cols = W.blocks_per_row() * dtype_block_size(W.dtype);
  v.row_bytes = W.row_bytes();
  constexpr int64_t kRows = 4;  // rows per job: the kernels' row tile
  const int64_t jobs = (W.rows + kRows - 1) / kRows;
  pool.parallel_for(static_cast<size_t>(jobs), [&](size_t b0, size_t b1) {
    thread_local std::vector<float> scratch;
    if (dtype_is_quantized(W.dtype)) scratch.resize(static_cast<size_t>(kRows * v.padded_cols));
    const int64_t r0 = static_cast<int64_t>(b0) * kRows, r1 = std::min(W.rows, static_cast<int64_t>(b1) * kRows);
    k.matmul_f32_rows(v, r0, r1, X, n_tokens, Y, scratch.data());
  }, static_cast<double>(W.rows) * static_cast<double>(W.cols) * static_cast<double>(n_tokens));
}

void matmul_q8(const kernels::PackedQ8& W, const kernels::Q8Activations& X, float* Y, ThreadPool& pool) {
  if (!X.fits(W.view())) throw std::logic_error("matmul_q8: activations quantized for another matrix format");
  const kernels::KernelTable& k = kernels::active_kernels();
  const kernels::PackedQ8View& w = W.view();
  pool.parallel_for(static_cast<size_t>(w.groups), [&](size_t g0, size_t g1) {
    k.matmul_q8_groups(w, static_cast<int64_t>(g0), static_cast<int64_t>(g1), X.view(), Y);
  }, static_cast<double>(w.rows) * static_cast<double>(w.cols) * static_cast<double>(X.view().tokens));
}

float dot_f32(const float* a, const float* b, int64_t n) { return kernels::active_kernels().dot_f32(a, b, n); }

void attend_rows(const float* q, size_t q_stride, int nq, const int* n, const float* k, const float* v, size_t stride,
                 int head_dim, float scale, float* scratch, float* out, size_t out_stride) {
  kernels::active_kernels().attend_rows(q, q_stride, nq, n, k, v, stride, head_dim, scale, scratch, out, out_stride);
}

void exp_f32(const float* x, int64_t n, float* y) { kernels::active_kernels().exp_f32(x, n, y); }

}  // namespace fleet
