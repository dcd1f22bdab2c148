#include "util/process_memory.h"

#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace fleet {

size_t resident_bytes(int pid) {
  const std::string path = pid ? "/proc/" + std::to_string(pid) + "/status" : "/proc/self/status";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      std::sscanf(line + 6, "%zu", &kb);
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

void limit_allocator_arenas() { mallopt(M_ARENA_MAX, 2); }

void return_free_memory() { malloc_trim(0); }

}  // namespace fleet
