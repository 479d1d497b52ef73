#include "util/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>

#include "engram/error.h"
#include "engram/thread_pool.h"
#include "util/cpu_features.h"
#include "util/huge_pages.h"

namespace engram {
namespace {

// Sums 64-byte lines with independent accumulators so loads, not adds, are the limit.
__attribute__((target("avx2"))) uint64_t read_avx2(const uint64_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a0);
  uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) s += p[i];
  return s;
}

uint64_t read_scalar(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int reps) {
  // Backed like the packed weights decode streams, so the probe and decode see the same TLB.
  std::unique_ptr<uint64_t, decltype(&std::free)> storage(
      static_cast<uint64_t*>(allocate_huge_page_backed(bytes)), &std::free);
  if (!storage) throw Error("bench: out of memory allocating the bandwidth probe's buffer");
  uint64_t* buf = storage.get();
  const size_t len = bytes / sizeof(uint64_t);
  // Touch every page first (parallel, so pages spread like the measurement's reads).
  pool.parallel_for(int64_t(len), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) buf[i] = uint64_t(i);
  });
  const bool avx2 = cpu_features().avx2;
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(int64_t(len), 4096, [&](int64_t b, int64_t e) {
      uint64_t s = avx2 ? read_avx2(buf + b, size_t(e - b)) : read_scalar(buf + b, size_t(e - b));
      sink.fetch_add(s, std::memory_order_relaxed);
    });
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(len * sizeof(uint64_t)) / dt);
  }
  return best;
}

}  // namespace engram
