#include "engine/linear.h"

#include <cblas.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stdexcept>

#include "engine/matmul.h"

namespace fleet {

ActivationMode parse_activation_mode(const std::string& s) {
  if (s == "auto") return ActivationMode::Auto;
  if (s == "f32") return ActivationMode::F32;
  if (s == "q8") return ActivationMode::Q8;
  throw std::runtime_error("activations: '" + s + "' is not one of auto, f32, q8");
}

const char* activation_mode_name(ActivationMode m) {
  switch (m) {
    case ActivationMode::Auto: return "auto";
    case ActivationMode::F32: return "f32";
    case ActivationMode::Q8: return "q8";
  }
  return "?";
}

const kernels::Q8Activations& ActivationCache::get(const float* X, int64_t n_tokens, int64_t cols,
                                                   const kernels::PackedQ8View& like) {
  for (size_t i = 0; i < used_; ++i)
    if (entries_[i].fits(like)) return entries_[i];
  if (used_ == entries_.size()) entries_.emplace_back();
  kernels::Q8Activations& a = entries_[used_++];
  a.quantize(X, n_tokens, cols, like);
  return a;
}

namespace {

// Drops the whole pages of [p, p + n) of a read-only file mapping from this process's memory.
void release_pages(const void* p, size_t n) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

Linear::Linear(const Matrix& W, ActivationMode mode, bool release_source, bool blas_prefill) : w_(&W) {
  q8_ = mode != ActivationMode::F32 && dtype_is_quantized(W.dtype);
  blas_ = blas_prefill && W.dtype == DType::F32;
  if (!q8_) return;
  packed_ = kernels::PackedQ8(W);
  if (release_source && W.owned.empty()) release_pages(W.data, W.bytes());
}

void Linear::apply(const float* X, int64_t n_tokens, float* Y, ActivationCache& cache, ThreadPool& pool) const {
  if (blas_ && n_tokens > 1)
    return cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(w_->rows),
                       static_cast<int>(w_->cols), 1.0f, X, static_cast<int>(w_->cols),
                       static_cast<const float*>(w_->data), static_cast<int>(w_->cols), 0.0f, Y, static_cast<int>(w_->rows));
  if (!q8_) return matmul(*w_, X, n_tokens, Y, pool);
  matmul_q8(packed_, cache.get(X, n_tokens, w_->cols, packed_.view()), Y, pool);
}

}  // namespace fleet
