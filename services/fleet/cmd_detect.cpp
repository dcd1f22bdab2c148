// fleet detect [--json]: this machine's CPU model, cores, SIMD features, memory and NUMA nodes
// (common/hardware/hardware.h); stage workers register the same facts in their membership entry.
#include <cstdio>

#include "commands.h"
#include "hardware/hardware.h"

namespace fleet::cmd {

void add_detect(CLI::App& app) {
  auto* sub = app.add_subcommand("detect", "this machine's CPU, cores, SIMD features, memory and NUMA nodes");
  auto json = std::make_shared<bool>(false);
  sub->add_flag("--json", *json, "one JSON object instead of the table");
  sub->callback([json] {
    HardwareInfo h = detect_hardware();
    if (*json)
      std::printf("%s\n", h.to_json().dump(2).c_str());
    else
      std::fputs(format_hardware_table(h).c_str(), stdout);
  });
}

}  // namespace fleet::cmd
