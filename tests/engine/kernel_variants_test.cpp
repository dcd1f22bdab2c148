// The kernels of every instruction-set variant (engine/kernels/): q8 activations give the
// values of the dequantized weights times the quantized activations; every variant this CPU
// runs gives the same bits as the scalar one, in both activation modes, for every weight type;
// a token's outputs are the same alone or in a batch; FLEET_KERNELS names are checked.
#include <cmath>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>

#include "engine/kernels/kernel_select.h"
#include "engine/matmul.h"
#include "random_matrix.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::random_matrix;

const DType kQuantized[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                            DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
const DType kAll[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                      DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> random_rows(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) v = nd(rng);
  return x;
}

// Y of every token, in f32 mode (q8 = false) or q8 mode.
std::vector<float> run(const Matrix& W, const std::vector<float>& X, int64_t n_tokens, bool q8, ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(n_tokens * W.rows));
  if (!q8) {
    matmul(W, X.data(), n_tokens, y.data(), pool);
  } else {
    kernels::PackedQ8 p(W);
    kernels::Q8Activations a;
    a.quantize(X.data(), n_tokens, W.cols, p.view());
    matmul_q8(p, a, y.data(), pool);
  }
  return y;
}

struct RestoreKernels {
  std::string name = kernel_variant();
  ~RestoreKernels() { kernels::use_kernels(name); }
};

TEST(Q8Matmul, EqualsDequantizedWeightsTimesQuantizedActivations) {
  // A reference in double: sum over k of dequant(W)[r][k] * dx[block] * q[k], from the same
  // quantized activations. The kernel's f32 block arithmetic must stay within rounding of it,
  // which checks the repacking of every type (a wrong nibble or scale is far outside).
  ThreadPool pool(2);
  for (DType t : kQuantized) {
    SCOPED_TRACE(dtype_name(t));
    const int64_t rows = 37, cols = 512, n = 3;  // 37: a partial group of 16 rows
    const Matrix W = random_matrix(t, rows, cols, 11u + static_cast<uint32_t>(t));
    const std::vector<float> X = random_rows(n, cols, 5);
    kernels::PackedQ8 p(W);
    kernels::Q8Activations a;
    a.quantize(X.data(), n, cols, p.view());
    std::vector<float> y(static_cast<size_t>(n * rows));
    matmul_q8(p, a, y.data(), pool);
    const kernels::Q8ActView& av = a.view();
    std::vector<float> w(static_cast<size_t>(cols));
    double worst = 0, scale = 0;
    for (int64_t r = 0; r < rows; ++r) {
      W.row_to_f32(r, w.data());
      for (int64_t tok = 0; tok < n; ++tok) {
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < cols; ++k) {
          const double xq = static_cast<double>(av.dx[tok * av.blocks + k / av.block]) * av.q[tok * av.cols + k];
          ref += static_cast<double>(w[static_cast<size_t>(k)]) * xq;
          mag += std::fabs(static_cast<double>(w[static_cast<size_t>(k)]) * xq);
        }
        worst = std::max(worst, std::fabs(ref - y[static_cast<size_t>(tok * rows + r)]) / (mag + 1e-30));
        scale = std::max(scale, mag);
        // and the quantized activations are within half a step of x (plus the f16 rounding of the
        // Q8_0 scale: 127 steps of at most 2^-11 each)
        if (r == 0) {
          for (int64_t k = 0; k < cols; ++k)
            EXPECT_LE(std::fabs(av.dx[tok * av.blocks + k / av.block] * av.q[tok * av.cols + k] - X[static_cast<size_t>(tok * cols + k)]),
                      0.57f * std::fabs(av.dx[tok * av.blocks + k / av.block]) + 1e-6f);
        }
      }
    }
    EXPECT_GT(scale, 0.0);
    EXPECT_LT(worst, 1e-5) << "relative to the sum of |terms|";
  }
}

TEST(KernelVariants, EveryVariantGivesTheScalarBitsInBothModesForEveryType) {
  RestoreKernels restore;
  ThreadPool pool(2);
  std::string ran;
  for (const std::string& v : kernels::supported_kernel_variants()) ran += v + " ";
  std::printf("kernel variants this CPU runs: %s\n", ran.c_str());
  for (DType t : kAll) {
    for (bool q8 : {false, true}) {
      if (q8 && !dtype_is_quantized(t)) continue;
      SCOPED_TRACE(std::string(dtype_name(t)) + (q8 ? " q8" : " f32"));
      const int64_t rows = 21, cols = 512 + (dtype_is_quantized(t) ? 0 : 7), n = 6;
      const Matrix W = random_matrix(t, rows, cols, 3u + static_cast<uint32_t>(t));
      const std::vector<float> X = random_rows(n, cols, 9);
      kernels::use_kernels("scalar");
      const std::vector<float> want = run(W, X, n, q8, pool);
      for (const std::string& v : kernels::supported_kernel_variants()) {
        kernels::use_kernels(v);
        const std::vector<float> got = run(W, X, n, q8, pool);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0) << v;
      }
    }
  }
}

