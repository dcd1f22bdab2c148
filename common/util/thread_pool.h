#pragma once
// A fixed pool of worker threads for data-parallel loops. parallel_for splits [0, n) into one
// contiguous range per thread; kernels must produce results that do not depend on the split
// (each output element is computed by exactly one thread, in a fixed order).
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

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0;
  unsigned long generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace fleet
