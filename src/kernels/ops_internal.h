// Vector primitives of ops.cpp and of the attention probabilities, with a scalar and an
// AVX2/FMA version (chosen at run time; tests force either).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"

namespace engram {

struct VecKernels {
  // x[i] = exp(x[i] - max), returns the sum of the results.
  float (*exp_sum)(float* x, int64_t n, float max);
  // s[h * n + j] = scale * q_h . k_j for nh query heads q_h = q + h * hd and n keys
  // k_j = k + j * k_stride.  s: [nh, n]
  void (*scores)(const float* q, int nh, int hd, const float* k, int64_t k_stride, int64_t n,
                 float scale, float* s);
  // out[i] = silu(gate[i]) * up[i]
  void (*silu_mul)(float* out, const float* gate, const float* up, int64_t n);
  // max(x) + log(sum_j exp(x[j] - max(x))) over n >= 1 values: a softmax's log normaliser.
  float (*log_sum_exp)(const float* x, int64_t n);
};

const VecKernels& vec_kernels_scalar();
const VecKernels& vec_kernels_avx2();  // only after isa_available(Isa::Avx2)

// Throws engram::Error naming the bad shape or stride of an attention call.
void check_attention_args(const AttentionArgs& a);

// Keys visible to query i (causal inside the block, see ops.h).
inline int64_t visible_keys(const AttentionArgs& a, int64_t i) {
  return std::clamp<int64_t>(a.n_kv - a.n_q + i + 1, 0, a.n_kv);
}

}  // namespace engram