TEST(KernelVariants, ATokensOutputsAreTheSameAloneAndInAnyBatch) {
  RestoreKernels restore;
  ThreadPool pool(2);
  for (const std::string& v : kernels::supported_kernel_variants()) {
    kernels::use_kernels(v);
    for (DType t : kAll)
      for (bool q8 : {false, true}) {
        if (q8 && !dtype_is_quantized(t)) continue;
        SCOPED_TRACE(v + " " + dtype_name(t) + (q8 ? " q8" : " f32"));
        const int64_t rows = 40, cols = 256 + (dtype_is_quantized(t) ? 0 : 7), n = 64;
        const Matrix W = random_matrix(t, rows, cols, 17u + static_cast<uint32_t>(t));
        const std::vector<float> X = random_rows(n, cols, 23);
        const std::vector<float> all = run(W, X, n, q8, pool);
        for (int64_t batch : {1, 2, 7, 32}) {
          for (int64_t t0 = 0; t0 + batch <= n; t0 += batch + 3) {
            const std::vector<float> part(X.begin() + t0 * cols, X.begin() + (t0 + batch) * cols);
            const std::vector<float> y = run(W, part, batch, q8, pool);
            EXPECT_EQ(std::memcmp(y.data(), all.data() + t0 * rows, y.size() * 4), 0) << "batch " << batch << " at " << t0;
          }
        }
      }
  }
}

TEST(KernelVariants, ActivationQuantizationRoundsHalfAwayFromZeroInEveryVariant) {
  // Blocks whose amax is 127 (d = 1), so x * id hits exact ties: roundf's 2.5 -> 3, -2.5 -> -3.
  RestoreKernels restore;
  std::vector<float> x;
  const float ties[] = {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f, 0.49999997f, -0.49999997f, 0.0f, -0.0f};
  for (int b = 0; b < 4; ++b) {
    x.push_back(b % 2 ? -127.f : 127.f);
    for (int j = 1; j < 32; ++j) {
      const float t = ties[(j + b) % 12];
      x.push_back(std::fabs(t) < 100 && b % 3 == 2 ? t + static_cast<float>(j % 5) : t);  // more ties: 3.5, -0.5, ...
    }
  }
  x.resize(x.size() + 32, 0.f);  // an all-zero block: d = 0, every q = 0
  const int64_t nb = static_cast<int64_t>(x.size() / 32);
  for (const std::string& v : kernels::supported_kernel_variants()) {
    kernels::use_kernels(v);
    std::vector<int8_t> q(x.size());
    std::vector<float> d(static_cast<size_t>(nb));
    kernels::active_kernels().quantize_q8_32(x.data(), nb, q.data(), d.data());
    for (int64_t b = 0; b < nb; ++b) {
      const float want_d = b < 4 ? 1.0f : 0.0f;
      EXPECT_EQ(d[static_cast<size_t>(b)], want_d) << v;
      for (int j = 0; j < 32; ++j) {
        const size_t i = static_cast<size_t>(b * 32 + j);
        EXPECT_EQ(q[i], static_cast<int8_t>(std::roundf(x[i] * (want_d != 0 ? 1 / want_d : 0)))) << v << " x=" << x[i];
      }
    }
  }
}

TEST(KernelVariants, AttentionFollowsItsDefinitionInEveryVariant) {
  // The definition (kernel_types.h) written out step by step with the scalar dot; one query row
  // through every variant's attend_rows (keys taken several at a time, output chains
  // interleaved) must give exactly its bits, for head sizes with and without a tail of 16 and
  // for key counts around the tile sizes.
  RestoreKernels restore;
  for (int hd : {8, 64, 72, 128}) {
    for (int n : {1, 3, 4, 5, 9, 300}) {
      SCOPED_TRACE("hd " + std::to_string(hd) + " n " + std::to_string(n));
      const size_t stride = static_cast<size_t>(hd) * 3;  // rows of several heads, as in the cache
      const std::vector<float> q = random_rows(1, hd, 31), k = random_rows(n, static_cast<int64_t>(stride), 37),
                               v = random_rows(n, static_cast<int64_t>(stride), 41);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      kernels::use_kernels("scalar");
      std::vector<float> e(static_cast<size_t>(n)), want(static_cast<size_t>(hd));
      float mx = -INFINITY, sum = 0;
      for (int j = 0; j < n; ++j) {
        e[static_cast<size_t>(j)] = dot_f32(q.data(), k.data() + static_cast<size_t>(j) * stride, hd) * scale;
        mx = std::max(mx, e[static_cast<size_t>(j)]);
      }
      for (float& x : e) sum += (x = expf(x - mx));
      const float inv = 1.0f / sum;
      for (int d = 0; d < hd; ++d) {
        float o = 0;
        for (int j = 0; j < n; ++j) o = o + (e[static_cast<size_t>(j)] * inv) * v[static_cast<size_t>(j) * stride + d];
        want[static_cast<size_t>(d)] = o;
      }
      for (const std::string& variant : kernels::supported_kernel_variants()) {
        kernels::use_kernels(variant);
        std::vector<float> scores(static_cast<size_t>(hd + n + 1)), got(static_cast<size_t>(hd));
        attend_rows(q.data(), 0, 1, &n, k.data(), v.data(), stride, hd, scale, scores.data(), got.data(), 0);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0) << variant;
      }
    }
  }
}

