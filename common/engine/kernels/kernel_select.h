#pragma once
// The kernel variant this process runs. One binary carries every variant (kernels_scalar.cpp,
// kernels_avx2.cpp, kernels_avx512.cpp, each compiled for its own instruction set); the best
// one the CPU supports is chosen at first use, or the one the environment variable
// FLEET_KERNELS names (scalar | avx2 | avx512; an unknown name or one this CPU cannot run is a
// clear error). All variants compute bit-identical results.
#include <string>
#include <vector>

#include "engine/kernels/kernel_types.h"

namespace fleet::kernels {

std::vector<std::string> kernel_variants();            // compiled in: scalar, avx2, avx512
std::vector<std::string> supported_kernel_variants();  // of those, what this CPU runs
const KernelTable& active_kernels();                   // throws for a bad FLEET_KERNELS
void use_kernels(const std::string& name);             // switch (tests, fleet generate); throws likewise

}  // namespace fleet::kernels
