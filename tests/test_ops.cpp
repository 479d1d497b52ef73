// ops: rmsnorm, softmax, silu_mul, RoPE variants, attention (GQA, causal blocks, strides; each
// ISA's tiled kernel) against direct double-precision formulas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "engram/error.h"
#include "engram/thread_pool.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/ops_internal.h"
#include "kernels/tiled_attention.h"
#include "random_vectors.h"

namespace engram {
namespace {

using testing_util::randn;

TEST(Ops, RmsNorm) {
  std::mt19937 rng(1);
  const int n = 300;
  auto x = randn(n, rng), w = randn(n, rng);
  std::vector<float> out(n);
  rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f);
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(out[i], x[i] * inv * w[i], 1e-5) << i;
  // In place works.
  rmsnorm(x.data(), x.data(), w.data(), n, 1e-5f);
  for (int i = 0; i < n; ++i) EXPECT_EQ(x[i], out[i]);
}

TEST(Ops, SoftmaxIsStableAndNormalised) {
  std::vector<float> x = {1000.0f, 1001.0f, 999.0f, -1e30f};
  softmax(x.data(), 4);
  const double e0 = std::exp(-1.0), e2 = std::exp(-2.0), s = e0 + 1 + e2;
  EXPECT_NEAR(x[0], e0 / s, 1e-6);
  EXPECT_NEAR(x[1], 1 / s, 1e-6);
  EXPECT_NEAR(x[2], e2 / s, 1e-6);
  EXPECT_EQ(x[3], 0.0f);
}

TEST(Ops, SiluMul) {
  const float g[] = {-3.0f, 0.0f, 0.5f, 10.0f}, u[] = {2.0f, 5.0f, -1.0f, 0.5f};
  float out[4];
  silu_mul(out, g, u, 4);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-double(g[i]))) * u[i], 1e-6);
}

TEST(Ops, SiluMulSimdMatchesScalarAndThreadsDoNotChangeIt) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> wide(-30.0f, 30.0f), unit(-2.0f, 2.0f);
  const int64_t n = 40000 + 5;  // large enough to be split over the pool, with a SIMD tail
  std::vector<float> g(n), u(n);
  for (int64_t i = 0; i < n; ++i) {
    g[i] = i % 3 == 0 ? unit(rng) : wide(rng);
    u[i] = unit(rng);
  }
  g[0] = 0.0f, g[1] = -0.0f, g[2] = 100.0f, g[3] = -100.0f, g[4] = 88.0f, g[5] = -88.0f;
  std::vector<float> ref(n), out(n);
  vec_kernels_scalar().silu_mul(ref.data(), g.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(ref[i], g[i] / (1 + std::exp(-double(g[i]))) * u[i], 1e-6 * (1 + std::fabs(g[i])));
  }
  if (isa_available(Isa::Avx2)) {
    vec_kernels_avx2().silu_mul(out.data(), g.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(out[i], ref[i], 1e-6f * (1 + std::fabs(ref[i]))) << "g=" << g[i];
    }
  }
  ThreadPool pool(2);
  std::vector<float> one(n);
  silu_mul(one.data(), g.data(), u.data(), n);
  silu_mul(out.data(), g.data(), u.data(), n, pool);
  EXPECT_EQ(out, one);
}

