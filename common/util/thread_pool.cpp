#include "util/thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FLEET_CPU_RELAX() _mm_pause()
#else
#define FLEET_CPU_RELAX() std::this_thread::yield()
#endif

namespace fleet {

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

static void run_share(const std::function<void(size_t, size_t)>& fn, size_t n, int index, int parts) {
  size_t begin = n * static_cast<size_t>(index) / static_cast<size_t>(parts);
  size_t end = n * static_cast<size_t>(index + 1) / static_cast<size_t>(parts);
  if (begin < end) fn(begin, end);
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, double work) {
  constexpr double kMinParallelWork = 1 << 17;
  if (workers_.empty() || n < 2 || work < kMinParallelWork) {
    if (n > 0) fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);  // publishes job_ (seq_cst: ordered before the sleepers_ read)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);  // a worker between its check and its wait holds mu_
    wake_cv_.notify_all();
  }
  run_share(fn, n, 0, size());
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) {
      FLEET_CPU_RELAX();
    } else {
      std::this_thread::yield();  // a worker lost its core (a busy machine): let it run
    }
  }
}

void ThreadPool::worker_loop(int index) {
  using Clock = std::chrono::steady_clock;
  unsigned long seen = 0;
  for (;;) {
    // Poll for a new job for kSpinMicros, then sleep until parallel_for or the destructor wakes us.
    const auto deadline = Clock::now() + std::chrono::microseconds(kSpinMicros);
    for (int spins = 0; generation_.load(std::memory_order_acquire) == seen && !stop_.load(); ++spins) {
      FLEET_CPU_RELAX();
      if ((spins & 63) == 63 && Clock::now() > deadline) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        wake_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        break;
      }
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_share(*job_, job_n_, index, size());
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace fleet
