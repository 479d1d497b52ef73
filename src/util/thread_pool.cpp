// ThreadPool: one job at a time, published through a generation counter. Workers spin on the
// counter for a short while after each job (decode issues ~100 jobs per token, and waking a
// sleeping thread costs tens of microseconds) and then block on a condition variable so an
// idle engine does not burn the machine.
#include "engram/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "engram/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ENGRAM_CPU_RELAX() _mm_pause()
#else
#define ENGRAM_CPU_RELAX() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace engram {

namespace {
// About 100 us of pause instructions on current x86 cores: long enough to bridge the gap
// between back-to-back kernel launches, short enough not to matter when idle.
constexpr int kSpinIterations = 2000;
}  // namespace

struct ThreadPool::State {
  std::vector<std::thread> workers;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};  // workers still running the current job
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> busy{false};  // a job is in flight (guards nested/concurrent run())
  const std::function<void(int, int)>* job = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::mutex error_mu;
  std::exception_ptr error;

  void record_error(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (!error) error = e;
  }

  void worker_loop(int ith, int nth) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t gen = generation.load(std::memory_order_acquire);
      for (int i = 0; gen == seen && i < kSpinIterations; ++i) {
        ENGRAM_CPU_RELAX();
        gen = generation.load(std::memory_order_acquire);
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mu);
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        cv.wait(lock, [&] {
          return generation.load(std::memory_order_seq_cst) != seen ||
                 stop.load(std::memory_order_seq_cst);
        });
        sleepers.fetch_sub(1, std::memory_order_relaxed);
        gen = generation.load(std::memory_order_acquire);
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = gen;
      try {
        (*job)(ith, nth);
      } catch (...) {
        record_error(std::current_exception());
      }
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads), state_(std::make_unique<State>()) {
  if (n_threads < 1 || n_threads > 1024) {
    throw Error("thread pool: n_threads = " + std::to_string(n_threads) +
                " is out of range [1, 1024]");
  }
  state_->workers.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) {
    state_->workers.emplace_back(
        [s = state_.get(), i, n_threads] { s->worker_loop(i, n_threads); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop.store(true, std::memory_order_seq_cst);
  }
  state_->cv.notify_all();
  for (auto& t : state_->workers) t.join();
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  State& s = *state_;
  const int nth = n_threads_;
  // Single thread, or a job launched from inside a job (or from a second caller thread): run
  // every share inline, in order. Correct, just not parallel.
  if (nth == 1 || s.busy.exchange(true, std::memory_order_acquire)) {
    for (int i = 0; i < nth; ++i) fn(i, nth);
    return;
  }
  s.job = &fn;
  s.error = nullptr;
  s.pending.store(nth - 1, std::memory_order_relaxed);
  s.generation.fetch_add(1, std::memory_order_seq_cst);
  // Dekker-style pairing with the worker's sleepers++ / generation check: either we see it
  // asleep and notify (under the mutex, so it cannot miss it) or it sees the new generation.
  if (s.sleepers.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.cv.notify_all();
  }
  try {
    fn(0, nth);
  } catch (...) {
    s.record_error(std::current_exception());
  }
  for (int i = 0; s.pending.load(std::memory_order_acquire) > 0; ++i) {
    if (i < kSpinIterations) {
      ENGRAM_CPU_RELAX();
    } else {
      std::this_thread::yield();  // an oversubscribed machine: let the straggler run
    }
  }
  std::exception_ptr err = s.error;
  s.error = nullptr;
  s.job = nullptr;
  s.busy.store(false, std::memory_order_release);
  if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t n_grains = (n + grain - 1) / grain;
  if (n_grains == 1 || n_threads_ == 1) {
    fn(0, n);  // not worth a dispatch
    return;
  }
  const int64_t per_thread = (n_grains + n_threads_ - 1) / n_threads_ * grain;
  run([&](int ith, int) {
    const int64_t begin = ith * per_thread;
    const int64_t end = std::min(n, begin + per_thread);
    if (begin < end) fn(begin, end);
  });
}

void ThreadPool::parallel_for_dynamic(int64_t n, int64_t chunk,
                                      const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  if (n <= chunk || n_threads_ == 1) {
    for (int64_t b = 0; b < n; b += chunk) fn(b, std::min(n, b + chunk));
    return;
  }
  std::atomic<int64_t> next{0};
  run([&](int, int) {
    for (;;) {
      const int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= n) return;
      fn(b, std::min(n, b + chunk));
    }
  });
}

int default_thread_count() {
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(n, 1, 8);
}

}  // namespace engram
