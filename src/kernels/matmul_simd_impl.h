// SIMD matmul kernels, compiled twice: by matmul_avx2.cpp (AVX2/FMA/F16C) and by
// matmul_avx512.cpp (adds AVX-512 + VNNI). Include only from those files, after defining
// ENGRAM_KERNEL_TABLE_FN to the name of the table accessor it defines.
//
// Integer kernels work on 256-bit vectors in both builds: a weight block is 32 elements, so a
// ymm holds exactly one block and no cross-block shuffles are needed; the AVX-512 build gains
// VNNI (vpdpbusd / vpdpwssd fuse multiply and accumulate). Float kernels use the full vector
// width (zmm in the AVX-512 build).
//
// Every kernel computes an R x T tile (R weight rows x T tokens) per pass over the row, so a
// weight block loaded once is used T times (prefill) and an activation block R times.
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernels/blocks.h"
#include "kernels/matmul_internal.h"

// The R x T tile loops must be fully unrolled so the accumulators live in registers; GCC -O2
// does not do that on its own.
#define ENGRAM_UNROLL _Pragma("GCC unroll 16")

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define ENGRAM_VNNI 1
#else
#define ENGRAM_VNNI 0
#endif

namespace engram {
namespace {

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

// Sum of 4 adjacent u8*s8 products into each i32 lane, added to acc.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if ENGRAM_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  const __m256i p16 = _mm256_maddubs_epi16(u, s);  // no saturation: |u| <= 63 here
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
#endif
}

// acc += pairwise sums of a * b (i16 -> i32).
inline __m256i madd_acc(__m256i acc, __m256i a, __m256i b) {
#if ENGRAM_VNNI
  return _mm256_dpwssd_epi32(acc, a, b);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// Runs f<RR, TT>(r, t) over the [r0,r1) x [t0,t1) range: rows outer so an R-row weight block
// stays in L1 while every token tile of the chunk passes over it.
template <int R, int T, class F>
inline void for_tiles(int64_t r0, int64_t r1, int64_t t0, int64_t t1, F&& f) {
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    int64_t t = t0;
    for (; t + T <= t1; t += T) f.template operator()<R, T>(r, t);
    for (; t < t1; ++t) f.template operator()<R, 1>(r, t);
  }
  for (; r < r1; ++r) {
    int64_t t = t0;
    for (; t + T <= t1; t += T) f.template operator()<1, T>(r, t);
    for (; t < t1; ++t) f.template operator()<1, 1>(r, t);
  }
}

// ---------------------------------------------------------------- float weights

#ifdef __AVX512F__
using VF = __m512;
constexpr int kW = 16;
inline VF vzero() {
  return _mm512_setzero_ps();
}
inline VF vload(const float* p) {
  return _mm512_loadu_ps(p);
}
inline VF vfma(VF a, VF b, VF c) {
  return _mm512_fmadd_ps(a, b, c);
}
inline float vsum(VF v) {
  return _mm512_reduce_add_ps(v);
}
inline VF load_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline VF load_bf16(const uint16_t* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
constexpr int kFloatR = 4, kFloatT = 4;
#else
using VF = __m256;
constexpr int kW = 8;
inline VF vzero() {
  return _mm256_setzero_ps();
}
inline VF vload(const float* p) {
  return _mm256_loadu_ps(p);
}
inline VF vfma(VF a, VF b, VF c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline float vsum(VF v) {
  return hsum8(v);
}
inline VF load_f16(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline VF load_bf16(const uint16_t* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
constexpr int kFloatR = 4, kFloatT = 2;
#endif

struct F32W {
  using Elem = float;
  static VF load(const float* p) { return vload(p); }
  static float scalar(float v) { return v; }
};
struct F16W {
  using Elem = uint16_t;
  static VF load(const uint16_t* p) { return load_f16(p); }
  static float scalar(uint16_t v) { return half_to_float(v); }
};
struct BF16W {
  using Elem = uint16_t;
  static VF load(const uint16_t* p) { return load_bf16(p); }
  static float scalar(uint16_t v) {
    return _mm_cvtss_f32(
        _mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(static_cast<uint32_t>(v) << 16))));
  }
};

template <class WT>
void tile_float(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                int64_t t1, float* y, int64_t ldy) {
  using E = typename WT::Elem;
  const int64_t cols = a.cols;
  const int64_t kmain = cols / kW * kW;
  for_tiles<kFloatR, kFloatT>(r0, r1, t0, t1, [&]<int R, int T>(int64_t r, int64_t t) {
    const E* wr[R];  // [R, cols]
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) {
      wr[i] =
          reinterpret_cast<const E*>(static_cast<const uint8_t*>(w.data) + (r + i) * w.row_bytes);
    }
    const float* xt = a.x + t * cols;  // [T, cols]
    VF acc[R][T];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) acc[i][j] = vzero();
    for (int64_t k = 0; k < kmain; k += kW) {
      if constexpr (T == 1) {
        // Decode streams R rows at once; prefetch each 4 KiB ahead, as the quantized decode
        // kernel does (the hardware prefetcher alone keeps too few lines in flight).
        ENGRAM_UNROLL
        for (int i = 0; i < R; ++i) {
          _mm_prefetch(reinterpret_cast<const char*>(wr[i] + k) + 4096, _MM_HINT_T0);
        }
      }
      VF xv[T];
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) xv[j] = vload(xt + j * cols + k);
      ENGRAM_UNROLL
      for (int i = 0; i < R; ++i) {
        const VF wv = WT::load(wr[i] + k);
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) acc[i][j] = vfma(wv, xv[j], acc[i][j]);
      }
    }
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) {
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) {
        float s = vsum(acc[i][j]);
        for (int64_t k = kmain; k < cols; ++k) s += WT::scalar(wr[i][k]) * xt[j * cols + k];
        y[(t + j) * ldy + r + i] = s;
      }
    }
  });
}

