// Vector primitives behind ops.cpp's attention, with a scalar and an AVX2/FMA version
// (chosen at run time; tests force either).
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace engram {

struct VecKernels {
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float* y, float a, const float* x, int64_t n);  // y += a * x
  // x[i] = exp(x[i] - max), returns the sum of the results.
  float (*exp_sum)(float* x, int64_t n, float max);
  // s[h * n + j] = scale * q_h . k_j for nh query heads q_h = q + h * hd and n keys
  // k_j = k + j * k_stride.  s: [nh, n]
  void (*scores)(const float* q, int nh, int hd, const float* k, int64_t k_stride, int64_t n,
                 float scale, float* s);
  // out_h = sum_j p[h * n + j] * v_j (overwrites out: [nh, hd]).
  void (*weighted_sum)(float* out, const float* p, int nh, int hd, const float* v, int64_t v_stride,
                       int64_t n);
  // out[i] = silu(gate[i]) * up[i]
  void (*silu_mul)(float* out, const float* gate, const float* up, int64_t n);
  // max(x) + log(sum_j exp(x[j] - max(x))) over n >= 1 values: a softmax's log normaliser.
  float (*log_sum_exp)(const float* x, int64_t n);
};

const VecKernels& vec_kernels_scalar();
const VecKernels& vec_kernels_avx2();  // only after isa_available(Isa::Avx2)

// attention() with the given primitives.
void attention_with(const VecKernels& vk, const AttentionArgs& a, ThreadPool& pool);

}  // namespace engram
