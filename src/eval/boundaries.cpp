#include "eval/boundaries.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_set>

#include "engram/error.h"

namespace engram {
namespace {

void check_count(const char* what, int64_t begin, int64_t end, int64_t count) {
  if (count < 0 || end - begin - 1 < count) {
    throw Error(
        fmt::format("{}: {} boundaries do not fit inside ({}, {})", what, count, begin, end));
  }
}

}  // namespace

std::vector<int64_t> fixed_boundaries(int64_t begin, int64_t end, int64_t count) {
  check_count("fixed_boundaries", begin, end, count);
  std::vector<int64_t> out;
  out.reserve(count);
  const double step = double(end - begin) / double(count + 1);
  for (int64_t i = 1; i <= count; ++i) {
    out.push_back(begin + static_cast<int64_t>(std::llround(step * i)));
  }
  return out;
}

std::vector<int64_t> random_boundaries(int64_t begin, int64_t end, int64_t count, uint64_t seed) {
  check_count("random_boundaries", begin, end, count);
  // Floyd's sampling: count distinct values of [begin + 1, end) in count draws.
  std::mt19937_64 rng(seed);
  std::unordered_set<int64_t> chosen;
  const int64_t lo = begin + 1, n = end - lo;
  for (int64_t j = n - count; j < n; ++j) {
    const int64_t t = std::uniform_int_distribution<int64_t>(0, j)(rng);
    chosen.insert(chosen.count(lo + t) ? lo + j : lo + t);
  }
  std::vector<int64_t> out(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

double boundary_recall(std::span<const int64_t> truth, std::span<const int64_t> found, int64_t k) {
  if (truth.empty()) return 0;
  int64_t hits = 0;
  for (int64_t b : truth) {
    // The first found boundary >= b - k is the nearest candidate from the left side of the range.
    auto it = std::lower_bound(found.begin(), found.end(), b - k);
    hits += it != found.end() && *it <= b + k;
  }
  return double(hits) / double(truth.size());
}

std::vector<int> window_labels(std::span<const int64_t> bounds, int64_t w0, int64_t w1) {
  std::vector<int> label;
  label.reserve(size_t(std::max<int64_t>(0, w1 - w0)));
  auto it = std::upper_bound(bounds.begin(), bounds.end(), w0);
  int c = static_cast<int>(it - bounds.begin());
  for (int64_t t = w0; t < w1; ++t) {
    while (it != bounds.end() && *it <= t) {
      ++it;
      ++c;
    }
    label.push_back(c);
  }
  return label;
}

}  // namespace engram
