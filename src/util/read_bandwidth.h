// Measures how fast this machine streams memory into the cores: the ceiling for decode, which
// reads every weight once per token.
#pragma once

#include <cstddef>

namespace engram {

class ThreadPool;

// Best-of-`reps` read bandwidth in bytes/s over a buffer of `bytes` (far larger than the
// caches), all pool threads reading disjoint slices.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int reps = 5);

}  // namespace engram