// ---------------------------------------------------------------- activation quantization

inline __m256 abs_ps(__m256 v) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Quantizes 32 floats with multiplier id (round to nearest even, as the scalar version) and
// stores them; returns the 32 values as 4 vectors of i32 (for the sums).
inline void quantize32(const float* x, __m256 id, int8_t* qs, __m256i q[4]) {
  ENGRAM_UNROLL
  for (int i = 0; i < 4; ++i)
    q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), id));
  // Pack i32 -> i16 -> i8; packs work per 128-bit lane, so fix the order with a permute.
  const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
  const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i p = _mm256_packs_epi16(p01, p23);
  const __m256i fixed = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), fixed);
}

inline int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

void quantize_acts_32(const float* x, int64_t n, int8_t* qs, float* d, float* s) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32, qs += 32) {
    __m256 m = abs_ps(_mm256_loadu_ps(x));
    for (int i = 1; i < 4; ++i) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 8 * i)));
    const float amax = hmax8(m);
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    __m256i q[4];
    quantize32(x, _mm256_set1_ps(id), qs, q);
    const int sum =
        hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

void quantize_acts_256(const float* x, int64_t n, int8_t* qs, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < n / 256; ++b, x += 256, qs += 256) {
    __m256 m = abs_ps(_mm256_loadu_ps(x));
    for (int i = 1; i < 32; ++i) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + 8 * i)));
    const float amax = hmax8(m);
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    ENGRAM_UNROLL
    for (int c = 0; c < 8; ++c) {
      __m256i q[4];
      quantize32(x + 32 * c, vid, qs + 32 * c, q);
      bsums[16 * b + 2 * c] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[0], q[1])));
      bsums[16 * b + 2 * c + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[2], q[3])));
    }
    d[b] = db;
  }
}

// ---------------------------------------------------------------- quantized weights

#if ENGRAM_VNNI
constexpr int kQuantR = 4, kQuantT = 4;
#else
constexpr int kQuantR = 4, kQuantT = 2;
#endif

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

template <class Block>
inline const Block* row_blocks(const WeightMatrix& w, int64_t r) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w.data) + r * w.row_bytes);
}

#if !ENGRAM_VNNI
// AVX2 versions of the 32-block kernels (the AVX-512 build uses the zmm ones below).
void tile_q8_0(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1,
               float* y, int64_t ldy) {
  const int64_t nb = a.nblk;
  for_tiles<kQuantR, kQuantT>(r0, r1, t0, t1, [&]<int R, int T>(int64_t r, int64_t t) {
    const BlockQ8_0* wb[R];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) wb[i] = row_blocks<BlockQ8_0>(w, r + i);
    const int8_t* xq = a.qs + t * a.cols;  // [T, cols]
    const float* xd = a.d + t * nb;        // [T, nb]
    __m256 acc[R][T];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m256i xv[T];
      __m256 dx[T];
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) {
        xv[j] = load256(xq + j * a.cols + 32 * b);
        dx[j] = _mm256_set1_ps(xd[j * nb + b]);
      }
      ENGRAM_UNROLL
      for (int i = 0; i < R; ++i) {
        const __m256i wq = load256(wb[i][b].qs);
        const __m256 dw = _mm256_set1_ps(half_to_float(wb[i][b].d));
        // |w| . (x * sign(w)): maddubs multiplies u8 by s8.
        const __m256i aw = _mm256_sign_epi8(wq, wq);
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[j], wq));
          const __m256i p = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
          acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p), dx[j]), dw, acc[i][j]);
        }
      }
    }
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) y[(t + j) * ldy + r + i] = hsum8(acc[i][j]);
  });
}

