#include "stage/worker_identity.h"

#include <string>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>

namespace fleet {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string make_worker_id(int stage) {
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(std::random_device{}()));
  std::string id = "s";
  id.append(std::to_string(stage)).append("-").append(host_name()).append("-");
  id.append(std::to_string(getpid())).append("-").append(suffix);
  return id;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since_us(int64_t since_us) { return std::max<int64_t>(0, now_us() - since_us) / 1e6; }

}  // namespace fleet
