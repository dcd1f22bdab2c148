// fleet detect's facts against /proc and /sys read independently here, plus the parsers on
// fixed text (so a parser bug cannot hide behind the machine it runs on).
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "hardware/hardware.h"

namespace fleet {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Hardware, MatchesProc) {
  const HardwareInfo h = detect_hardware();
  // Logical cores: the processors the OS has online.
  EXPECT_EQ(h.logical_cores, sysconf(_SC_NPROCESSORS_CONF));
  EXPECT_GE(h.physical_cores, 1);
  EXPECT_LE(h.physical_cores, h.logical_cores);
  // MemTotal, and the model name of the first processor, read line by line here.
  std::istringstream mem(slurp("/proc/meminfo"));
  unsigned long long total_kb = 0;
  for (std::string line; std::getline(mem, line);)
    if (line.rfind("MemTotal:", 0) == 0) total_kb = std::stoull(line.substr(9));
  ASSERT_GT(total_kb, 0u);
  EXPECT_EQ(h.mem_total_bytes, total_kb * 1024);
  EXPECT_GT(h.mem_available_bytes, 0u);
  EXPECT_LE(h.mem_available_bytes, h.mem_total_bytes);
  std::istringstream cpu(slurp("/proc/cpuinfo"));
  std::string model;
  for (std::string line; std::getline(cpu, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  if (!model.empty()) {
    EXPECT_EQ(h.cpu_model, model);
  }
  EXPECT_FALSE(h.cpu_model.empty());
}

TEST(Hardware, SimdMatchesCpuinfoFlags) {
  // The kernel's flags line lists what cpuid reports and the OS enabled: they must agree.
  std::istringstream cpu(slurp("/proc/cpuinfo"));
  std::set<std::string> flags;
  for (std::string line; std::getline(cpu, line);)
    if (line.rfind("flags", 0) == 0) {
      std::istringstream f(line.substr(line.find(':') + 1));
      for (std::string x; f >> x;) flags.insert(x);
      break;
    }
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo (the project targets x86-64)";
  const SimdFeatures s = detect_simd();
  EXPECT_EQ(s.avx2, flags.count("avx2") > 0);
  EXPECT_EQ(s.fma, flags.count("fma") > 0);
  EXPECT_EQ(s.avx512f, flags.count("avx512f") > 0);
  EXPECT_EQ(s.avx512_vnni, flags.count("avx512_vnni") > 0);
  EXPECT_EQ(s.avx512_bf16, flags.count("avx512_bf16") > 0);
  EXPECT_EQ(s.avx_vnni, flags.count("avx_vnni") > 0);
  EXPECT_EQ(s.amx_bf16, flags.count("amx_bf16") > 0);
}

TEST(Hardware, NumaNodesMatchSys) {
  const HardwareInfo h = detect_hardware();
  int nodes = 0;
  for (int i = 0; i < 1024; ++i)
    if (std::ifstream("/sys/devices/system/node/node" + std::to_string(i) + "/cpulist")) ++nodes;
  EXPECT_EQ(static_cast<int>(h.numa_nodes.size()), nodes);
  for (const NumaNode& n : h.numa_nodes) EXPECT_FALSE(n.cpus.empty());
}

TEST(Hardware, ParsesFixedText) {
  HardwareInfo h;
  parse_cpuinfo(
      "processor\t: 0\nmodel name\t: Test CPU @ 2GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n"
      "processor\t: 1\nmodel name\t: Test CPU @ 2GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n"
      "processor\t: 2\nmodel name\t: Test CPU @ 2GHz\nphysical id\t: 0\ncore id\t\t: 1\n\n"
      "processor\t: 3\nmodel name\t: Test CPU @ 2GHz\nphysical id\t: 1\ncore id\t\t: 0\n",
      &h);
  EXPECT_EQ(h.cpu_model, "Test CPU @ 2GHz");
  EXPECT_EQ(h.logical_cores, 4);
  EXPECT_EQ(h.physical_cores, 3);
  parse_meminfo("MemTotal:       16305540 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n", &h);
  EXPECT_EQ(h.mem_total_bytes, 16305540ull * 1024);
  EXPECT_EQ(h.mem_available_bytes, 8000000ull * 1024);
}

TEST(Hardware, JsonRoundTrip) {
  HardwareInfo h = detect_hardware();
  HardwareInfo back = HardwareInfo::from_json(h.to_json());
  EXPECT_EQ(back.to_json(), h.to_json());
  EXPECT_NE(format_hardware_table(h).find(std::to_string(h.logical_cores) + " logical"), std::string::npos);
}

}  // namespace
}  // namespace fleet
