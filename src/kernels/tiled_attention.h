// Tiled (flash-style) attention: a block of query rows -- the query heads that share one kv
// head, over a run of consecutive queries -- against the keys in tiles, with an online softmax
// (a running max and sum per row), so no row of scores longer than one tile is ever stored and
// each K/V tile is read once for all the block's rows. attention() (ops.h) runs on it.
#pragma once

#include <cstdint>

#include "kernels/matmul_internal.h"
#include "kernels/ops.h"

namespace engram {

inline constexpr int kTileRows = 64;  // query rows of one task (padded to this in the buffers)
inline constexpr int kTileKeys = 32;  // keys per step of the online softmax

// One task: rows r < rows against the keys [j_begin, j_end) of one kv head. Row r sees the keys
// j < limit[r] (causal masking; rows of one query share a limit); every row sees the keys below
// n_full, so tiles there skip the mask. The result is the softmax's state over those keys, to be
// normalised (or merged with other key ranges' states first): the running max m, the sum l of
// exp(score - m) and the unnormalised output O = sum_j exp(score_j - m) v_j.
struct AttentionTile {
  // [hd][kTileRows]: the rows' queries times the scale, transposed; columns from `rows` up to
  // the next multiple of 16 are zero.
  const float* qt = nullptr;
  const float* q = nullptr;  // [rows][hd]: the same queries times the scale, row by row
  const float* k = nullptr;  // key j of this kv head at k + j * k_stride
  const float* v = nullptr;  // value j at v + j * v_stride
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  int hd = 0;
  int rows = 0;                    // 1..kTileRows
  const int64_t* limit = nullptr;  // [kTileRows] keys each row sees (0 for padding rows)
  int64_t j_begin = 0;             // the key range; j_end at most the largest limit
  int64_t j_end = 0;
  int64_t n_full = 0;  // the smallest limit of a real row
  float* o = nullptr;  // [tile_o_rows(rows)][hd] out: O (rows past `rows` are scratch)
  float* m = nullptr;  // [kTileRows] out: m (kTileMasked for a row that saw no key)
  float* l = nullptr;  // [kTileRows] out: l (0 for a row that saw no key)
};

// Rows of O a tile writes: the value loop runs over 4 rows at a time.
inline constexpr int tile_o_rows(int rows) {
  return (rows + 3) / 4 * 4;
}

// Below every real score: a masked score, and the running max before the first key.
inline constexpr float kTileMasked = -1e30f;

using AttentionTileFn = void (*)(const AttentionTile& t);

// The same algorithm three times: plain C++ (the reference the SIMD versions are tested
// against), AVX2/FMA (8 rows or dims per vector), AVX-512 (16).
void attention_tile_scalar(const AttentionTile& t);
void attention_tile_avx2(const AttentionTile& t);    // only after isa_available(Isa::Avx2)
void attention_tile_avx512(const AttentionTile& t);  // only after isa_available(Isa::Avx512)

// attention() with the tile kernel (and, for a.probs, the score primitives) of one ISA;
// throws engram::Error when the CPU lacks it.
void attention_with_isa(Isa isa, const AttentionArgs& a, ThreadPool& pool);

}  // namespace engram
