#pragma once
#include <cstddef>

namespace fleet {
// Resident set size of this process in bytes, from /proc/self/status (VmRSS).
size_t resident_bytes();
}  // namespace fleet