TEST(Ops, LogSumExpSimdMatchesScalarAndDouble) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> logit(-30.0f, 20.0f);
  for (int64_t n : {1, 7, 8, 9, 16, 17, 100, 4096}) {
    std::vector<float> x(n);
    for (auto& v : x) v = logit(rng);
    if (n > 3) x[3] = 95.0f;  // far above the rest: exp(x - max) underflows for most values
    double mx = *std::max_element(x.begin(), x.end()), sum = 0;
    for (float v : x) sum += std::exp(double(v) - mx);
    const double want = mx + std::log(sum);
    const std::vector<float> keep = x;
    const float ref = vec_kernels_scalar().log_sum_exp(x.data(), n);
    ASSERT_NEAR(ref, want, 1e-5 * std::max(1.0, std::fabs(want))) << "n=" << n;
    EXPECT_NEAR(log_sum_exp(x.data(), n), want, 1e-5 * std::max(1.0, std::fabs(want)));
    EXPECT_EQ(x, keep) << "the input must stay as it was";
    if (!isa_available(Isa::Avx2)) continue;
    EXPECT_NEAR(vec_kernels_avx2().log_sum_exp(x.data(), n), ref,
                1e-5f * std::max(1.0f, std::fabs(ref)))
        << "n=" << n;
  }
  // The largest value alone decides when the others are far below it.
  const float two[] = {0.0f, -200.0f};
  EXPECT_NEAR(log_sum_exp(two, 2), 0.0f, 1e-7f);
  EXPECT_THROW(log_sum_exp(two, 0), Error);
}

// Direct definition: pair (a, b) rotated by pos * freq_scale * base^(-2i/rope_dim) / factor_i.
std::vector<float> rope_expected(const std::vector<float>& x, int pos, const RopeParams& p) {
  std::vector<float> y = x;
  const int half = p.rope_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int a = p.interleaved ? 2 * i : i, b = p.interleaved ? 2 * i + 1 : i + half;
    double th = pos * double(p.freq_scale) * std::pow(double(p.base), -2.0 * i / p.rope_dim);
    if (p.freq_factors) th /= p.freq_factors[i];
    y[a] = float(x[a] * std::cos(th) - x[b] * std::sin(th));
    y[b] = float(x[a] * std::sin(th) + x[b] * std::cos(th));
  }
  return y;
}

TEST(Ops, RopeVariants) {
  std::mt19937 rng(2);
  std::vector<float> factors(32);
  for (int i = 0; i < 32; ++i) factors[i] = 1.0f + i * 0.25f;
  for (bool interleaved : {true, false}) {
    for (int rope_dim : {64, 32}) {
      for (int pos : {0, 1, 17, 4095, 500000}) {
        for (int variant = 0; variant < 3; ++variant) {
          RopeParams p;
          p.head_dim = 64;
          p.rope_dim = rope_dim;
          p.base = variant == 0 ? 10000.0f : 500000.0f;
          p.interleaved = interleaved;
          if (variant == 1) p.freq_scale = 0.25f;
          if (variant == 2) p.freq_factors = factors.data();
          auto x = randn(64, rng);
          const auto expect = rope_expected(x, pos, p);
          rope(x.data(), pos, p);
          for (int d = 0; d < 64; ++d) {
            ASSERT_NEAR(x[d], expect[d], 2e-5)
                << "interleaved=" << interleaved << " rope_dim=" << rope_dim << " pos=" << pos
                << " variant=" << variant << " d=" << d;
          }
        }
      }
    }
  }
}

TEST(Ops, RopeLayoutsArePermutationsOfEachOther) {
  // NeoX rotates (x[i], x[i + d/2]); interleaved rotates (x[2i], x[2i+1]). Interleaving the
  // halves of a vector must turn one into the other.
  std::mt19937 rng(3);
  const int d = 16;
  auto x = randn(d, rng);
  std::vector<float> inter(d);
  for (int i = 0; i < d / 2; ++i) {
    inter[2 * i] = x[i];
    inter[2 * i + 1] = x[i + d / 2];
  }
  RopeParams p;
  p.head_dim = p.rope_dim = d;
  p.interleaved = false;
  rope(x.data(), 7, p);
  p.interleaved = true;
  rope(inter.data(), 7, p);
  for (int i = 0; i < d / 2; ++i) {
    EXPECT_FLOAT_EQ(inter[2 * i], x[i]);
    EXPECT_FLOAT_EQ(inter[2 * i + 1], x[i + d / 2]);
  }
}

TEST(Ops, RopeRejectsBadDims) {
  float x[8] = {};
  RopeParams p;
  p.head_dim = 8;
  p.rope_dim = 10;
  EXPECT_THROW(rope(x, 1, p), Error);
  p.rope_dim = 5;
  EXPECT_THROW(rope(x, 1, p), Error);
}

