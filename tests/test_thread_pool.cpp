// ThreadPool: coverage of run/parallel_for, exception propagation, reuse, nesting.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engram/error.h"
#include "engram/thread_pool.h"

namespace engram {
namespace {

TEST(ThreadPool, RunCallsEveryThreadIndexOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.size(), n);
    std::vector<std::atomic<int>> hits(n);
    pool.run([&](int ith, int nth) {
      EXPECT_EQ(nth, n);
      hits[ith].fetch_add(1);
    });
    for (int i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "thread " << i << " of " << n;
  }
}

TEST(ThreadPool, ParallelForCoversRangeOnceInGrainMultiples) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 7, 16, 17, 100, 1000}) {
    for (int64_t grain : {1, 4, 16}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        EXPECT_LT(b, e);
        EXPECT_EQ(b % grain, 0) << "range start must be a multiple of the grain";
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPool, ParallelForDynamicCoversRangeOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 15, 16, 17, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for_dynamic(n, 16, [&](int64_t b, int64_t e) {
        EXPECT_EQ(b % 16, 0);
        EXPECT_LE(e - b, 16);
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ThreadPool, ExceptionFromWorkerIsRethrown) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.run([](int ith, int) {
    if (ith == 2) throw Error("worker failed");
  }),
               Error);
  // The pool stays usable afterwards.
  std::atomic<int> count{0};
  pool.run([&](int, int) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 3);
}

TEST(ThreadPool, ExceptionFromCallerIsRethrown) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run([](int ith, int) {
    if (ith == 0) throw std::runtime_error("caller failed");
  }),
               std::runtime_error);
}

TEST(ThreadPool, ManySmallJobs) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int i = 0; i < 5000; ++i) pool.run([&](int ith, int) { sum.fetch_add(ith + 1); });
  EXPECT_EQ(sum.load(), 5000 * 3);
}

TEST(ThreadPool, WorkersWakeAfterSleeping) {
  ThreadPool pool(3);
  std::atomic<int> count{0};
  pool.run([&](int, int) { count.fetch_add(1); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // workers go to sleep
  pool.run([&](int, int) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 6);
}

TEST(ThreadPool, NestedRunDoesNotDeadlock) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.run([&](int, int) { pool.run([&](int, int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 4);
}

TEST(ThreadPool, RejectsBadThreadCount) {
  EXPECT_THROW(ThreadPool(0), Error);
  EXPECT_THROW(ThreadPool(-3), Error);
}

TEST(ThreadPool, DefaultThreadCountIsSane) {
  const int n = default_thread_count();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, 8);
}

}  // namespace
}  // namespace engram