void tile_q4_0(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1,
               float* y, int64_t ldy) {
  const int64_t nb = a.nblk;
  for_tiles<kQuantR, kQuantT>(r0, r1, t0, t1, [&]<int R, int T>(int64_t r, int64_t t) {
    const BlockQ4_0* wb[R];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) wb[i] = row_blocks<BlockQ4_0>(w, r + i);
    const int8_t* xq = a.qs + t * a.cols;  // [T, cols]
    const float* xd = a.d + t * nb;        // [T, nb]
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[R][T];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m256i xv[T], xoff[T];
      __m256 dx[T];
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) {
        xv[j] = load256(xq + j * a.cols + 32 * b);
        // 8 * sum(x) per lane: the weights are stored as q + 8.
        xoff[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), xv[j]), ones);
        dx[j] = _mm256_set1_ps(xd[j * nb + b]);
      }
      ENGRAM_UNROLL
      for (int i = 0; i < R; ++i) {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[i][b].qs));
        // Low nibbles are elements 0..15, high nibbles 16..31.
        const __m256i wq = _mm256_and_si256(
            _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), m4);
        const __m256 dw = _mm256_set1_ps(half_to_float(wb[i][b].d));
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const __m256i p =
              _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xv[j]), ones), xoff[j]);
          acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p), dx[j]), dw, acc[i][j]);
        }
      }
    }
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) y[(t + j) * ldy + r + i] = hsum8(acc[i][j]);
  });
}

#endif  // !ENGRAM_VNNI

#if ENGRAM_VNNI
// AVX-512 versions of the 32-block kernels: a zmm holds two consecutive blocks, so every
// multiply, conversion and scale costs half as many instructions per block as with ymm.
// The int8 products use vpdpbusd (u8 x s8): the weights are made unsigned (Q8_0: w + 128,
// Q4_0: q as stored, 0..15) and the offset is removed by starting the accumulator at
// -offset * sum(x), a per-token value shared by all rows of the tile.

// Two scales (f16, `stride` bytes apart; the second is zero for a lone tail block) spread as
// [s0 x 8, s1 x 8].
inline __m512 pair_scale_f16(const uint16_t* d0, const uint16_t* d1) {
  const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(*d0), d1 ? *d1 : 0, 1);
  return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                               _mm512_castps128_ps512(_mm_cvtph_ps(h)));
}
inline __m512 pair_scale_f32(const float* d, bool two) {
  const __m128 v =
      // _mm_loadl_epi64 reads through an unaligned type; _mm_load_sd on a float pair is a
      // misaligned double load (UBSan).
      two ? _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d))) : _mm_load_ss(d);
  return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                               _mm512_castps128_ps512(v));
}
inline __m512i load_x_pair(const int8_t* p, bool two) {
  return two ? _mm512_loadu_si512(p) : _mm512_zextsi256_si512(load256(p));
}
inline float hsum16(__m512 v) {
  return _mm512_reduce_add_ps(v);
}

template <class Unpack, class XOffset>
void tile_pairs(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                int64_t t1, float* y, int64_t ldy, size_t block_bytes, Unpack unpack,
                XOffset x_offset) {
  const int64_t nb = a.nblk;
  for_tiles<4, 4>(r0, r1, t0, t1, [&]<int R, int T>(int64_t r, int64_t t) {
    const uint8_t* wr[R];  // [R, row_bytes]
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) wr[i] = static_cast<const uint8_t*>(w.data) + (r + i) * w.row_bytes;
    const int8_t* xq = a.qs + t * a.cols;  // [T, cols]
    const float* xd = a.d + t * nb;        // [T, nb]
    __m512 acc[R][T];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
    auto step = [&](int64_t b, bool two) {
      __m512i xv[T], xoff[T];
      __m512 dx[T];
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) {
        xv[j] = load_x_pair(xq + j * a.cols + 32 * b, two);
        xoff[j] = x_offset(xv[j]);
        dx[j] = pair_scale_f32(xd + j * nb + b, two);
      }
      ENGRAM_UNROLL
      for (int i = 0; i < R; ++i) {
        const uint8_t* b0 = wr[i] + b * block_bytes;
        // Decode streams each row once; fetching ~512 bytes ahead keeps several lines per row
        // in flight, which the hardware prefetcher alone does not for 4 interleaved streams.
        if constexpr (T == 1) _mm_prefetch(reinterpret_cast<const char*>(b0) + 512, _MM_HINT_T0);
        const uint8_t* b1 = two ? b0 + block_bytes : nullptr;
        const __m512i wq = unpack(b0, b1);
        const __m512 dw = pair_scale_f16(reinterpret_cast<const uint16_t*>(b0),
                                         reinterpret_cast<const uint16_t*>(b1));
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const __m512i p = _mm512_dpbusd_epi32(xoff[j], wq, xv[j]);
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dx[j], dw), acc[i][j]);
        }
      }
    };
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) step(b, true);
    if (b < nb) step(b, false);
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) y[(t + j) * ldy + r + i] = hsum16(acc[i][j]);
  });
}

