// Random inputs for the kernel tests.
#pragma once

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

}  // namespace engram::testing_util
