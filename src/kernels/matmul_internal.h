// Internals of matmul shared by the per-ISA kernel files and the tests: the activation
// formats, the kernel tables and a way to force an ISA.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "kernels/matmul.h"

namespace engram {

enum class Isa { Scalar, Avx2, Avx512 };

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // the CPU (and this build) can run it
Isa best_isa();

// matmul() with a chosen kernel family; throws engram::Error when the CPU lacks it.
void matmul_with_isa(Isa isa, const WeightMatrix& w, const float* x, int64_t n_tok, float* y,
                     ThreadPool& pool);

void matmul_many_with_isa(Isa isa, const WeightMatrix* w, float* const* y, int count,
                          const float* x, int64_t n_tok, ThreadPool& pool);

// Activations of one matmul call, prepared once and shared by all threads.
//  - float weights (F32/F16/BF16) read x directly;
//  - Q8_0/Q4_0 read x quantized to int8 in blocks of 32: scale d = amax/127, and
//    s = d * sum(q) (Q4_0 stores q+8, so its dot product needs sum(q) to remove the offset);
//  - Q4_K/Q5_K/Q6_K read int8 blocks of 256 with one scale and the sums of each 16 (the K-quant
//    mins and 6-bit offsets are applied through these sums).
struct Acts {
  int64_t cols = 0;
  const float* x = nullptr;        // [n_tok, cols]
  const int8_t* qs = nullptr;      // [n_tok, cols]
  const float* d = nullptr;        // [n_tok, nblk]
  const float* s = nullptr;        // [n_tok, nblk]     (blocks of 32)
  const int16_t* bsums = nullptr;  // [n_tok, nblk*16]  (blocks of 256)
  // Blocks of 32: -8 * sum(q) and -128 * sum(q), the start values of a block's integer dot
  // product with packed Q4_0 / Q8_0 rows (stored unsigned, as q + 8 and q + 128).
  const int32_t* off_q4 = nullptr;  // [n_tok, nblk]
  const int32_t* off_q8 = nullptr;  // [n_tok, nblk]
  int64_t nblk = 0;                 // blocks per token row
};

// Quantized rows interleaved 16 at a time for vpdpbusd (prepack_weights()). Rows are in
// groups of 16 (the last one padded with zero rows); a group holds one record per block (32
// elements for Q8_0/Q4_0, a super-block of 256 for the K-quants), then, after all records, the
// f16 scales of every block. The quants of 32 elements of the 16 rows take 4 or 8 vectors of
// 64 bytes; vector k holds bytes 4k..4k+3 of row 0, then of row 1, ... row 15, so a 4-byte
// broadcast of the activations against one vector advances 16 rows' dot products.
//  - Q8_0: record = 8 vectors, bytes stored as q + 128 (unsigned); scales [block][16] f16.
//  - Q4_0: record = 4 vectors of nibbles as in the file (byte j: low nibble element j, high
//    nibble element j + 16, both q + 8); scales [block][16] f16.
//  - Q4_K: record = the 8 sub-blocks of 32, each 4 vectors of nibbles laid out as Q4_0's
//    (2048 bytes), then the sub-blocks' 6-bit scales as u8 [8][16 rows] (128 bytes), then
//    their mins as u8 [8][16] (128 bytes); scales [super-block][d x 16, dmin x 16] f16.
//  - Q5_K: as Q4_K, with the sub-blocks' fifth bits between the nibbles and the scales, one
//    64-byte plane per sub-block (512 bytes): bit k of byte 4i + j is that of the element in
//    the low nibble of the sub-block's vector k at byte 4i + j, bit 4 + k the high one's.
//  - Q6_K: record = the low 4 bits of the 8 chunks of 32, as Q4_K's nibbles (2048 bytes),
//    then their high 2 bits, 1024 bytes: those of byte 4i + j of chunk c's vector v are in
//    nibble v % 2 of byte 4i + j of high-bit vector 2c + v / 2 (bits 0-1 for the element in
//    the low nibble, bits 2-3 for the one in the high nibble); then the 16 sub-block scales as i8
//    [16][16 rows] (256 bytes); scales [super-block][d x 16] f16.
struct PackedWeights {
  static constexpr int kRows = 16;
  TensorType type = TensorType::Q8_0;
  int64_t groups = 0;        // ceil(rows / 16)
  int64_t quant_bytes = 0;   // one block's record in a group: 512 (Q8_0), 256 (Q4_0),
                             // 2304 (Q4_K), 2816 (Q5_K), 3328 (Q6_K)
  int64_t scale_offset = 0;  // offset of the scales from the group's start
  int64_t group_bytes = 0;   // distance between groups (a multiple of 64)
  std::unique_ptr<uint8_t, decltype(&std::free)> data{nullptr, &std::free};  // 64-byte aligned

  const uint8_t* group(int64_t g) const { return data.get() + g * group_bytes; }
};

// The packed layout kernel families use (none for scalar/AVX2); prepack_weights() builds it
// for best_isa().
bool packs_type(Isa isa, TensorType t);
std::shared_ptr<const PackedWeights> pack_weights(const WeightMatrix& w);

// Computes y[t * ldy + r] for r in [r0, r1), t in [t0, t1).
using TileFn = void (*)(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                        int64_t t1, float* y, int64_t ldy);

struct KernelTable {
  // One activation row of n elements (n a multiple of 32 / 256). Every ISA must produce the
  // same bytes as the scalar version (round to nearest even), so results differ only by
  // float summation order.
  void (*quantize_acts_32)(const float* x, int64_t n, int8_t* qs, float* d, float* s);
  void (*quantize_acts_256)(const float* x, int64_t n, int8_t* qs, float* d, int16_t* bsums);
  TileFn f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k;
  // Kernels over PackedWeights (w.packed); null when the family has no packed layout. Row
  // ranges start at a multiple of 16.
  TileFn q8_0_packed = nullptr, q4_0_packed = nullptr, q4_k_packed = nullptr, q5_k_packed = nullptr,
         q6_k_packed = nullptr;
};

const KernelTable& kernels_scalar();
const KernelTable& kernels_avx2();    // call only if isa_available(Isa::Avx2)
const KernelTable& kernels_avx512();  // call only if isa_available(Isa::Avx512)

}  // namespace engram
