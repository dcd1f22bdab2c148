// fleet detect [--json]: this machine's CPU model, cores, SIMD features, memory and NUMA nodes
// (common/hardware/hardware.h), and the kernel variant this machine runs (engine/kernels/); stage
// workers register the same facts in their membership entry.
#include <cstdio>

#include "commands.h"
#include "engine/kernels/kernel_select.h"
#include "hardware/hardware.h"

namespace fleet::cmd {

void add_detect(CLI::App& app) {
  auto* sub = app.add_subcommand("detect", "this machine's CPU, cores, SIMD features, memory and NUMA nodes");
  auto json = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "one JSON object instead of the table");
  sub->callback([json] {
    HardwareInfo h = detect_hardware();
    const std::string kernels = kernels::active_kernels().name;  // throws for a bad FLEET_KERNELS
    std::string runs;
    for (const std::string& v : kernels::supported_kernel_variants()) runs += (runs.empty() ? "" : ", ") + v;
    if (*json) {
      nlohmann::json j = h.to_json();
      j["kernels"] = kernels;
      j["kernel_variants"] = kernels::supported_kernel_variants();
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::fputs(format_hardware_table(h).c_str(), stdout);
      std::printf("%-6s  %s (this CPU runs: %s; FLEET_KERNELS=scalar|avx2|avx512 forces one)\n", "kernels",
                  kernels.c_str(), runs.c_str());
    }
  });
}

}  // namespace fleet::cmd
