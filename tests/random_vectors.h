// Random inputs for the kernel and stream tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace engram::testing_util {

// n values drawn from N(0, sd^2).
inline std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& f : v) f = nd(rng);
  return v;
}

// n token ids drawn uniformly from [0, n_vocab).
inline std::vector<int32_t> random_tokens(int n, int n_vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, n_vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

}  // namespace engram::testing_util
