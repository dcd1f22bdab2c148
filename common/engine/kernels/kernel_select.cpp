// Which kernel variant runs: the best one this CPU supports (cpuid, checked against the state
// the OS saves: YMM for AVX2, ZMM and opmask for AVX-512), or the one FLEET_KERNELS names.
#include "engine/kernels/kernel_select.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "engine/kernels/kernel_common.h"
#include "model/dtype.h"

namespace fleet::kernels {

namespace {

struct Cpu {
  bool avx2 = false, avx512 = false;
};

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

Cpu detect() {
  Cpu cpu;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return cpu;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!osxsave || !avx || __get_cpuid_max(0, nullptr) < 7) return cpu;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = os_ymm && (xcr0 & 0xE0) == 0xE0;
  __cpuid_count(7, 0, a, b, c, d);
  cpu.avx2 = os_ymm && fma && f16c && (b & (1u << 5));
  const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31), vnni = c & (1u << 11);
  cpu.avx512 = cpu.avx2 && os_zmm && f && bw && vl && vnni;
  return cpu;
}

const Cpu& cpu() {
  static const Cpu c = detect();
  return c;
}

const KernelTable* by_name(const std::string& name) {
  if (name == "scalar") return scalar_kernels();
  if (name == "avx2") return avx2_kernels();
  if (name == "avx512") return avx512_kernels();
  return nullptr;
}

bool cpu_runs(const std::string& name) {
  return name == "scalar" || (name == "avx2" && cpu().avx2) || (name == "avx512" && cpu().avx512);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

const KernelTable* choose(const std::string& name) {
  const KernelTable* t = by_name(name);
  if (!t)
    throw std::runtime_error("FLEET_KERNELS=" + name + ": no such kernel variant (this build has: " +
                             join(kernel_variants()) + ")");
  if (!cpu_runs(name))
    throw std::runtime_error("FLEET_KERNELS=" + name + ": this CPU cannot run the " + name +
                             " kernels (it runs: " + join(supported_kernel_variants()) + ")");
  return t;
}

std::atomic<const KernelTable*> g_active{nullptr};

}  // namespace

std::vector<std::string> kernel_variants() { return {"scalar", "avx2", "avx512"}; }

std::vector<std::string> supported_kernel_variants() {
  std::vector<std::string> out;
  for (const auto& v : kernel_variants())
    if (cpu_runs(v)) out.push_back(v);
  return out;
}

const KernelTable& active_kernels() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t) return *t;
  const char* env = std::getenv("FLEET_KERNELS");
  t = env && *env ? choose(env) : by_name(supported_kernel_variants().back());
  g_active.store(t, std::memory_order_release);
  return *t;
}

void use_kernels(const std::string& name) { g_active.store(choose(name), std::memory_order_release); }

void dequantize_generic(int type, const uint8_t* x, int64_t n, float* y) {
  gguf_dequantize(dtype_to_ggml(static_cast<DType>(type)), x, n, y);
}

}  // namespace fleet::kernels
