// The body of key_scores(), compiled twice: by key_scores.cpp for any x86-64 and by
// key_scores_avx2.cpp with AVX2/FMA (the compiler vectorizes the 16-wide inner loops). Include
// only from those files, after defining ENGRAM_KEY_SCORES_FN.
#include "kernels/key_scores.h"

namespace engram {

void ENGRAM_KEY_SCORES_FN(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                          float* out) {
  constexpr int G = KeyMatrix::kGroup;
  const int dim = k.dim();
  const int64_t width = (g1 - g0) * G;
  for (int64_t g = g0; g < g1; ++g) {
    const int8_t* w = k.group_data(g);
    const float* sc = k.group_scales(g);
    // Two queries at a time share each converted weight row.
    int i = 0;
    for (; i + 2 <= n_q; i += 2) {
      const float* qa = queries + int64_t{i} * dim;
      const float* qb = qa + dim;
      float a[G] = {}, b[G] = {};
      for (int d = 0; d < dim; ++d) {
        const int8_t* row = w + int64_t{d} * G;
        for (int j = 0; j < G; ++j) {
          const float x = static_cast<float>(row[j]);
          a[j] += qa[d] * x;
          b[j] += qb[d] * x;
        }
      }
      float* oa = out + int64_t{i} * width + (g - g0) * G;
      float* ob = oa + width;
      for (int j = 0; j < G; ++j) {
        oa[j] = a[j] * sc[j];
        ob[j] = b[j] * sc[j];
      }
    }
    for (; i < n_q; ++i) {
      const float* qa = queries + int64_t{i} * dim;
      float a[G] = {};
      for (int d = 0; d < dim; ++d) {
        const int8_t* row = w + int64_t{d} * G;
        for (int j = 0; j < G; ++j) a[j] += qa[d] * static_cast<float>(row[j]);
      }
      float* oa = out + int64_t{i} * width + (g - g0) * G;
      for (int j = 0; j < G; ++j) oa[j] = a[j] * sc[j];
    }
  }
}

}  // namespace engram
