// Element-wise ops, RoPE and attention (scalar definitions; attention's inner loops go
// through VecKernels so the AVX2 versions can be swapped in).
#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/thread_pool.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops_internal.h"

namespace engram {

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
  double ss = 0.0;  // double: n can be large and the result feeds every layer
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {
// The primitives of the best ISA this CPU runs.
const VecKernels& best_vec_kernels() {
  return isa_available(Isa::Avx2) ? vec_kernels_avx2() : vec_kernels_scalar();
}
}  // namespace

float log_sum_exp(const float* x, int64_t n) {
  if (n <= 0) throw Error("log_sum_exp: n = " + std::to_string(n) + ", need at least one value");
  return best_vec_kernels().log_sum_exp(x, n);
}

void silu_mul(float* out, const float* gate, const float* up, int64_t n) {
  const VecKernels& vk = best_vec_kernels();
  vk.silu_mul(out, gate, up, n);
}

void silu_mul(float* out, const float* gate, const float* up, int64_t n, ThreadPool& pool) {
  const VecKernels& vk = best_vec_kernels();
  // A decode step's few thousand values cost less than waking the other threads.
  constexpr int64_t kGrain = 16384;
  if (n < 2 * kGrain) {
    vk.silu_mul(out, gate, up, n);
    return;
  }
  pool.parallel_for(n, kGrain,
                    [&](int64_t b, int64_t e) { vk.silu_mul(out + b, gate + b, up + b, e - b); });
}

void rope_cache(float* cs, int32_t pos, const RopeParams& p) {
  const int half = p.rope_dim / 2;
  for (int i = 0; i < half; ++i) {
    // Computed in double: positions reach 10^6 and the angle must stay accurate.
    double inv_freq = std::pow(static_cast<double>(p.base), -2.0 * i / p.rope_dim);
    if (p.freq_factors != nullptr) inv_freq /= p.freq_factors[i];
    const double theta = static_cast<double>(pos) * p.freq_scale * inv_freq;
    cs[2 * i] = static_cast<float>(std::cos(theta));
    cs[2 * i + 1] = static_cast<float>(std::sin(theta));
  }
}

void rope_apply(float* x, const float* cs, const RopeParams& p) {
  const int half = p.rope_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int i0 = p.interleaved ? 2 * i : i;
    const int i1 = p.interleaved ? 2 * i + 1 : i + half;
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const float x0 = x[i0], x1 = x[i1];
    x[i0] = x0 * c - x1 * s;
    x[i1] = x0 * s + x1 * c;
  }
}

void rope(float* x, int32_t pos, const RopeParams& p) {
  if (p.rope_dim < 0 || p.rope_dim > p.head_dim || p.rope_dim % 2 != 0) {
    throw Error("rope: rope_dim " + std::to_string(p.rope_dim) +
                " must be even and within head_dim " + std::to_string(p.head_dim));
  }
  std::vector<float> cs(p.rope_dim);
  rope_cache(cs.data(), pos, p);
  rope_apply(x, cs.data(), p);
}

// ---------------------------------------------------------------- attention

namespace {

float dot_scalar(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void silu_mul_scalar(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float log_sum_exp_scalar(const float* x, int64_t n) {
  const float max = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - max);
  return static_cast<float>(max + std::log(sum));
}

float exp_sum_scalar(float* x, int64_t n, float max) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    s += x[i];
  }
  return s;
}

void scores_scalar(const float* q, int nh, int hd, const float* k, int64_t k_stride, int64_t n,
                   float scale, float* s) {
  for (int h = 0; h < nh; ++h) {
    for (int64_t j = 0; j < n; ++j)
      s[h * n + j] = dot_scalar(q + h * hd, k + j * k_stride, hd) * scale;
  }
}

}  // namespace

void check_attention_args(const AttentionArgs& a) {
  if (a.n_q < 0 || a.n_kv < 0 || a.n_head <= 0 || a.n_head_kv <= 0 || a.head_dim <= 0 ||
      a.n_head % a.n_head_kv != 0) {
    throw Error(
        "attention: bad shape n_q=" + std::to_string(a.n_q) + " n_kv=" + std::to_string(a.n_kv) +
        " n_head=" + std::to_string(a.n_head) + " n_head_kv=" + std::to_string(a.n_head_kv) +
        " head_dim=" + std::to_string(a.head_dim) + " (n_head must be a multiple of n_head_kv)");
  }
  if (a.n_kv > 0 && (a.k_stride < int64_t{a.n_head_kv} * a.head_dim ||
                     a.v_stride < int64_t{a.n_head_kv} * a.head_dim)) {
    throw Error("attention: k_stride " + std::to_string(a.k_stride) + " / v_stride " +
                std::to_string(a.v_stride) + " is less than n_head_kv * head_dim = " +
                std::to_string(int64_t{a.n_head_kv} * a.head_dim));
  }
}

const VecKernels& vec_kernels_scalar() {
  static const VecKernels k = {exp_sum_scalar, scores_scalar, silu_mul_scalar, log_sum_exp_scalar};
  return k;
}

void attention_received(const AttentionArgs& a, float* recv, ThreadPool& pool) {
  check_attention_args(a);
  if (!a.probs) throw Error("attention_received: attention() was run without a probs buffer");
  const int64_t rows = int64_t{a.n_q} * a.n_head;
  // Keys in chunks, one thread per chunk: every sum has one owner and a fixed order.
  constexpr int64_t kChunk = 256;
  pool.parallel_for_dynamic(a.n_kv, kChunk, [&](int64_t j0, int64_t j1) {
    std::fill(recv + j0, recv + j1, 0.0f);
    // Query i sees keys [0, n_kv - n_q + i + 1): rows before the first query that sees j0
    // hold zeros there.
    const int64_t i0 = std::max<int64_t>(0, j0 - (a.n_kv - a.n_q));
    for (int64_t r = i0 * a.n_head; r < rows; ++r) {
      const float* p = a.probs + r * a.n_kv;
      for (int64_t j = j0; j < j1; ++j) recv[j] += p[j];
    }
  });
}

void attention_reference(const AttentionArgs& a) {
  check_attention_args(a);
  const int group = a.n_head / a.n_head_kv;
  const int hd = a.head_dim;
  std::vector<double> s(a.n_kv), o(hd);
  for (int i = 0; i < a.n_q; ++i) {
    const int64_t n_vis = visible_keys(a, i);
    for (int h = 0; h < a.n_head; ++h) {
      const float* q = a.q + (int64_t{i} * a.n_head + h) * hd;
      const int kvh = h / group;
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_vis; ++j) {
        const float* k = a.k + j * a.k_stride + int64_t{kvh} * hd;
        double dot = 0.0;
        for (int d = 0; d < hd; ++d) dot += static_cast<double>(q[d]) * k[d];
        s[j] = dot * a.scale;
        max = std::max(max, s[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n_vis; ++j) sum += s[j] = std::exp(s[j] - max);
      std::fill(o.begin(), o.end(), 0.0);
      for (int64_t j = 0; j < n_vis; ++j) {
        const float* v = a.v + j * a.v_stride + int64_t{kvh} * hd;
        for (int d = 0; d < hd; ++d) o[d] += s[j] / sum * v[d];
      }
      float* out = a.out + (int64_t{i} * a.n_head + h) * hd;
      for (int d = 0; d < hd; ++d) out[d] = static_cast<float>(o[d]);
    }
  }
}

}  // namespace engram
