#pragma once
// This machine's facts for an operator and for planning: CPU model, logical and physical
// cores, the SIMD features the kernels care about (from cpuid, checked against what the OS
// enables: XSAVE state for AVX / AVX-512), total and available memory, NUMA nodes.
//
//   HardwareInfo h = detect_hardware();     // reads /proc/cpuinfo, /proc/meminfo,
//                                           // /sys/devices/system/node, cpuid
//   std::puts(format_hardware_table(h).c_str());
//   h.to_json()                             // what workers register in membership ("hardware")
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fleet {

struct SimdFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;
  bool amx_bf16 = false;
  bool amx_int8 = false;
  // The names of the features present, in the order above ("avx2", "fma", "avx512f",
  // "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8").
  std::vector<std::string> names() const;
};

struct NumaNode {
  int id = 0;
  std::string cpus;          // cpulist, e.g. "0-7,16-23"
  uint64_t mem_total_bytes = 0;
};

struct HardwareInfo {
  std::string cpu_model;     // "model name" of /proc/cpuinfo (or the cpuid brand string)
  int logical_cores = 0;     // processors the OS lists
  int physical_cores = 0;    // distinct (physical id, core id) pairs; logical_cores when unknown
  SimdFeatures simd;
  uint64_t mem_total_bytes = 0;      // MemTotal
  uint64_t mem_available_bytes = 0;  // MemAvailable
  std::vector<NumaNode> numa_nodes;  // empty when /sys/devices/system/node is absent

  nlohmann::json to_json() const;
  static HardwareInfo from_json(const nlohmann::json& j);  // tolerant: missing fields stay 0
};

// Reads the files under `proc_root` ("/proc") and `sys_root` ("/sys") (tests point them at
// fixtures), and cpuid for the SIMD features (which do not depend on the roots).
HardwareInfo detect_hardware(const std::string& proc_root = "/proc", const std::string& sys_root = "/sys");

// Parsers of the individual sources, exposed for tests.
void parse_cpuinfo(const std::string& text, HardwareInfo* out);  // model, logical, physical cores
void parse_meminfo(const std::string& text, HardwareInfo* out);  // MemTotal, MemAvailable
SimdFeatures detect_simd();
// Only MemTotal / MemAvailable (cheap; the heartbeat refreshes the available memory with it).
void detect_memory(HardwareInfo* out, const std::string& proc_root = "/proc");

// "16.0 GiB" style.
std::string format_bytes(uint64_t bytes);
// The human table of `fleet detect`.
std::string format_hardware_table(const HardwareInfo& h);

}  // namespace fleet