void tile_q8_0_zmm(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                   int64_t t1, float* y, int64_t ldy) {
  const __m512i c80 = _mm512_set1_epi8(static_cast<char>(0x80));
  tile_pairs(
      w, a, r0, r1, t0, t1, y, ldy, sizeof(BlockQ8_0),
      [&](const uint8_t* b0, const uint8_t* b1) {
        const __m256i lo = load256(b0 + 2);
        const __m512i q = b1 ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), load256(b1 + 2), 1)
                             : _mm512_zextsi256_si512(lo);
        // A lone tail block gets w + 128 = 128 against zero activations: contributes 0.
        return _mm512_xor_si512(q, c80);  // w + 128, unsigned
      },
      [&](__m512i x) {  // -128 * sum(x) per lane
        return _mm512_sub_epi32(_mm512_setzero_si512(),
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), c80, x));
      });
}

void tile_q4_0_zmm(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                   int64_t t1, float* y, int64_t ldy) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i c8 = _mm512_set1_epi8(8);
  tile_pairs(
      w, a, r0, r1, t0, t1, y, ldy, sizeof(BlockQ4_0),
      [&](const uint8_t* b0, const uint8_t* b1) {
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2));
        const __m128i q1 =
            b1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + 2)) : _mm_setzero_si128();
        const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
        // [q0, q1, q0 >> 4, q1 >> 4] -> [q0 lo, q0 hi, q1 lo, q1 hi]: element order of x.
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
        return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)), m4);
      },
      [&](__m512i x) {  // -8 * sum(x) per lane
        return _mm512_sub_epi32(_mm512_setzero_si512(),
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), c8, x));
      });
}
#endif

#if ENGRAM_VNNI
// Packed Q8_0 / Q4_0 (PackedWeights): one zmm holds 4 consecutive unsigned weights of each of
// 16 rows, so vpdpbusd against a 4-byte broadcast of a token's activations advances 16 dot
// products at once. A block of 32 costs 8 vpdpbusd per token and 16 rows, its integer sums
// start at the activation offset (-off * sum(x), removing the +8 / +128 of the stored weights)
// and are scaled by dw[16] * dx into one float accumulator per token: no horizontal sums, and
// a token's 16 outputs are contiguous in y. A tile is 16 rows x up to 8 tokens, so each
// weight vector loaded (and, for Q4_0, unpacked) serves 8 tokens.
template <bool Q4>
inline void load_packed_block(const uint8_t* q, __m512i w[8]) {
  if constexpr (Q4) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    ENGRAM_UNROLL
    for (int k = 0; k < 4; ++k) {
      const __m512i z = _mm512_load_si512(q + 64 * k);
      w[k] = _mm512_and_si512(z, m4);                            // elements 4k..4k+3
      w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);  // elements 16+4k..
    }
  } else {
    ENGRAM_UNROLL
    for (int k = 0; k < 8; ++k) w[k] = _mm512_load_si512(q + 64 * k);
  }
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

// Decode streams every packed weight once. Its software prefetches go to L2, 16 KiB ahead:
// prefetching into L1 (4 KiB ahead, as before) ties up the core's few L1 miss buffers and held
// one thread to ~13 GB/s of Q4_K; into L2, 16 KiB ahead, two threads stream Q8_0 / Q4_0 / Q4_K /
// Q6_K at 33-40 / 31-37 / 30-38 / 33-43 GB/s instead of 31-32 / 28-29 / 23-24 / 21
// (engram_bench Decode, 8192 x 2048, two quiet runs).
constexpr int64_t kDecodePrefetchAhead = 16384;

inline void prefetch_for_decode(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
}

// The first kDecodePrefetchAhead bytes of a decode task's rows, which the kernels' own
// prefetches (always that far ahead of themselves) never cover.
inline void prefetch_decode_range_start(const PackedWeights& p, int64_t r0, int64_t r1) {
  constexpr int kR = PackedWeights::kRows;
  const char* start = reinterpret_cast<const char*>(p.group(r0 / kR));
  const int64_t n =
      std::min<int64_t>(kDecodePrefetchAhead, (r1 - r0 + kR - 1) / kR * p.group_bytes);
  for (int64_t o = 0; o < n; o += 64) prefetch_for_decode(start + o);
}

// What one packed tile reads: row group r's quants and scales, and the activations of tokens
// t.. on (bs: the per-16 sums, which only the K-quants use).
struct PackedTileInputs {
  const uint8_t* gq;
  const uint16_t* gd;
  int64_t nb;
  const int8_t* xq;   // [T, cols]
  const float* xd;    // [T, nb]
  const int16_t* bs;  // [T, nb, 16], or null
  PackedTileInputs(const PackedWeights& p, const Acts& a, int64_t r, int64_t t)
      : gq(p.group(r / PackedWeights::kRows)),
        gd(reinterpret_cast<const uint16_t*>(gq + p.scale_offset)),
        nb(a.nblk),
        xq(a.qs + t * a.cols),
        xd(a.d + t * a.nblk),
        bs(a.bsums ? a.bsums + t * a.nblk * 16 : nullptr) {}
};

