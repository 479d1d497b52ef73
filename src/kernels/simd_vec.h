// One float vector type for the kernels compiled both for AVX2 and for AVX-512
// (tiled_attention_simd_impl.h, ops_avx2.cpp): Vec is __m512 when the file is compiled with
// AVX-512, else __m256, with the few operations the kernels need and exp for softmax arguments.
#pragma once

#include <immintrin.h>

namespace engram {
namespace {

#if defined(__AVX512F__)
constexpr int kW = 16;
using Vec = __m512;
using Mask = __mmask16;
inline Vec load(const float* p) {
  return _mm512_loadu_ps(p);
}
inline void store(float* p, Vec v) {
  _mm512_storeu_ps(p, v);
}
inline Vec set1(float x) {
  return _mm512_set1_ps(x);
}
inline Vec zero() {
  return _mm512_setzero_ps();
}
inline Vec fmadd(Vec a, Vec b, Vec c) {
  return _mm512_fmadd_ps(a, b, c);
}
inline Vec fnmadd(Vec a, Vec b, Vec c) {
  return _mm512_fnmadd_ps(a, b, c);
}
inline Vec mul(Vec a, Vec b) {
  return _mm512_mul_ps(a, b);
}
inline Vec add(Vec a, Vec b) {
  return _mm512_add_ps(a, b);
}
inline Vec sub(Vec a, Vec b) {
  return _mm512_sub_ps(a, b);
}
inline Vec vmax(Vec a, Vec b) {
  return _mm512_max_ps(a, b);
}
inline Mask less(Vec a, Vec b) {
  return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
}
inline Vec select(Mask m, Vec a, Vec b) {
  return _mm512_mask_blend_ps(m, b, a);
}  // m ? a : b
inline Vec round_nearest(Vec x) {
  return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline Vec pow2_times(Vec p, Vec n) {  // p * 2^n for integral n
  const __m512i e =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}
#else
constexpr int kW = 8;
using Vec = __m256;
using Mask = __m256;
inline Vec load(const float* p) {
  return _mm256_loadu_ps(p);
}
inline void store(float* p, Vec v) {
  _mm256_storeu_ps(p, v);
}
inline Vec set1(float x) {
  return _mm256_set1_ps(x);
}
inline Vec zero() {
  return _mm256_setzero_ps();
}
inline Vec fmadd(Vec a, Vec b, Vec c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline Vec fnmadd(Vec a, Vec b, Vec c) {
  return _mm256_fnmadd_ps(a, b, c);
}
inline Vec mul(Vec a, Vec b) {
  return _mm256_mul_ps(a, b);
}
inline Vec add(Vec a, Vec b) {
  return _mm256_add_ps(a, b);
}
inline Vec sub(Vec a, Vec b) {
  return _mm256_sub_ps(a, b);
}
inline Vec vmax(Vec a, Vec b) {
  return _mm256_max_ps(a, b);
}
inline Mask less(Vec a, Vec b) {
  return _mm256_cmp_ps(a, b, _CMP_LT_OQ);
}
inline Vec select(Mask m, Vec a, Vec b) {
  return _mm256_blendv_ps(b, a, m);
}  // m ? a : b
inline Vec round_nearest(Vec x) {
  return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline Vec pow2_times(Vec p, Vec n) {
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

// exp(x) for x <= 0 (softmax arguments): 2^n p(r), r = x - n ln2, degree-6 polynomial,
// relative error about 2e-7; below -87 the result is 0.
inline Vec exp_neg(Vec x) {
  const Vec lo = set1(-87.0f);
  const Mask underflow = less(x, lo);
  x = vmax(x, lo);
  const Vec n = round_nearest(mul(x, set1(1.44269504088896341f)));
  Vec r = fnmadd(n, set1(0.693145751953125f), x);
  r = fnmadd(n, set1(1.428606820309417232e-06f), r);
  Vec p = set1(1.0f / 720.0f);
  p = fmadd(p, r, set1(1.0f / 120.0f));
  p = fmadd(p, r, set1(1.0f / 24.0f));
  p = fmadd(p, r, set1(1.0f / 6.0f));
  p = fmadd(p, r, set1(0.5f));
  p = fmadd(p, r, set1(1.0f));
  p = fmadd(p, r, set1(1.0f));
  return select(underflow, zero(), pow2_times(p, n));
}

}  // namespace
}  // namespace engram
