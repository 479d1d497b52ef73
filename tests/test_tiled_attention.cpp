// The tiled attention kernel: each SIMD tile kernel against the scalar tile over random shapes,
// masks, strides and key ranges; attention() per ISA (query blocks, and split keys for a few
// queries) against the double-precision reference over random
// shapes of the plans the memory policies make (a block after a cache of any length, windows
// shorter than the block, GQA ratios up to 12, head sizes with SIMD tails, tiles cut anywhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engram/thread_pool.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/tiled_attention.h"
#include "random_vectors.h"

namespace engram {
namespace {

using testing_util::randn;

// One random tile: `rows` rows, keys [j_begin, n_keys) with padded strides, row r seeing
// limit[r] keys (non-decreasing in steps of one query of `heads` rows, the last at n_keys).
struct TileCase {
  int rows, heads, hd;
  int64_t n_keys;
  int64_t pad;
  int64_t j_begin = 0;
};

struct TileInputs {
  std::vector<float> qt, q_rows, k, v;
  std::vector<int64_t> limit;
  AttentionTile t;
  TileInputs(const TileCase& c, std::mt19937& rng)
      : qt(size_t(c.hd) * kTileRows, 0.0f),
        q_rows(size_t(c.rows) * c.hd),
        k(randn(size_t(c.n_keys) * (c.hd + c.pad), rng)),
        v(randn(size_t(c.n_keys) * (c.hd + c.pad), rng)),
        limit(kTileRows, 0) {
    const auto q = randn(size_t(c.rows) * c.hd, rng);
    const float scale = 1.0f / std::sqrt(float(c.hd));
    const int queries = (c.rows + c.heads - 1) / c.heads;
    for (int r = 0; r < c.rows; ++r) {
      for (int d = 0; d < c.hd; ++d) {
        q_rows[size_t(r) * c.hd + d] = q[size_t(r) * c.hd + d] * scale;
        qt[size_t(d) * kTileRows + r] = q_rows[size_t(r) * c.hd + d];
      }
      limit[r] = std::max<int64_t>(0, c.n_keys - (queries - 1 - r / c.heads));
    }
    t.qt = qt.data();
    t.q = q_rows.data();
    t.k = k.data();
    t.v = v.data();
    t.k_stride = t.v_stride = c.hd + c.pad;
    t.hd = c.hd;
    t.rows = c.rows;
    t.limit = limit.data();
    t.j_begin = c.j_begin;
    t.j_end = limit[c.rows - 1];
    t.n_full = limit[0];
  }
};

// A tile's result: O, m, l.
struct TileState {
  std::vector<float> o, m, l;
  explicit TileState(int hd) : o(size_t(kTileRows) * hd, -7.0f), m(kTileRows), l(kTileRows) {}
  void point(AttentionTile& t) {
    t.o = o.data();
    t.m = m.data();
    t.l = l.data();
  }
};

TEST(TiledAttention, SimdTilesMatchScalarTile) {
  std::mt19937 rng(21);
  std::vector<std::pair<const char*, AttentionTileFn>> simd;
  if (isa_available(Isa::Avx2)) simd.emplace_back("avx2", attention_tile_avx2);
  if (isa_available(Isa::Avx512)) simd.emplace_back("avx512", attention_tile_avx512);
  ASSERT_FALSE(simd.empty()) << "this CPU runs no SIMD tile kernel; nothing to compare";
  std::vector<TileCase> cases = {
      {63, 3, 64, 4096, 0},      // 21 queries x GQA 3, the bench models' shape
      {64, 4, 64, 517, 0},       // GQA 4, keys not a multiple of the tile
      {4, 4, 64, 1, 0},          // decode of the first token
      {3, 3, 128, 100, 8},       // decode, head_dim 128, padded rows
      {3, 3, 64, 700, 0, 256},   // decode, one range of split keys
      {12, 3, 64, 300, 0, 288},  // 4 queries, a range that the first ones see only in part
      {17, 1, 12, 40, 1},        // MHA, head_dim with no whole AVX-512 vector
      {24, 8, 36, 33, 0},        // one key past a tile, head_dim with an 8-wide and scalar tail
      {10, 2, 16, 3, 0},         // more queries than keys: the first rows see nothing
  };
  for (int extra = 0; extra < 12; ++extra) {  // random shapes
    const int heads = 1 + int(rng() % 8);
    const int rows = std::min(kTileRows, heads * (1 + int(rng() % 16)));
    const int64_t n_keys = 1 + int64_t(rng() % 300);
    cases.push_back({rows, heads, 8 * (1 + int(rng() % 12)) + int(rng() % 3), n_keys,
                     int64_t(rng() % 5), extra % 3 == 0 ? int64_t(rng() % n_keys) / 32 * 32 : 0});
  }
  for (const TileCase& c : cases) {
    TileInputs in(c, rng);
    AttentionTile t = in.t;
    TileState ref(c.hd), got(c.hd);
    ref.point(t);
    attention_tile_scalar(t);
    for (const auto& [name, fn] : simd) {
      got = TileState(c.hd);
      got.point(t);
      fn(t);
      for (int r = 0; r < c.rows; ++r) {
        const std::string where = std::string(name) + " rows=" + std::to_string(c.rows) +
                                  " hd=" + std::to_string(c.hd) +
                                  " keys=" + std::to_string(c.j_begin) + ".." +
                                  std::to_string(c.n_keys) + " r=" + std::to_string(r);
        if (in.limit[r] <= c.j_begin) {  // the row sees no key of the range
          EXPECT_EQ(got.l[r], 0.0f) << where;
          EXPECT_EQ(got.m[r], kTileMasked) << where;
          for (int d = 0; d < c.hd; ++d) ASSERT_EQ(got.o[size_t(r) * c.hd + d], 0.0f) << where;
          continue;
        }
        // The softmax of the range: log normaliser m + log l, output O / l.
        ASSERT_NEAR(got.m[r] + std::log(got.l[r]), ref.m[r] + std::log(ref.l[r]),
                    2e-5 * std::max(1.0f, std::abs(ref.m[r])))
            << where;
        for (int d = 0; d < c.hd; ++d) {
          ASSERT_NEAR(got.o[size_t(r) * c.hd + d] / got.l[r],
                      ref.o[size_t(r) * c.hd + d] / ref.l[r], 2e-5)
              << where << " d=" << d;
        }
      }
    }
  }
}

// attention() per ISA against attention_reference over random shapes: a block of n_q queries
// after `past` cached keys (negative: a window shorter than the block, whose first queries see
// fewer keys or none), any GQA ratio; the result does not depend on the thread count.
TEST(TiledAttention, MatchesReferenceOverRandomShapes) {
  std::mt19937 rng(22);
  ThreadPool pool1(1), pool2(2), pool3(3);
  const int ratios[] = {1, 2, 3, 4, 8, 12};
  for (int iter = 0; iter < 24; ++iter) {
    const int group = ratios[rng() % 6];
    const int n_head_kv = 1 + int(rng() % 3);
    const int hd = iter % 4 == 0 ? 4 + int(rng() % 40) : 16 * (1 + int(rng() % 8));
    const int n_q = 1 + int(rng() % (iter % 3 == 0 ? 3 : 90));
    const int64_t past = int64_t(rng() % 400) - 20;
    const int64_t n_kv = std::max<int64_t>(1, past + n_q);
    const int64_t pad = rng() % 2 ? 0 : 1 + rng() % 7;
    const int64_t row = int64_t{n_head_kv} * hd + pad;
    const int n_head = group * n_head_kv;
    auto q = randn(size_t(n_q) * n_head * hd, rng);
    auto k = randn(size_t(n_kv) * row, rng), v = randn(size_t(n_kv) * row, rng);
    std::vector<float> ref(q.size()), out(q.size()), out1(q.size());
    AttentionArgs a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.k_stride = a.v_stride = row;
    a.n_q = n_q;
    a.n_kv = n_kv;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.head_dim = hd;
    a.scale = 1.0f / std::sqrt(float(hd));
    a.out = ref.data();
    attention_reference(a);
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
      if (!isa_available(isa)) continue;
      a.out = out1.data();
      attention_with_isa(isa, a, pool1);
      for (ThreadPool* pool : {&pool2, &pool3}) {
        std::fill(out.begin(), out.end(), -7.0f);
        a.out = out.data();
        attention_with_isa(isa, a, *pool);
        ASSERT_EQ(out, out1) << isa_name(isa) << ": depends on the thread count";
      }
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_NEAR(out[i], ref[i], 2e-5)
            << isa_name(isa) << " n_q=" << n_q << " n_kv=" << n_kv << " heads=" << n_head << "/"
            << n_head_kv << " hd=" << hd << " i=" << i;
      }
    }
  }
}

}  // namespace
}  // namespace engram
