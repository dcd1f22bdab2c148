// The machine's two ceilings that bound the engine (bench/run reports them next to its speed):
//
//   build/bench/fleet_bench_memory [--threads N] [--gemm M,N,K]
//
//   triad: STREAM triad a[i] = b[i] + s * c[i] over doubles, split across N std::threads (default 2);
//          each array is at least 4x the last-level cache (from /sys/devices/system/cpu/cpu0/cache,
//          64 MiB assumed if that is missing). Best of 5; GB/s counts 3 * n * sizeof(double) bytes
//          per pass (STREAM's convention: the write-allocate read of a[] is not counted).
//   sgemm: OpenBLAS cblas_sgemm, row-major C = A * B, M=N=K=1024 unless --gemm; N threads via
//          openblas_set_num_threads. Best of 5; GFLOP/s counts 2 * M * N * K.
//
// Prints one JSON object per line: {"bench":"triad",...} then {"bench":"sgemm",...}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>
#include <nlohmann/json.hpp>

extern "C" void openblas_set_num_threads(int num_threads);

using Clock = std::chrono::steady_clock;

namespace {

constexpr int kReps = 5;

// Size in bytes of the highest-level data/unified cache of cpu0, or 0 if sysfs does not say.
size_t last_level_cache_bytes() {
  int best_level = 0;
  size_t best = 0;
  for (int i = 0;; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_f(dir + "level"), size_f(dir + "size"), type_f(dir + "type");
    int level = 0;
    std::string size, type;
    if (!(level_f >> level) || !(size_f >> size)) break;
    type_f >> type;
    if (type == "Instruction" || level < best_level || size.empty()) continue;
    size_t bytes = std::stoull(size);
    const char unit = size.back();
    if (unit == 'K') bytes <<= 10;
    else if (unit == 'M') bytes <<= 20;
    else if (unit == 'G') bytes <<= 30;
    best_level = level;
    best = bytes;
  }
  return best;
}

// Runs fn(begin, end) over [0, n) split into `threads` contiguous slices; returns seconds.
template <typename Fn>
double parallel_for(size_t n, int threads, Fn fn) {
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(fn, n * static_cast<size_t>(t) / static_cast<size_t>(threads),
                      n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads));
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

nlohmann::json triad(int threads) {
  const size_t llc = last_level_cache_bytes();
  const size_t array_bytes = 4 * (llc ? llc : size_t{64} << 20);
  const size_t n = array_bytes / sizeof(double);
  std::vector<double> a(n), b(n), c(n);
  const double s = 3.0;
  // First touch from the threads that will use each slice (matters on NUMA machines).
  parallel_for(n, threads, [&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) a[i] = 0.0, b[i] = 1.0, c[i] = 2.0;
  });
  std::vector<double> runs;
  for (int r = 0; r < kReps; ++r) {
    const double sec = parallel_for(n, threads, [&](size_t lo, size_t hi) {
      double* __restrict pa = a.data();
      const double* __restrict pb = b.data();
      const double* __restrict pc = c.data();
      for (size_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
    });
    runs.push_back(3.0 * static_cast<double>(n * sizeof(double)) / sec / 1e9);
  }
  if (a[n / 2] != 1.0 + s * 2.0) throw std::runtime_error("triad: wrong result");
  return {{"bench", "triad"},          {"gb_per_s", *std::max_element(runs.begin(), runs.end())},
          {"runs", runs},              {"threads", threads},
          {"element", "double"},       {"array_bytes", n * sizeof(double)},
          {"llc_bytes", llc},          {"llc_source", llc ? "sysfs" : "fallback 64 MiB"}};
}

nlohmann::json sgemm(int threads, int m, int n, int k) {
  openblas_set_num_threads(threads);
  std::vector<float> a(static_cast<size_t>(m) * k, 0.5f), b(static_cast<size_t>(k) * n, 0.25f),
      c(static_cast<size_t>(m) * n);
  auto run = [&] {
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  run();  // warm-up: OpenBLAS starts its threads and buffers
  std::vector<double> runs;
  for (int r = 0; r < kReps; ++r) runs.push_back(2.0 * m * n * k / run() / 1e9);
  return {{"bench", "sgemm"}, {"gflop_per_s", *std::max_element(runs.begin(), runs.end())},
          {"runs", runs},     {"threads", threads},
          {"m", m},           {"n", n},
          {"k", k}};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, m = 1024, n = 1024, k = 1024;
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i], v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--threads" && !v.empty()) threads = std::stoi(v);
    else if (a == "--gemm" && std::sscanf(v.c_str(), "%d,%d,%d", &m, &n, &k) == 3) continue;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--gemm M,N,K]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || m < 1 || n < 1 || k < 1) {
    std::fprintf(stderr, "fleet_bench_memory: --threads and --gemm sizes must be positive\n");
    return 2;
  }
  try {
    std::printf("%s\n", triad(threads).dump().c_str());
    std::fflush(stdout);
    std::printf("%s\n", sgemm(threads, m, n, k).dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet_bench_memory: %s\n", e.what());
    return 1;
  }
  return 0;
}
