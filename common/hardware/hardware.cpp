#include "hardware/hardware.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace fleet {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

// "key<TAB>: value" lines of /proc/cpuinfo and "Key:   value kB" of /proc/meminfo.
bool split_line(const std::string& line, std::string* key, std::string* value) {
  size_t colon = line.find(':');
  if (colon == std::string::npos) return false;
  *key = trim(line.substr(0, colon));
  *value = trim(line.substr(colon + 1));
  return true;
}

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

}  // namespace

std::vector<std::string> SimdFeatures::names() const {
  std::vector<std::string> n;
  const std::pair<bool, const char*> all[] = {{avx2, "avx2"},           {fma, "fma"},
                                              {avx512f, "avx512f"},     {avx512_vnni, "avx512_vnni"},
                                              {avx512_bf16, "avx512_bf16"}, {avx_vnni, "avx_vnni"},
                                              {amx_bf16, "amx_bf16"},   {amx_int8, "amx_int8"}};
  for (const auto& [on, name] : all)
    if (on) n.push_back(name);
  return n;
}

SimdFeatures detect_simd() {
  SimdFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // XMM and YMM state
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;     // XTILECFG, XTILEDATA
  if (!os_avx) return f;
  f.fma = fma;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned max_sub = a;
  f.avx2 = b & (1u << 5);
  f.avx512f = os_avx512 && (b & (1u << 16));
  f.avx512_vnni = f.avx512f && (c & (1u << 11));
  f.amx_bf16 = os_amx && (d & (1u << 22));
  f.amx_int8 = os_amx && (d & (1u << 25));
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = a & (1u << 4);
    f.avx512_bf16 = f.avx512f && (a & (1u << 5));
  }
#endif
  return f;
}

void parse_cpuinfo(const std::string& text, HardwareInfo* out) {
  std::istringstream in(text);
  std::string line, key, value;
  int logical = 0;
  std::string physical_id;
  std::set<std::pair<std::string, std::string>> cores;
  bool have_core_ids = false;
  while (std::getline(in, line)) {
    if (!split_line(line, &key, &value)) continue;
    if (key == "processor") {
      ++logical;
      physical_id.clear();
    } else if (key == "model name" && out->cpu_model.empty()) {
      out->cpu_model = value;
    } else if (key == "physical id") {
      physical_id = value;
    } else if (key == "core id") {
      have_core_ids = true;
      cores.insert({physical_id, value});
    }
  }
  out->logical_cores = logical;
  out->physical_cores = have_core_ids ? static_cast<int>(cores.size()) : logical;
}

void parse_meminfo(const std::string& text, HardwareInfo* out) {
  std::istringstream in(text);
  std::string line, key, value;
  while (std::getline(in, line)) {
    if (!split_line(line, &key, &value)) continue;
    uint64_t* dst = key == "MemTotal" ? &out->mem_total_bytes : key == "MemAvailable" ? &out->mem_available_bytes : nullptr;
    if (!dst) continue;
    unsigned long long n = 0;
    char unit[8] = {0};
    int got = std::sscanf(value.c_str(), "%llu %7s", &n, unit);
    if (got >= 1) *dst = static_cast<uint64_t>(n) * (got == 2 && std::string(unit) == "kB" ? 1024 : 1);
  }
}

void detect_memory(HardwareInfo* out, const std::string& proc_root) {
  parse_meminfo(read_file(proc_root + "/meminfo"), out);
}