// A tile's T tokens of 16 outputs each, the rows past the matrix's end masked off.
template <int T>
inline void store_tile(const __m512 (&acc)[T], float* y, int64_t ldy, int64_t r, int64_t t,
                       __mmask16 mask) {
  ENGRAM_UNROLL
  for (int j = 0; j < T; ++j) _mm512_mask_storeu_ps(y + (t + j) * ldy + r, mask, acc[j]);
}

// Rows [r0, r1) x tokens [t0, t1) of a packed matrix in tiles of 16 rows x 8, 4, 2 or 1 tokens;
// run.template operator()<T>(r, t, mask) computes one. Decode (one token) first prefetches the
// start of its rows.
template <class Run>
inline void for_packed_tiles(const PackedWeights& p, int64_t r0, int64_t r1, int64_t t0, int64_t t1,
                             Run&& run) {
  constexpr int kR = PackedWeights::kRows;
  if (t1 - t0 == 1) prefetch_decode_range_start(p, r0, r1);
  for (int64_t r = r0; r < r1; r += kR) {
    const int64_t n = r1 - r < kR ? r1 - r : kR;
    const auto mask = static_cast<__mmask16>((1u << n) - 1);
    int64_t t = t0;
    for (; t + 8 <= t1; t += 8) run.template operator()<8>(r, t, mask);
    if (t + 4 <= t1) {
      run.template operator()<4>(r, t, mask);
      t += 4;
    }
    if (t + 2 <= t1) {
      run.template operator()<2>(r, t, mask);
      t += 2;
    }
    if (t < t1) run.template operator()<1>(r, t, mask);
  }
}

template <bool Q4, int T>
inline void packed_tile(const PackedWeights& p, const Acts& a, int64_t r, int64_t t, float* y,
                        int64_t ldy, __mmask16 mask) {
  const auto [gq, gd, nb, xq, xd, bs] = PackedTileInputs(p, a, r, t);  // gd: [nb, 16]
  const int32_t* xo = (Q4 ? a.off_q4 : a.off_q8) + t * nb;             // [T, nb]
  __m512 acc[T];
  ENGRAM_UNROLL
  for (int j = 0; j < T; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    if constexpr (T == 1) {
      // Running on into the next group, which follows this one in memory.
      const char* ahead =
          reinterpret_cast<const char*>(gq + b * p.quant_bytes) + kDecodePrefetchAhead;
      ENGRAM_UNROLL
      for (int64_t l = 0; l < (Q4 ? 4 : 8); ++l) prefetch_for_decode(ahead + 64 * l);
    }
    __m512i w[8];
    load_packed_block<Q4>(gq + b * p.quant_bytes, w);
    const __m512 dw = _mm512_cvtph_ps(load256(gd + 16 * b));
    // Tokens innermost: T independent vpdpbusd chains in flight instead of one 8-deep chain.
    __m512i s[T];
    ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) s[j] = _mm512_set1_epi32(xo[j * nb + b]);
    ENGRAM_UNROLL
    for (int k = 0; k < 8; ++k) {
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) {
        const int8_t* xb = xq + j * a.cols + 32 * b + 4 * k;
        s[j] = _mm512_dpbusd_epi32(s[j], w[k], _mm512_set1_epi32(load_i32(xb)));
      }
    }
    ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) {
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j]),
                               _mm512_mul_ps(dw, _mm512_set1_ps(xd[j * nb + b])), acc[j]);
    }
  }
  store_tile<T>(acc, y, ldy, r, t, mask);
}

template <bool Q4>
void tile_packed(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                 int64_t t1, float* y, int64_t ldy) {
  const PackedWeights& p = *w.packed;
  for_packed_tiles(p, r0, r1, t0, t1, [&]<int T>(int64_t r, int64_t t, __mmask16 mask) {
    packed_tile<Q4, T>(p, a, r, t, y, ldy, mask);
  });
}

