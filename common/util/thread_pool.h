#pragma once
// A fixed pool of worker threads for data-parallel loops. parallel_for splits [0, n) into one
// contiguous range per thread; kernels must produce results that do not depend on the split
// (each output element is computed by exactly one thread, in a fixed order).
//
// A token of a small model runs ~200 matmuls of a few microseconds each, so the hand-off must
// cost far less than that: idle workers spin on an atomic generation counter for a short while
// (kSpinMicros) before they sleep on a condition variable, and the caller spins for the
// workers' shares to finish. Between bursts (a worker waiting for its next batch) the threads
// sleep, so an idle pool costs no CPU.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fleet {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads = 0);  // 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) is called on disjoint ranges covering [0, n); returns when all are done.
  // `work` estimates the total cost (e.g. multiply-adds): below a threshold the loop runs on
  // the calling thread, since waking the workers would cost more than it saves.
  void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, double work = 1e12);

  static constexpr int kSpinMicros = 300;  // how long an idle worker polls before it sleeps

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;  // published by generation_
  size_t job_n_ = 0;
  std::atomic<unsigned long> generation_{0};
  std::atomic<int> pending_{0};   // workers still running the current job
  std::atomic<int> sleepers_{0};  // workers blocked on wake_cv_
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_cv_;
};

}  // namespace fleet