HardwareInfo detect_hardware(const std::string& proc_root, const std::string& sys_root) {
  HardwareInfo h;
  parse_cpuinfo(read_file(proc_root + "/cpuinfo"), &h);
  parse_meminfo(read_file(proc_root + "/meminfo"), &h);
  h.simd = detect_simd();
#if defined(__x86_64__) || defined(__i386__)
  if (h.cpu_model.empty()) {  // brand string from cpuid 0x80000002..4
    unsigned regs[12] = {0};
    if (static_cast<unsigned>(__get_cpuid_max(0x80000000, nullptr)) >= 0x80000004u) {
      for (unsigned i = 0; i < 3; ++i)
        __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
      h.cpu_model = trim(std::string(reinterpret_cast<const char*>(regs), sizeof(regs)).c_str());
    }
  }
#endif
  const std::string node_dir = sys_root + "/devices/system/node";
  if (DIR* d = opendir(node_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("node", 0) != 0 || name.size() == 4 ||
          name.find_first_not_of("0123456789", 4) != std::string::npos)
        continue;
      NumaNode n;
      n.id = std::stoi(name.substr(4));
      n.cpus = trim(read_file(node_dir + "/" + name + "/cpulist"));
      // "Node 0 MemTotal:       16305540 kB"
      std::istringstream in(read_file(node_dir + "/" + name + "/meminfo"));
      std::string line;
      while (std::getline(in, line)) {
        size_t at = line.find("MemTotal:");
        if (at == std::string::npos) continue;
        HardwareInfo tmp;
        parse_meminfo(line.substr(at), &tmp);
        n.mem_total_bytes = tmp.mem_total_bytes;
      }
      h.numa_nodes.push_back(n);
    }
    closedir(d);
    std::sort(h.numa_nodes.begin(), h.numa_nodes.end(), [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  }
  return h;
}

nlohmann::json HardwareInfo::to_json() const {
  nlohmann::json nodes = nlohmann::json::array();
  for (const NumaNode& n : numa_nodes) nodes.push_back({{"id", n.id}, {"cpus", n.cpus}, {"mem_total_bytes", n.mem_total_bytes}});
  return {{"cpu_model", cpu_model},
          {"logical_cores", logical_cores},
          {"physical_cores", physical_cores},
          {"simd", simd.names()},
          {"mem_total_bytes", mem_total_bytes},
          {"mem_available_bytes", mem_available_bytes},
          {"numa_nodes", nodes}};
}

HardwareInfo HardwareInfo::from_json(const nlohmann::json& j) {
  HardwareInfo h;
  if (!j.is_object()) return h;
  h.cpu_model = j.value("cpu_model", "");
  h.logical_cores = j.value("logical_cores", 0);
  h.physical_cores = j.value("physical_cores", 0);
  h.mem_total_bytes = j.value("mem_total_bytes", uint64_t{0});
  h.mem_available_bytes = j.value("mem_available_bytes", uint64_t{0});
  if (j.contains("simd") && j["simd"].is_array())
    for (const auto& s : j["simd"]) {
      if (!s.is_string()) continue;
      const std::string n = s.get<std::string>();
      SimdFeatures& f = h.simd;
      bool* flag = n == "avx2" ? &f.avx2 : n == "fma" ? &f.fma : n == "avx512f" ? &f.avx512f
                 : n == "avx512_vnni" ? &f.avx512_vnni : n == "avx512_bf16" ? &f.avx512_bf16
                 : n == "avx_vnni" ? &f.avx_vnni : n == "amx_bf16" ? &f.amx_bf16 : n == "amx_int8" ? &f.amx_int8 : nullptr;
      if (flag) *flag = true;
    }
  if (j.contains("numa_nodes") && j["numa_nodes"].is_array())
    for (const auto& n : j["numa_nodes"])
      if (n.is_object())
        h.numa_nodes.push_back({n.value("id", 0), n.value("cpus", ""), n.value("mem_total_bytes", uint64_t{0})});
  return h;
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string format_hardware_table(const HardwareInfo& h) {
  std::string simd;
  for (const std::string& n : h.simd.names()) simd += (simd.empty() ? "" : " ") + n;
  std::string numa;
  for (const NumaNode& n : h.numa_nodes)
    numa += (numa.empty() ? "" : "; ") + ("node" + std::to_string(n.id)) + " cpus " + n.cpus + ", " +
            format_bytes(n.mem_total_bytes);
  const std::pair<std::string, std::string> rows[] = {
      {"cpu", h.cpu_model.empty() ? "(unknown)" : h.cpu_model},
      {"cores", std::to_string(h.logical_cores) + " logical, " + std::to_string(h.physical_cores) + " physical"},
      {"simd", simd.empty() ? "(none of avx2/fma/avx512/vnni/bf16/amx)" : simd},
      {"memory", format_bytes(h.mem_total_bytes) + " total, " + format_bytes(h.mem_available_bytes) + " available"},
      {"numa", h.numa_nodes.empty() ? "(no /sys/devices/system/node)"
                                    : std::to_string(h.numa_nodes.size()) + " node(s): " + numa},
  };
  std::string out;
  for (const auto& [k, v] : rows) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%-8s", k.c_str());
    out += buf + v + "\n";
  }
  return out;
}

}  // namespace fleet
