// Dot products of a few queries with very many keys: how memory policies score their stored
// representative keys (one query block against every unit in memory, at every block).
//
// Keys are int8 with one f32 scale per key, stored in groups of 16 keys laid out dimension by
// dimension ([dim][16] bytes per group), so a query's products with 16 keys are 16-wide
// multiply-adds with no horizontal sums, and the matrix costs dim + 4 bytes per key to stream.
#pragma once

#include <cstdint>
#include <vector>

namespace engram {

class RecordWriter;
class RecordReader;

class KeyMatrix {
 public:
  static constexpr int kGroup = 16;

  explicit KeyMatrix(int dim = 0) : dim_(dim) {}
  int dim() const { return dim_; }
  int64_t rows() const { return rows_; }
  // Appends one key of dim() floats (quantized: scale = max |x| / 127).
  void append(const float* key);
  void clear();
  uint64_t bytes() const { return q_.capacity() + scale_.capacity() * sizeof(float); }

  const int8_t* group_data(int64_t g) const { return q_.data() + g * int64_t{kGroup} * dim_; }
  const float* group_scales(int64_t g) const { return scale_.data() + g * kGroup; }
  // The key as stored (dequantized), for tests and references.
  void row(int64_t r, float* out) const;
  // Saved sessions: the rows as stored, and back (exactly `rows` of them, this dim()).
  void save(RecordWriter& out) const;
  void load(RecordReader& in, int64_t rows);

 private:
  int dim_ = 0;
  int64_t rows_ = 0;
  std::vector<int8_t> q_;     // [groups][dim][kGroup]
  std::vector<float> scale_;  // [groups * kGroup]
};

// out[i * (g1 - g0) * 16 + j] = query_i . key_(g0 * 16 + j) for the keys of groups [g0, g1)
// (rows past rows() in the last group score 0). queries: [n_q][dim] f32. Uses AVX2 when the CPU
// has it.
void key_scores(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                float* out);

// The two builds key_scores() chooses between (tests call each): any x86-64, and AVX2/FMA (only
// after isa_available(Isa::Avx2)).
void key_scores_portable(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                         float* out);
void key_scores_avx2(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                     float* out);

// The same in plain double-precision loops, for tests.
void key_scores_reference(const KeyMatrix& k, const float* queries, int n_q, int64_t g0, int64_t g1,
                          float* out);

}  // namespace engram
