// Internals of matmul shared by the per-ISA kernel files and the tests: the activation
// formats, the kernel tables and a way to force an ISA.
#pragma once

#include <cstdint>

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
//  - Q4_K/Q6_K read int8 blocks of 256 with one scale and the sums of each 16 (the K-quant
//    mins and 6-bit offsets are applied through these sums).
struct Acts {
  int64_t cols = 0;
  const float* x = nullptr;        // [n_tok, cols]
  const int8_t* qs = nullptr;      // [n_tok, cols]
  const float* d = nullptr;        // [n_tok, nblk]
  const float* s = nullptr;        // [n_tok, nblk]     (blocks of 32)
  const int16_t* bsums = nullptr;  // [n_tok, nblk*16]  (blocks of 256)
  int64_t nblk = 0;                // blocks per token row
};

// Computes y[t * ldy + r] for r in [r0, r1), t in [t0, t1).
using TileFn = void (*)(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                        int64_t t1, float* y, int64_t ldy);

struct KernelTable {
  // One activation row of n elements (n a multiple of 32 / 256). Every ISA must produce the
  // same bytes as the scalar version (round to nearest even), so results differ only by
  // float summation order.
  void (*quantize_acts_32)(const float* x, int64_t n, int8_t* qs, float* d, float* s);
  void (*quantize_acts_256)(const float* x, int64_t n, int8_t* qs, float* d, int16_t* bsums);
  TileFn f32, f16, bf16, q8_0, q4_0, q4_k, q6_k;
};

const KernelTable& kernels_scalar();
const KernelTable& kernels_avx2();    // call only if isa_available(Isa::Avx2)
const KernelTable& kernels_avx512();  // call only if isa_available(Isa::Avx512)

}  // namespace engram