struct AttnCase {
  int n_q;
  int64_t n_kv;
  int n_head, n_head_kv, head_dim;
  int64_t stride_pad;
};

// Random q/k/v of a case and the arguments that point at them (`out` sized, not pointed at).
struct AttnInputs {
  int64_t kv_row = 0;
  std::vector<float> q, k, v, out;
  AttentionArgs a;
  AttnInputs(const AttnCase& c, std::mt19937& rng)
      : kv_row(int64_t{c.n_head_kv} * c.head_dim + c.stride_pad),
        q(randn(size_t(c.n_q) * c.n_head * c.head_dim, rng)),
        k(randn(size_t(c.n_kv) * kv_row, rng)),
        v(randn(size_t(c.n_kv) * kv_row, rng)),
        out(q.size()) {
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.k_stride = a.v_stride = kv_row;
    a.n_q = c.n_q;
    a.n_kv = c.n_kv;
    a.n_head = c.n_head;
    a.n_head_kv = c.n_head_kv;
    a.head_dim = c.head_dim;
    a.scale = 1.0f / std::sqrt(float(c.head_dim));
  }
  AttnInputs(const AttnInputs&) = delete;
};

void check_attention(const AttnCase& c, ThreadPool& pool, std::mt19937& rng) {
  AttnInputs in(c, rng);
  AttentionArgs& a = in.a;
  std::vector<float>& out = in.out;
  std::vector<float> ref(out.size());
  a.out = ref.data();
  attention_reference(a);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!isa_available(isa)) continue;
    std::fill(out.begin(), out.end(), -7.0f);
    a.out = out.data();
    attention_with_isa(isa, a, pool);
    for (size_t i = 0; i < out.size(); ++i) {
      ASSERT_NEAR(out[i], ref[i], 2e-5)
          << "n_q=" << c.n_q << " n_kv=" << c.n_kv << " heads=" << c.n_head << "/" << c.n_head_kv
          << " i=" << i << " " << isa_name(isa);
    }
  }
  a.out = out.data();
  attention(a, pool);  // the dispatched entry point
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], ref[i], 2e-5);
}

TEST(Ops, AttentionMatchesReference) {
  std::mt19937 rng(4);
  ThreadPool pool1(1), pool2(2);
  const AttnCase cases[] = {
      {1, 1, 4, 4, 64, 0},      // first token
      {1, 37, 12, 4, 64, 0},    // decode, GQA 3
      {1, 100, 8, 2, 32, 8},    // decode, GQA 4, padded rows
      {7, 7, 4, 4, 16, 0},      // prefill, pure causal, MHA
      {5, 40, 6, 2, 64, 3},     // prefill chunk after a cache, GQA 3, strided
      {16, 300, 8, 2, 128, 0},  // GQA 4, head_dim 128
      {3, 2, 2, 1, 8, 0},       // n_kv < n_q: the first query sees nothing
      {1, 4500, 4, 1, 64, 0},   // long cache, MQA
      {4, 9, 3, 1, 12, 1},      // head_dim not a multiple of 8 (SIMD tails)
      {2, 6, 4, 2, 36, 0},      // head_dim with an 8-wide and a scalar tail
  };
  for (const auto& c : cases) {
    check_attention(c, pool1, rng);
    check_attention(c, pool2, rng);
  }
}

TEST(Ops, AttentionFirstQueriesWithoutKeysAreZero) {
  ThreadPool pool(2);
  std::vector<float> q(3 * 8, 1.0f), k(2 * 8, 1.0f), v(2 * 8, 1.0f), out(3 * 8, 5.0f);
  AttentionArgs a;
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.k_stride = a.v_stride = 8;
  a.out = out.data();
  a.n_q = 3;
  a.n_kv = 2;
  a.n_head = a.n_head_kv = 1;
  a.head_dim = 8;
  attention(a, pool);
  for (int d = 0; d < 8; ++d) EXPECT_EQ(out[d], 0.0f);
  for (int d = 8; d < 24; ++d) EXPECT_NEAR(out[d], 1.0f, 1e-6);
}

