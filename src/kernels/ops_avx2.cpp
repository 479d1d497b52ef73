// AVX2/FMA versions of the attention vector primitives (see ops_internal.h).
#include <immintrin.h>

#include <cmath>

#include "kernels/ops_internal.h"
#include "kernels/simd_vec.h"  // exp_neg

namespace engram {
namespace {

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8)
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// silu(g) = g * sigmoid(g), with e = exp(-|g|) <= 1 so exp_neg covers both signs:
// sigmoid(g) = 1 / (1 + e) for g >= 0 and e / (1 + e) below.
void silu_mul_simd(float* out, const float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_neg(_mm256_or_ps(g, sign));  // exp(-|g|)
    const __m256 num = _mm256_blendv_ps(one, e, g);   // sign bit of g picks e
    const __m256 sig = _mm256_div_ps(num, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, sig), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float exp_sum(float* x, int64_t n, float max) {
  const __m256 vm = _mm256_set1_ps(max);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float s = hsum(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    s += x[i];
  }
  return s;
}

float log_sum_exp_simd(const float* x, int64_t n) {
  int64_t i = 0;
  float max = x[0];
  if (n >= 8) {
    __m256 vmax = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    const __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    max = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps(m2, m2, 1)));
  }
  for (; i < n; ++i) max = std::max(max, x[i]);
  // Two accumulators: the adds do not wait on each other.
  const __m256 vm = _mm256_set1_ps(max);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_add_ps(acc0, exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
    acc1 = _mm256_add_ps(acc1, exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm)));
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_add_ps(acc0, exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm)));
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += std::exp(x[i] - max);
  return max + std::log(sum);
}

// The four horizontal sums of a0..a3, as one vector.
__m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

void scores(const float* q, int nh, int hd, const float* k, int64_t k_stride, int64_t n,
            float scale, float* s) {
  const int hd8 = hd / 8 * 8;
  const __m128 vscale = _mm_set1_ps(scale);
  for (int h = 0; h < nh; ++h) {
    const float* qh = q + int64_t{h} * hd;
    float* sh = s + int64_t{h} * n;
    int64_t j = 0;
    // Four keys at a time share one horizontal reduction.
    for (; j + 4 <= n; j += 4) {
      const float* k0 = k + j * k_stride;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int d = 0; d < hd8; d += 8) {
        const __m256 qv = _mm256_loadu_ps(qh + d);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + k_stride + d), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * k_stride + d), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * k_stride + d), a3);
      }
      __m128 r = hsum4(a0, a1, a2, a3);
      if (hd8 < hd) {
        alignas(16) float tail[4] = {};
        for (int t = 0; t < 4; ++t) {
          for (int d = hd8; d < hd; ++d) tail[t] += qh[d] * k0[t * k_stride + d];
        }
        r = _mm_add_ps(r, _mm_load_ps(tail));
      }
      _mm_storeu_ps(sh + j, _mm_mul_ps(r, vscale));
    }
    for (; j < n; ++j) sh[j] = dot(qh, k + j * k_stride, hd) * scale;
  }
}

}  // namespace

const VecKernels& vec_kernels_avx2() {
  static const VecKernels k = {exp_sum, scores, silu_mul_simd, log_sum_exp_simd};
  return k;
}

}  // namespace engram
