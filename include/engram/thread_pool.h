// A fixed pool of worker threads for data-parallel kernels. The calling thread takes part in
// every job, so a pool of size 1 runs everything inline. Workers spin briefly between jobs
// (decode issues hundreds of small jobs per token) and then sleep.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace engram {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(ith, nth) once on each of the nth = size() threads; returns when all finished.
  // An exception thrown by fn is rethrown here (the first one).
  void run(const std::function<void(int ith, int nth)>& fn);

  // Splits [0, n) into contiguous ranges, one per thread, each a multiple of `grain`
  // (except the last), and calls fn(begin, end) on each non-empty range.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Splits [0, n) into ranges of `chunk` (the last may be shorter) that the threads take
  // from a shared counter until none are left: a thread that the OS preempts does not hold
  // up the others (use when the machine may be shared). Each range is run exactly once.
  void parallel_for_dynamic(int64_t n, int64_t chunk,
                            const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct State;
  int n_threads_;
  std::unique_ptr<State> state_;
};

// Number of threads to use by default: the machine's cores, at most 8.
int default_thread_count();

}  // namespace engram