// attention()'s probabilities and attention_received's sums of them against softmax
// probabilities computed in double, key by key; the sums the same (bit for bit) whatever the
// thread count.
TEST(Ops, AttentionReceivedSumsSoftmaxProbabilitiesPerKey) {
  std::mt19937 rng(9);
  ThreadPool pool1(1), pool2(2);
  const AttnCase cases[] = {
      {1, 37, 8, 4, 32, 0},   // decode
      {5, 40, 6, 2, 64, 3},   // chunk after a cache, strided
      {3, 2, 2, 1, 8, 0},     // the first query sees nothing
      {9, 300, 4, 2, 32, 0},  // several key chunks
      {4, 9, 3, 1, 12, 1},    // head_dim with SIMD tails
  };
  for (const auto& c : cases) {
    AttnInputs in(c, rng);
    const std::vector<float>& q = in.q;
    const std::vector<float>& k = in.k;
    const int64_t kv_row = in.kv_row;
    AttentionArgs& a = in.a;
    std::vector<float> plain(in.out.size());
    a.out = plain.data();
    attention(a, pool2);  // without probabilities, to check that asking for them changes nothing
    std::vector<float> probs(size_t(c.n_q) * c.n_head * c.n_kv, -1.0f);
    a.out = in.out.data();
    a.probs = probs.data();
    attention(a, pool2);
    EXPECT_EQ(in.out, plain);
    std::vector<double> want(c.n_kv, 0.0);
    const int group = c.n_head / c.n_head_kv;
    for (int i = 0; i < c.n_q; ++i) {
      const int64_t n_vis = std::clamp<int64_t>(c.n_kv - c.n_q + i + 1, 0, c.n_kv);
      for (int h = 0; h < c.n_head; ++h) {
        std::vector<double> s(n_vis);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < n_vis; ++j) {
          double d = 0;
          for (int e = 0; e < c.head_dim; ++e) {
            d += double(q[(size_t(i) * c.n_head + h) * c.head_dim + e]) *
                 k[size_t(j) * kv_row + size_t(h / group) * c.head_dim + e];
          }
          s[j] = d * a.scale;
          mx = std::max(mx, s[j]);
        }
        for (double x : s) sum += std::exp(x - mx);
        const float* row = probs.data() + (size_t(i) * c.n_head + h) * c.n_kv;
        for (int64_t j = 0; j < n_vis; ++j) {
          want[j] += std::exp(s[j] - mx) / sum;
          ASSERT_NEAR(row[j], std::exp(s[j] - mx) / sum, 1e-5) << "query " << i << " key " << j;
        }
        for (int64_t j = n_vis; j < c.n_kv; ++j) ASSERT_EQ(row[j], 0.0f) << "unseen key " << j;
      }
    }
    std::vector<float> got1(c.n_kv, -1.0f), got2(c.n_kv, -1.0f);
    attention_received(a, got1.data(), pool1);
    attention_received(a, got2.data(), pool2);
    double total = 0;
    for (int64_t j = 0; j < c.n_kv; ++j) {
      ASSERT_NEAR(got1[j], want[j], 1e-4 * std::max(1.0, want[j])) << "key " << j;
      ASSERT_EQ(got1[j], got2[j]) << "key " << j << ": depends on the thread count";
      total += got1[j];
    }
    // Every query that sees a key hands out one unit of probability per head.
    int seeing = 0;
    for (int i = 0; i < c.n_q; ++i) seeing += c.n_kv - c.n_q + i + 1 > 0;
    EXPECT_NEAR(total, double(seeing) * c.n_head, 1e-3 * seeing * c.n_head);
  }
}

TEST(Ops, AttentionRejectsBadShapes) {
  ThreadPool pool(1);
  AttentionArgs a;
  a.n_q = 1;
  a.n_kv = 1;
  a.n_head = 6;
  a.n_head_kv = 4;
  a.head_dim = 8;
  EXPECT_THROW(attention(a, pool), Error);
}

}  // namespace
}  // namespace engram