// Packed Q4_K / Q5_K / Q6_K (PackedWeights): the same 16-row broadcast scheme per 32 elements as
// packed Q4_0, with the K-quants' per-sub-block integer scales applied to each sub-block's
// 16 integer sums (vpmulld) before they meet the super-block's float scale once. Q4_K's mins
// meet the activations' per-16 sums through vpdpwssd ((m, m) pairs against (s0, s1) pairs);
// Q6_K's -32 offset starts each sub-block's sums at -32 * sum(x). A tile is 16 rows x up to 8
// tokens, as for Q4_0.
inline __m512i bcast_i32(const void* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <bool Q5, int T>
inline void packed_q45_k_tile(const PackedWeights& p, const Acts& a, int64_t r, int64_t t, float* y,
                              int64_t ldy, __mmask16 mask) {
  constexpr int kScales = Q5 ? 2048 + 512 : 2048;  // the record's scales, then its mins
  const auto [gq, gd, nb, xq, xd, bs] = PackedTileInputs(p, a, r, t);  // gd: [nb, 32]
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512 acc[T];
  ENGRAM_UNROLL
  for (int j = 0; j < T; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = gq + b * p.quant_bytes;
    __m512i isum[T];
    ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) isum[j] = _mm512_setzero_si512();
    for (int sb = 0; sb < 8; ++sb) {
      if constexpr (T == 1) {  // decode (see kDecodePrefetchAhead)
        const char* ahead = reinterpret_cast<const char*>(rec) + kDecodePrefetchAhead + 256 * sb;
        ENGRAM_UNROLL
        for (int l = 0; l < 4; ++l) prefetch_for_decode(ahead + 64 * l);
        // the rest of the record: Q5_K's fifth bits (8 lines), the scales and mins (4)
        if (sb < (Q5 ? 12 : 4) / 2) {
          prefetch_for_decode(ahead - 256 * sb + 2048 + 128 * sb);
          prefetch_for_decode(ahead - 256 * sb + 2048 + 128 * sb + 64);
        }
      }
      __m512i s[T];
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) s[j] = _mm512_setzero_si512();
      [[maybe_unused]] __m512i fifth;
      if constexpr (Q5) fifth = _mm512_load_si512(rec + 2048 + 64 * sb);
      ENGRAM_UNROLL
      for (int k = 0; k < 4; ++k) {
        const __m512i z = _mm512_load_si512(rec + 256 * sb + 64 * k);
        __m512i lo = _mm512_and_si512(z, m4);                        // elements 4k..
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);  // 16 + 4k..
        if constexpr (Q5) {  // bit k -> 16 for the low nibble, bit 4 + k for the high one
          const __m512i c16 = _mm512_set1_epi8(0x10);
          lo = _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi16(fifth, 4 - k), c16));
          hi = _mm512_or_si512(hi, _mm512_and_si512(_mm512_srli_epi16(fifth, k), c16));
        }
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const int8_t* xb = xq + j * a.cols + 256 * b + 32 * sb + 4 * k;
          s[j] = _mm512_dpbusd_epi32(s[j], lo, bcast_i32(xb));
          s[j] = _mm512_dpbusd_epi32(s[j], hi, bcast_i32(xb + 16));
        }
      }
      const __m512i sc = _mm512_cvtepu8_epi32(
          _mm_load_si128(reinterpret_cast<const __m128i*>(rec + kScales + 16 * sb)));
      ENGRAM_UNROLL
      for (int j = 0; j < T; ++j) isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(s[j], sc));
    }
    // The mins as i16 pairs (m, m), to meet each sub-block's two sums of 16 activations.
    __m512i mm[8];
    ENGRAM_UNROLL
    for (int sb = 0; sb < 8; ++sb) {
      const __m512i m = _mm512_cvtepu8_epi32(
          _mm_load_si128(reinterpret_cast<const __m128i*>(rec + kScales + 128 + 16 * sb)));
      mm[sb] = _mm512_or_si512(m, _mm512_slli_epi32(m, 16));
    }
    const __m512 dw = _mm512_cvtph_ps(load256(gd + 32 * b));
    const __m512 dmw = _mm512_cvtph_ps(load256(gd + 32 * b + 16));
    ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) {
      __m512i msum = _mm512_setzero_si512();
      ENGRAM_UNROLL
      for (int sb = 0; sb < 8; ++sb) {
        msum = _mm512_dpwssd_epi32(msum, mm[sb], bcast_i32(bs + j * nb * 16 + 16 * b + 2 * sb));
      }
      const __m512 dx = _mm512_set1_ps(xd[j * nb + b]);
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]), _mm512_mul_ps(dw, dx), acc[j]);
      acc[j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmw, dx), acc[j]);
    }
  }
  store_tile<T>(acc, y, ldy, r, t, mask);
}

