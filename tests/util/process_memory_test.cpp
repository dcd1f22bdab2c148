// util/process_memory: the RSS reader and the allocator policy of long-lived workers.
#include "util/process_memory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace fleet {
namespace {

constexpr size_t kMiB = 1024 * 1024;

TEST(ProcessMemory, ResidentBytesSeesThisProcessAndNotAGoneOne) {
  EXPECT_GT(resident_bytes(), 1 * kMiB);
  EXPECT_EQ(resident_bytes(0x7ffffff0), 0u);  // no such pid
}

// What a worker sees after short-lived Kafka clients: threads allocate (each thread in its own
// arena unless limited), a few blocks stay, the rest is freed. The free pages between the
// survivors stay resident until the allocator is told to give them back.
TEST(ProcessMemory, ReturnFreeMemoryGivesBackTheFreedPagesBetweenLiveBlocks) {
  constexpr int kThreads = 4, kBlocks = 1024;
  constexpr size_t kBlock = 16 * 1024;  // under glibc's mmap threshold: from the arenas' heaps
  std::vector<std::vector<char*>> blocks(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBlocks; ++i) {
        char* p = static_cast<char*>(std::malloc(kBlock));
        std::memset(p, 1, kBlock);  // resident
        blocks[t].push_back(p);
      }
    });
  for (auto& th : threads) th.join();
  const size_t allocated = resident_bytes();
  for (auto& per_thread : blocks)
    for (int i = 0; i < kBlocks; ++i)
      if (i % 64 != 63) {  // every 64th block stays: the heaps cannot shrink from the top
        std::free(per_thread[i]);
        per_thread[i] = nullptr;
      }
  return_free_memory();
  const size_t trimmed = resident_bytes();
  const size_t freed = kThreads * kBlocks * kBlock * 63 / 64;  // 63 MiB
  EXPECT_LT(trimmed + freed / 2, allocated) << "RSS " << allocated / kMiB << " MiB with the blocks, "
                                            << trimmed / kMiB << " MiB after freeing 63 MiB of them and trimming";
  for (auto& per_thread : blocks)
    for (char* p : per_thread) std::free(p);
}

}  // namespace
}  // namespace fleet