TEST(KernelVariants, AttentionRowsAreTheSameAloneAndInBlocks) {
  // Blocks of consecutive query rows (row i sees keys 0 .. first + i, as in a prompt) give each
  // row exactly the bits it gets alone, in every variant, for any block size and head size.
  RestoreKernels restore;
  for (int hd : {8, 64, 72}) {
    const size_t stride = static_cast<size_t>(hd) * 2, q_stride = static_cast<size_t>(hd) * 5;
    const int first = 6, rows = 19, keys = first + rows;
    const std::vector<float> q = random_rows(rows, static_cast<int64_t>(q_stride), 43),
                             k = random_rows(keys, static_cast<int64_t>(stride), 47),
                             v = random_rows(keys, static_cast<int64_t>(stride), 53);
    const float scale = 0.125f;
    for (const std::string& variant : kernels::supported_kernel_variants()) {
      kernels::use_kernels(variant);
      std::vector<float> alone(static_cast<size_t>(rows * hd)), scratch(static_cast<size_t>(rows * (hd + keys + 1)));
      for (int i = 0; i < rows; ++i) {
        const int n = first + i + 1;
        attend_rows(q.data() + i * q_stride, 0, 1, &n, k.data(), v.data(), stride, hd, scale, scratch.data(),
                    alone.data() + i * hd, 0);
      }
      for (int block : {1, 3, 4, 5, 16, 19}) {
        SCOPED_TRACE(variant + " hd " + std::to_string(hd) + " block " + std::to_string(block));
        std::vector<float> got(static_cast<size_t>(rows * hd), -1.0f);
        for (int i0 = 0; i0 < rows; i0 += block) {
          const int nq = std::min(block, rows - i0);
          std::vector<int> n(static_cast<size_t>(nq));
          for (int i = 0; i < nq; ++i) n[static_cast<size_t>(i)] = first + i0 + i + 1;
          attend_rows(q.data() + i0 * q_stride, q_stride, nq, n.data(), k.data(), v.data(), stride, hd, scale,
                      scratch.data(), got.data() + i0 * hd, static_cast<size_t>(hd));
        }
        EXPECT_EQ(std::memcmp(got.data(), alone.data(), alone.size() * 4), 0);
      }
    }
  }
}

TEST(KernelVariants, ExpEqualsLibmExpfInEveryVariant) {
  // exp_f32 reproduces glibc's expf (its FMA build, what x86-64 CPUs with FMA run). Checked here
  // on every 4093rd bit pattern of all 2^32 floats plus the edges of each special range; all
  // 2^32 inputs were checked once for scalar and avx2 (docs/kernels.md).
  RestoreKernels restore;
  std::vector<float> x;
  for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
    const uint32_t b = static_cast<uint32_t>(u);
    float f;
    std::memcpy(&f, &b, 4);
    x.push_back(f);
  }
  for (float edge : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.0f, -88.0f, 0x1.62e42ep6f, -0x1.9fe368p6f,
                     -0x1.9d1d9ep6f, 1e-45f, -1e-45f, 0.5f, -0.5f}) {
    x.push_back(edge);  // and its three neighbours on each side
    float up = edge, down = edge;
    for (int d = 0; d < 3; ++d) {
      x.push_back(up = std::nextafter(up, INFINITY));
      x.push_back(down = std::nextafter(down, -INFINITY));
    }
  }
  x.resize(x.size() + 5, -1.0f);  // a length that leaves a tail for the scalar loop
  for (const std::string& variant : kernels::supported_kernel_variants()) {
    kernels::use_kernels(variant);
    std::vector<float> y(x.size());
    exp_f32(x.data(), static_cast<int64_t>(x.size()), y.data());
    int64_t differ = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = expf(x[i]);
      if (std::isnan(want) && std::isnan(y[i])) continue;
      if (std::memcmp(&want, &y[i], 4) != 0 && differ++ < 5)
        ADD_FAILURE() << variant << ": expf(" << x[i] << ") = " << want << ", exp_f32 gave " << y[i];
    }
    EXPECT_EQ(differ, 0) << variant << ", of " << x.size() << " inputs";
  }
}

TEST(KernelVariants, UnknownOrUnsupportedVariantsAreClearErrors) {
  RestoreKernels restore;
  try {
    kernels::use_kernels("amx");
    FAIL() << "amx accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("FLEET_KERNELS=amx: no such kernel variant (this build has: scalar, avx2, avx512)"),
              std::string::npos)
        << e.what();
  }
  const auto supported = kernels::supported_kernel_variants();
  ASSERT_FALSE(supported.empty());
  EXPECT_EQ(supported.front(), "scalar");
  for (const std::string& v : kernels::kernel_variants())
    if (std::find(supported.begin(), supported.end(), v) == supported.end()) {
      EXPECT_THROW(kernels::use_kernels(v), std::runtime_error) << v;
    }
  kernels::use_kernels("scalar");
  EXPECT_STREQ(kernel_variant(), "scalar");
}

}  // namespace
}  // namespace fleet
