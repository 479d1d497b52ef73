// The tiled attention kernel (tiled_attention.h) over SIMD vectors, compiled twice: by
// tiled_attention_avx2.cpp (8 floats per vector) and tiled_attention_avx512.cpp (16). Include
// only from those files, after defining ENGRAM_TILE_FN to the name of the function it defines.
//
// Per tile of keys:
//  1. scores S[j][r] = q_r . k_j: rows across the vector lanes (queries transposed once per
//     task), a broadcast key element times a vector of rows, 4 keys x up to 4 row vectors of
//     accumulators, so the row statistics below are vector operations too;
//  2. online softmax per row: m' = max(m, max_j S), c = exp(m - m'), l = c l + sum_j exp(S - m'),
//     P = exp(S - m') (0 where masked);
//  3. O[r] = c O[r] + sum_j P[j][r] v_j: dims across the lanes, 4 rows x up to 4 dim vectors of
//     accumulators, each value vector loaded once for 4 rows.
// The caller normalises O (after merging the states of several key ranges, for split keys).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/simd_vec.h"
#include "kernels/tiled_attention.h"

#define ENGRAM_UNROLL _Pragma("GCC unroll 16")

namespace engram {
namespace {

#if defined(__AVX512F__)
constexpr int kMaxRowVecs = 4;  // accumulators: 4 keys x 4 row vectors of the 32 registers
constexpr int kMaxDimVecs = 4;  //               4 rows x 4 dim vectors
#else
constexpr int kMaxRowVecs = 3;  // 4 keys x 3 row vectors of the 16 registers
constexpr int kMaxDimVecs = 3;  // 4 rows x 3 dim vectors
#endif

// S[jj][r] for keys j0 + jj, jj < nk (rounded up to 4; keys past n_keys read the last key and
// are masked later), row vectors [v0, v0 + NV).
template <int NV>
void tile_scores(const AttentionTile& t, int64_t j0, int nk, int v0, float* s) {
  for (int jj = 0; jj < nk; jj += 4) {
    const float* kp[4];
    for (int u = 0; u < 4; ++u) kp[u] = t.k + std::min(j0 + jj + u, t.j_end - 1) * t.k_stride;
    Vec acc[4][NV];
    ENGRAM_UNROLL for (int u = 0; u < 4; ++u) {
      ENGRAM_UNROLL for (int n = 0; n < NV; ++n) acc[u][n] = zero();
    }
    const float* q = t.qt + v0 * kW;
    for (int d = 0; d < t.hd; ++d, q += kTileRows) {
      Vec qv[NV];
      ENGRAM_UNROLL for (int n = 0; n < NV; ++n) qv[n] = load(q + n * kW);
      ENGRAM_UNROLL for (int u = 0; u < 4; ++u) {
        const Vec kb = set1(kp[u][d]);
        ENGRAM_UNROLL for (int n = 0; n < NV; ++n) acc[u][n] = fmadd(kb, qv[n], acc[u][n]);
      }
    }
    ENGRAM_UNROLL for (int u = 0; u < 4; ++u) {
      ENGRAM_UNROLL for (int n = 0; n < NV; ++n) {
        store(s + (jj + u) * kTileRows + (v0 + n) * kW, acc[u][n]);
      }
    }
  }
}

// The sums of a0..a3, as [s0 s1 s2 s3].
inline __m128 hsum4(Vec a0, Vec a1, Vec a2, Vec a3) {
#if defined(__AVX512F__)
  auto half = [](Vec a) {  // the 8 sums of a's two halves
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  };
  const __m256 b0 = half(a0), b1 = half(a1), b2 = half(a2), b3 = half(a3);
#else
  const __m256 b0 = a0, b1 = a1, b2 = a2, b3 = a3;
#endif
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(b0, b1), _mm256_hadd_ps(b2, b3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// S for rows [r0, r0 + R) with the dims across the lanes (few rows: a decode step's heads of one
// kv head, where rows across the lanes would leave most lanes idle): per 4 keys, R rows x 4 keys
// of accumulators over hd / kW vectors, each summed at the end. Needs hd % kW == 0.
template <int R>
void tile_scores_few(const AttentionTile& t, int64_t j0, int nk, int r0, float* s) {
  for (int jj = 0; jj < nk; jj += 4) {
    const float* kp[4];
    for (int u = 0; u < 4; ++u) kp[u] = t.k + std::min(j0 + jj + u, t.j_end - 1) * t.k_stride;
    Vec acc[R][4];
    ENGRAM_UNROLL for (int r = 0; r < R; ++r) {
      ENGRAM_UNROLL for (int u = 0; u < 4; ++u) acc[r][u] = zero();
    }
    for (int d = 0; d < t.hd; d += kW) {
      Vec kv[4];
      ENGRAM_UNROLL for (int u = 0; u < 4; ++u) kv[u] = load(kp[u] + d);
      ENGRAM_UNROLL for (int r = 0; r < R; ++r) {
        const Vec qv = load(t.q + (r0 + r) * t.hd + d);
        ENGRAM_UNROLL for (int u = 0; u < 4; ++u) acc[r][u] = fmadd(qv, kv[u], acc[r][u]);
      }
    }
    ENGRAM_UNROLL for (int r = 0; r < R; ++r) {
      alignas(16) float sum[4];
      _mm_store_ps(sum, hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
      for (int u = 0; u < 4; ++u) s[(jj + u) * kTileRows + r0 + r] = sum[u];
    }
  }
}

#if defined(__AVX512F__)
constexpr int kFewRowsPerPass = 4;  // 16 accumulators + 4 keys + 1 query of 32 registers
#else
constexpr int kFewRowsPerPass = 2;  // 8 + 4 + 1 of 16
#endif
// Up to this many rows take tile_scores_few: rows across the lanes cost hd vector FMAs per key
// whatever the rows, dims across the lanes hd / kW per row and key plus the sums.
constexpr int kFewRows = 8;

void scores_all_rows(const AttentionTile& t, int64_t j0, int nk, int n_vec, float* s) {
  if (t.rows <= kFewRows && t.hd % kW == 0) {
    for (int r0 = 0; r0 < t.rows; r0 += kFewRowsPerPass) {
      switch (std::min(kFewRowsPerPass, t.rows - r0)) {
        case 1:
          tile_scores_few<1>(t, j0, nk, r0, s);
          break;
        case 2:
          tile_scores_few<2>(t, j0, nk, r0, s);
          break;
        case 3:
          tile_scores_few<3>(t, j0, nk, r0, s);
          break;
        default:
          tile_scores_few<kFewRowsPerPass>(t, j0, nk, r0, s);
          break;
      }
    }
    return;
  }
  for (int v0 = 0; v0 < n_vec; v0 += kMaxRowVecs) {
    switch (std::min(kMaxRowVecs, n_vec - v0)) {
      case 1:
        tile_scores<1>(t, j0, nk, v0, s);
        break;
      case 2:
        tile_scores<2>(t, j0, nk, v0, s);
        break;
      case 3:
        tile_scores<3>(t, j0, nk, v0, s);
        break;
      default:
        tile_scores<kMaxRowVecs>(t, j0, nk, v0, s);
        break;
    }
  }
}

// O[r][d0, d0 + DV kW) = c[r] O[r] + sum_jj P[jj][r] v_{j0 + jj}, rows [r0, r0 + 4).
template <int DV>
void tile_values(const AttentionTile& t, int64_t j0, int nk, int r0, int d0, const float* p,
                 const float* c) {
  Vec acc[4][DV];
  ENGRAM_UNROLL for (int u = 0; u < 4; ++u) {
    const Vec cu = set1(c[r0 + u]);
    ENGRAM_UNROLL for (int e = 0; e < DV; ++e) {
      acc[u][e] = mul(cu, load(t.o + (r0 + u) * t.hd + d0 + e * kW));
    }
  }
  const float* vj = t.v + j0 * t.v_stride + d0;
  for (int jj = 0; jj < nk; ++jj, vj += t.v_stride) {
    Vec vv[DV];
    ENGRAM_UNROLL for (int e = 0; e < DV; ++e) vv[e] = load(vj + e * kW);
    ENGRAM_UNROLL for (int u = 0; u < 4; ++u) {
      const Vec pu = set1(p[jj * kTileRows + r0 + u]);
      ENGRAM_UNROLL for (int e = 0; e < DV; ++e) acc[u][e] = fmadd(pu, vv[e], acc[u][e]);
    }
  }
  ENGRAM_UNROLL for (int u = 0; u < 4; ++u) {
    ENGRAM_UNROLL for (int e = 0; e < DV; ++e)
        store(t.o + (r0 + u) * t.hd + d0 + e * kW, acc[u][e]);
  }
}

void values_all_rows(const AttentionTile& t, int64_t j0, int nk, const float* p, const float* c) {
  const int hd_vec = t.hd / kW * kW;
  for (int r0 = 0; r0 < t.rows; r0 += 4) {
    for (int d0 = 0; d0 < hd_vec; d0 += kMaxDimVecs * kW) {
      switch (std::min(kMaxDimVecs, (hd_vec - d0) / kW)) {
        case 1:
          tile_values<1>(t, j0, nk, r0, d0, p, c);
          break;
        case 2:
          tile_values<2>(t, j0, nk, r0, d0, p, c);
          break;
        case 3:
          tile_values<3>(t, j0, nk, r0, d0, p, c);
          break;
        default:
          tile_values<kMaxDimVecs>(t, j0, nk, r0, d0, p, c);
          break;
      }
    }
    for (int u = r0; u < r0 + 4; ++u) {  // dims past the last whole vector
      float* o = t.o + u * t.hd;
      for (int d = hd_vec; d < t.hd; ++d) {
        float acc = c[u] * o[d];
        for (int jj = 0; jj < nk; ++jj)
          acc += p[jj * kTileRows + u] * t.v[(j0 + jj) * t.v_stride + d];
        o[d] = acc;
      }
    }
  }
}

}  // namespace

void ENGRAM_TILE_FN(const AttentionTile& t) {
  // Padding rows (up to a whole vector, and up to 4 for the value loop) are computed too: their
  // queries are zero and their scores finite, and nothing reads their results.
  const int n_vec = (t.rows + kW - 1) / kW;
  float* m = t.m;
  float* l = t.l;
  alignas(64) float c[kTileRows];
  alignas(64) float s[kTileKeys * kTileRows];
  alignas(64) float lim_rel[kTileRows];
  std::fill(m, m + kTileRows, kTileMasked);
  std::fill(l, l + kTileRows, 0.0f);
  std::fill(t.o, t.o + int64_t{tile_o_rows(t.rows)} * t.hd, 0.0f);
  // The padding rows of the last vector must hold finite scores; the few-rows path never
  // writes them.
  for (int jj = 0; jj < kTileKeys; ++jj) {
    std::fill(s + jj * kTileRows + t.rows, s + jj * kTileRows + n_vec * kW, 0.0f);
  }
  for (int64_t j0 = t.j_begin; j0 < t.j_end; j0 += kTileKeys) {
    const int nk = static_cast<int>(std::min<int64_t>(kTileKeys, t.j_end - j0));
    scores_all_rows(t, j0, nk, n_vec, s);
    const bool masked = j0 + nk > t.n_full;
    if (masked) {  // limits relative to the tile, small enough to be exact in float
      for (int r = 0; r < n_vec * kW; ++r) {
        lim_rel[r] = static_cast<float>(std::clamp<int64_t>(t.limit[r] - j0, 0, kTileKeys));
      }
    }
    for (int n = 0; n < n_vec; ++n) {
      float* sn = s + n * kW;
      const Vec m_old = load(m + n * kW);
      Vec m_new = m_old;
      if (masked) {
        const Vec lim = load(lim_rel + n * kW);
        for (int jj = 0; jj < nk; ++jj) {
          const Mask seen = less(set1(static_cast<float>(jj)), lim);
          const Vec x = select(seen, load(sn + jj * kTileRows), set1(kTileMasked));
          store(sn + jj * kTileRows, x);
          m_new = vmax(m_new, x);
        }
      } else {
        for (int jj = 0; jj < nk; ++jj) m_new = vmax(m_new, load(sn + jj * kTileRows));
      }
      const Vec corr = exp_neg(sub(m_old, m_new));
      Vec sum = mul(load(l + n * kW), corr);
      for (int jj = 0; jj < nk; ++jj) {
        const Vec x = load(sn + jj * kTileRows);
        Vec e = exp_neg(sub(x, m_new));
        // A row that has seen no key yet has m_new = kTileMasked: its masked scores must not
        // count.
        if (masked) e = select(less(set1(kTileMasked), x), e, zero());
        store(sn + jj * kTileRows, e);
        sum = add(sum, e);
      }
      store(m + n * kW, m_new);
      store(l + n * kW, sum);
      store(c + n * kW, corr);
    }
    values_all_rows(t, j0, nk, s, c);
  }
}

}  // namespace engram
