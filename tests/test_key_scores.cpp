// The int8 key matrix memory policies score: storage (quantization, grouping) and both builds
// of key_scores() against the double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/key_scores.h"
#include "kernels/matmul_internal.h"
#include "random_vectors.h"

namespace engram {
namespace {

using testing_util::randn;

TEST(KeyScores, StoredKeysAreWithinHalfAStepOfTheOriginals) {
  std::mt19937 rng(1);
  for (int dim : {1, 12, 32, 64}) {
    KeyMatrix k(dim);
    const auto keys = randn(size_t(37) * dim, rng, 3.0f);
    for (int r = 0; r < 37; ++r) k.append(&keys[size_t(r) * dim]);
    ASSERT_EQ(k.rows(), 37);
    std::vector<float> back(dim);
    for (int r = 0; r < 37; ++r) {
      k.row(r, back.data());
      float amax = 0;
      for (int d = 0; d < dim; ++d) amax = std::max(amax, std::fabs(keys[size_t(r) * dim + d]));
      for (int d = 0; d < dim; ++d) {
        EXPECT_LE(std::fabs(back[d] - keys[size_t(r) * dim + d]), amax / 127.0f * 0.5001f)
            << "dim " << dim << " row " << r << " d " << d;
      }
    }
  }
  KeyMatrix zero(8);
  const std::vector<float> z(8, 0.0f);
  zero.append(z.data());
  std::vector<float> back(8, 1.0f);
  zero.row(0, back.data());
  for (float x : back) EXPECT_EQ(x, 0.0f);
}

TEST(KeyScores, EveryBuildMatchesTheReference) {
  std::mt19937 rng(2);
  using Fn = void (*)(const KeyMatrix&, const float*, int, int64_t, int64_t, float*);
  std::vector<Fn> builds = {key_scores_portable, key_scores};
  if (isa_available(Isa::Avx2)) builds.push_back(key_scores_avx2);
  for (int dim : {12, 32, 64}) {
    for (int rows : {1, 15, 16, 17, 100}) {
      for (int n_q : {1, 2, 3, 5}) {
        KeyMatrix k(dim);
        const auto keys = randn(size_t(rows) * dim, rng);
        for (int r = 0; r < rows; ++r) k.append(&keys[size_t(r) * dim]);
        const auto q = randn(size_t(n_q) * dim, rng);
        const int64_t groups = (rows + KeyMatrix::kGroup - 1) / KeyMatrix::kGroup;
        const size_t width = size_t(groups) * KeyMatrix::kGroup;
        std::vector<float> want(size_t(n_q) * width), got(want.size());
        key_scores_reference(k, q.data(), n_q, 0, groups, want.data());
        for (Fn fn : builds) {
          std::fill(got.begin(), got.end(), -99.0f);
          fn(k, q.data(), n_q, 0, groups, got.data());
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i])))
                << "dim " << dim << " rows " << rows << " n_q " << n_q << " at " << i;
          }
          // Padding rows of the last group score exactly 0.
          for (int i = 0; i < n_q; ++i) {
            for (size_t c = rows; c < width; ++c) ASSERT_EQ(got[i * width + c], 0.0f);
          }
          // A range of groups gives the same values as those columns of the whole.
          if (groups >= 3) {
            std::vector<float> part(size_t(n_q) * KeyMatrix::kGroup * 2);
            fn(k, q.data(), n_q, 1, 3, part.data());
            for (int i = 0; i < n_q; ++i) {
              for (int c = 0; c < 2 * KeyMatrix::kGroup; ++c) {
                ASSERT_EQ(part[size_t(i) * 2 * KeyMatrix::kGroup + c],
                          got[i * width + KeyMatrix::kGroup + c]);
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace engram
