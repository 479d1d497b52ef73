// KeyMatrix storage, the portable key_scores() and the run-time choice of the AVX2 build.
#define ENGRAM_KEY_SCORES_FN key_scores_portable
#include "kernels/key_scores_impl.h"

#include <algorithm>
#include <cmath>

#include "kernels/matmul_internal.h"

namespace engram {

void KeyMatrix::append(const float* key) {
  const int64_t g = rows_ / kGroup, j = rows_ % kGroup;
  if (j == 0) {
    q_.resize(size_t(g + 1) * kGroup * dim_, 0);
    scale_.resize(size_t(g + 1) * kGroup, 0.0f);
  }
  float amax = 0.0f;
  for (int d = 0; d < dim_; ++d) amax = std::max(amax, std::fabs(key[d]));
  const float scale = amax / 127.0f;
  const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
  int8_t* w = q_.data() + g * int64_t{kGroup} * dim_;
  for (int d = 0; d < dim_; ++d) {
    w[int64_t{d} * kGroup + j] = static_cast<int8_t>(std::lround(key[d] * inv));
  }
  scale_[size_t(rows_)] = scale;
  ++rows_;
}

void KeyMatrix::clear() {
  rows_ = 0;
  q_.clear();
  scale_.clear();
}

void KeyMatrix::row(int64_t r, float* out) const {
  const int8_t* w = group_data(r / kGroup);
  const float s = scale_[size_t(r)];
  for (int d = 0; d < dim_; ++d) out[d] = s * w[int64_t{d} * kGroup + r % kGroup];
}

void key_scores(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                float* out) {
  static const bool avx2 = isa_available(Isa::Avx2);
  (avx2 ? key_scores_avx2 : key_scores_portable)(k, queries, n_q, g0, g1, out);
}

void key_scores_reference(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                          float* out) {
  const int dim = k.dim();
  const int64_t width = (g1 - g0) * KeyMatrix::kGroup;
  std::vector<float> key(dim);
  for (int64_t c = 0; c < width; ++c) {
    const int64_t r = g0 * KeyMatrix::kGroup + c;
    if (r < k.rows()) {
      k.row(r, key.data());
    } else {
      std::fill(key.begin(), key.end(), 0.0f);
    }
    for (int i = 0; i < n_q; ++i) {
      double acc = 0;
      for (int d = 0; d < dim; ++d) acc += double(queries[int64_t{i} * dim + d]) * key[d];
      out[int64_t{i} * width + c] = static_cast<float>(acc);
    }
  }
}

}  // namespace engram
