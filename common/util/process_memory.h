#pragma once
#include <cstddef>

namespace fleet {
// Resident set size in bytes from /proc/<pid>/status (VmRSS): of this process when pid is 0;
// 0 when the process is gone.
size_t resident_bytes(int pid = 0);

// glibc's allocator, set for a long-lived worker whose Kafka clients come and go (a transactional
// producer per owned partition, a consumer per results-topic check: a few threads each). glibc
// gives threads up to 8 arenas per core, and the short-lived threads leave each arena's heap
// fragmented: measured on a last-stage worker, 8 replica join/kill cycles took RSS from 27 to 35
// MiB (12 cycles: 47 MiB) while the heap in use stayed under 5 MiB (heaptrack). Two arenas and a
// trim after each revocation kept 10 cycles at 26.7-31.5 MiB (bench/churn-rss). Call once, before
// any thread starts.
void limit_allocator_arenas();
// Gives the allocator's free pages back to the system (malloc_trim): after a burst of short-lived
// clients, and every few seconds for what the Kafka clients' fetch buffers left free (0.26 ms on a
// last-stage worker, docs/measurements.md).
void return_free_memory();
}  // namespace fleet