template <int T>
inline void packed_q6_k_tile(const PackedWeights& p, const Acts& a, int64_t r, int64_t t, float* y,
                             int64_t ldy, __mmask16 mask) {
  const auto [gq, gd, nb, xq, xd, bs] = PackedTileInputs(p, a, r, t);  // gd: [nb, 16]
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  __m512 acc[T];
  ENGRAM_UNROLL
  for (int j = 0; j < T; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = gq + b * p.quant_bytes;
    __m512i isum[T];
    ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) isum[j] = _mm512_setzero_si512();
    for (int c = 0; c < 8; ++c) {
      if constexpr (T == 1) {
        const char* ahead = reinterpret_cast<const char*>(rec) + kDecodePrefetchAhead;
        ENGRAM_UNROLL
        for (int l = 0; l < 4; ++l) prefetch_for_decode(ahead + 256 * c + 64 * l);
        ENGRAM_UNROLL
        for (int l = 0; l < 2; ++l) prefetch_for_decode(ahead + 2048 + 128 * c + 64 * l);
        if (c < 4) prefetch_for_decode(ahead + 3072 + 64 * c);
      }
      // The chunk's two sub-blocks of 16: elements in the low nibbles, then the high ones.
      ENGRAM_UNROLL
      for (int half = 0; half < 2; ++half) {
        const int sub = 2 * c + half;
        __m512i s[T];
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const int16_t x16 = bs[j * nb * 16 + 16 * b + sub];
          s[j] = _mm512_set1_epi32(-32 * static_cast<int32_t>(x16));
        }
        ENGRAM_UNROLL
        for (int k = 0; k < 4; ++k) {
          const __m512i z = _mm512_load_si512(rec + 256 * c + 64 * k);
          __m512i hb = _mm512_load_si512(rec + 2048 + 128 * c + 64 * (k / 2));
          if (k % 2) hb = _mm512_srli_epi16(hb, 4);
          const __m512i q = half == 0
                                ? _mm512_or_si512(_mm512_and_si512(z, m4),
                                                  _mm512_and_si512(_mm512_slli_epi16(hb, 4), m30))
                                : _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(z, 4), m4),
                                                  _mm512_and_si512(_mm512_slli_epi16(hb, 2), m30));
          ENGRAM_UNROLL
          for (int j = 0; j < T; ++j) {
            const int8_t* xb = xq + j * a.cols + 256 * b + 32 * c + 16 * half + 4 * k;
            s[j] = _mm512_dpbusd_epi32(s[j], q, bcast_i32(xb));
          }
        }
        const __m512i sc = _mm512_cvtepi8_epi32(
            _mm_load_si128(reinterpret_cast<const __m128i*>(rec + 3072 + 16 * sub)));
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          isum[j] = _mm512_add_epi32(isum[j], _mm512_mullo_epi32(s[j], sc));
        }
      }
    }
    const __m512 dw = _mm512_cvtph_ps(load256(gd + 16 * b));
    ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) {
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[j]),
                               _mm512_mul_ps(dw, _mm512_set1_ps(xd[j * nb + b])), acc[j]);
    }
  }
  store_tile<T>(acc, y, ldy, r, t, mask);
}

enum class KQuant { Q4, Q5, Q6 };

template <KQuant K>
void tile_packed_k(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                   int64_t t1, float* y, int64_t ldy) {
  const PackedWeights& p = *w.packed;
  for_packed_tiles(p, r0, r1, t0, t1, [&]<int T>(int64_t r, int64_t t, __mmask16 mask) {
    if constexpr (K == KQuant::Q6) {
      packed_q6_k_tile<T>(p, a, r, t, y, ldy, mask);
    } else {
      packed_q45_k_tile<K == KQuant::Q5, T>(p, a, r, t, y, ldy, mask);
    }
  });
}

constexpr int kKR = 4, kKT = 2;
#else
constexpr int kKR = 2, kKT = 2;
#endif

// Q4_K, and Q5_K (Block = BlockQ5_K), whose fifth bits add 16 to the nibbles of their elements.
template <class Block>
void tile_q45_k(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                int64_t t1, float* y, int64_t ldy) {
  constexpr bool kQ5 = std::is_same_v<Block, BlockQ5_K>;
  const int64_t nb = a.nblk;
  for_tiles<kKR, kKT>(r0, r1, t0, t1, [&]<int R, int T>(int64_t r, int64_t t) {
    const Block* wb[R];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) wb[i] = row_blocks<Block>(w, r + i);
    const int8_t* xq = a.qs + t * a.cols;       // [T, cols]
    const float* xd = a.d + t * nb;             // [T, nb]
    const int16_t* bs = a.bsums + t * nb * 16;  // [T, nb, 16]
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[R][T];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      ENGRAM_UNROLL
      for (int i = 0; i < R; ++i) {
        const Block& blk = wb[i][b];
        alignas(16) uint8_t sc[8], m[8];
        unpack_q4_k_scales(blk.scales, sc, m);
        // mins as i16 pairs [m0 m0 m1 m1 ...] to meet the per-16 activation sums.
        const __m128i mv = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mv, mv));
        __m256i isum[T];
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) isum[j] = _mm256_setzero_si256();
        [[maybe_unused]] __m256i qh;
        if constexpr (kQ5) qh = load256(blk.qh);
        ENGRAM_UNROLL
        for (int c = 0; c < 4; ++c) {
          const __m256i raw = load256(blk.qs + 32 * c);
          __m256i lo = _mm256_and_si256(raw, m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
          if constexpr (kQ5) {  // bit 2c of qh[l] for the low sub-block, bit 2c + 1 the high
            const __m256i one = _mm256_set1_epi8(1);
            const __m256i b0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);
            const __m256i b1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
            hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
          }
          const __m256i sc_lo = _mm256_set1_epi16(sc[2 * c]);
          const __m256i sc_hi = _mm256_set1_epi16(sc[2 * c + 1]);
          ENGRAM_UNROLL
          for (int j = 0; j < T; ++j) {
            const int8_t* x = xq + j * a.cols + 256 * b + 64 * c;
            isum[j] = madd_acc(isum[j], _mm256_maddubs_epi16(lo, load256(x)), sc_lo);
            isum[j] = madd_acc(isum[j], _mm256_maddubs_epi16(hi, load256(x + 32)), sc_hi);
          }
        }
        const float d = half_to_float(blk.d);
        const float dmin = half_to_float(blk.dmin);
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const float dx = xd[j * nb + b];
          const __m256i msum = _mm256_madd_epi16(mins16, load256(bs + j * nb * 16 + 16 * b));
          acc[i][j] =
              _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * dx), acc[i][j]);
          acc[i][j] =
              _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dx), acc[i][j]);
        }
      }
    }
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) y[(t + j) * ldy + r + i] = hsum8(acc[i][j]);
  });
}

