#pragma once
#include <cstddef>

namespace fleet {
// Resident set size in bytes from /proc/<pid>/status (VmRSS): of this process when pid is 0;
// 0 when the process is gone.
size_t resident_bytes(int pid = 0);
}  // namespace fleet
