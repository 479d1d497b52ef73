// KeyMatrix storage, the portable key_scores() and the run-time choice of the AVX2 build.
#define ENGRAM_KEY_SCORES_FN key_scores_portable
#include "kernels/key_scores_impl.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "kernels/matmul_internal.h"
#include "util/record_io.h"

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

void KeyMatrix::save(RecordWriter& out) const {
  out.put<int64_t>(rows_);
  out.vec(q_);
  out.vec(scale_);
}

void KeyMatrix::load(RecordReader& in, int64_t rows) {
  const int64_t n = in.get<int64_t>("key rows");
  if (n != rows) in.fail("key rows", fmt::format("{} keys, expected {}", n, rows));
  const uint64_t groups = uint64_t((rows + kGroup - 1) / kGroup);
  std::vector<int8_t> q = in.vec<int8_t>("keys", groups * kGroup * dim_);
  std::vector<float> scale = in.vec<float>("key scales", groups * kGroup);
  if (q.size() != groups * kGroup * dim_ || scale.size() != groups * kGroup) {
    in.fail("keys", fmt::format("{} bytes and {} scales for {} keys of {} dims", q.size(),
                                scale.size(), rows, dim_));
  }
  rows_ = rows;
  q_ = std::move(q);
  scale_ = std::move(scale);
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