void tile_q6_k(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0, int64_t t1,
               float* y, int64_t ldy) {
  const int64_t nb = a.nblk;
  for_tiles<kKR, kKT>(r0, r1, t0, t1, [&]<int R, int T>(int64_t r, int64_t t) {
    const BlockQ6_K* wb[R];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) wb[i] = row_blocks<BlockQ6_K>(w, r + i);
    const int8_t* xq = a.qs + t * a.cols;       // [T, cols]
    const float* xd = a.d + t * nb;             // [T, nb]
    const int16_t* bs = a.bsums + t * nb * 16;  // [T, nb, 16]
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    __m256 acc[R][T];
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      ENGRAM_UNROLL
      for (int i = 0; i < R; ++i) {
        const BlockQ6_K& blk = wb[i][b];
        __m256i isum[T];
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) isum[j] = _mm256_setzero_si256();
        ENGRAM_UNROLL
        for (int h = 0; h < 2; ++h) {
          const __m256i ql0 = load256(blk.ql + 64 * h);
          const __m256i ql1 = load256(blk.ql + 64 * h + 32);
          const __m256i qh = load256(blk.qh + 32 * h);
          // The four 32-element chunks of this half, as 6-bit values 0..63.
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(ql0, m4),
                              _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
              _mm256_or_si256(_mm256_and_si256(ql1, m4),
                              _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                              _mm256_and_si256(qh, m30)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                              _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
          };
          ENGRAM_UNROLL
          for (int c = 0; c < 4; ++c) {
            // Each chunk spans two 16-element sub-blocks with their own scales.
            const int s0 = blk.scales[8 * h + 2 * c], s1 = blk.scales[8 * h + 2 * c + 1];
            const __m256i scv = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_set1_epi16(static_cast<int16_t>(s0))),
                _mm_set1_epi16(static_cast<int16_t>(s1)), 1);
            ENGRAM_UNROLL
            for (int j = 0; j < T; ++j) {
              const int8_t* x = xq + j * a.cols + 256 * b + 128 * h + 32 * c;
              isum[j] = madd_acc(isum[j], _mm256_maddubs_epi16(q[c], load256(x)), scv);
            }
          }
        }
        // Remove the +32 offset: 32 * sum_j scale_j * sum(x in sub-block j).
        const __m256i sc16 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
        const float d = half_to_float(blk.d);
        ENGRAM_UNROLL
        for (int j = 0; j < T; ++j) {
          const __m256i off = _mm256_madd_epi16(sc16, load256(bs + j * nb * 16 + 16 * b));
          const __m256i tot = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(off, 5));
          acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(d * xd[j * nb + b]),
                                      acc[i][j]);
        }
      }
    }
    ENGRAM_UNROLL
    for (int i = 0; i < R; ++i) ENGRAM_UNROLL
    for (int j = 0; j < T; ++j) y[(t + j) * ldy + r + i] = hsum8(acc[i][j]);
  });
}

}  // namespace

const KernelTable& ENGRAM_KERNEL_TABLE_FN() {
  static const KernelTable t = {
    quantize_acts_32,
    quantize_acts_256,
    tile_float<F32W>,
    tile_float<F16W>,
    tile_float<BF16W>,
#if ENGRAM_VNNI
    tile_q8_0_zmm,
    tile_q4_0_zmm,
#else
    tile_q8_0,
    tile_q4_0,
#endif
    tile_q45_k<BlockQ4_K>,
    tile_q45_k<BlockQ5_K>,
    tile_q6_k,
#if ENGRAM_VNNI
    tile_packed<false>,
    tile_packed<true>,
    tile_packed_k<KQuant::Q4>,
    tile_packed_k<KQuant::Q5>,
    tile_packed_k<KQuant::Q6>,
#else
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
#endif
  };
  return t;
}

}  // namespace engram
