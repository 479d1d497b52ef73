// AVX2/FMA/F16C matmul kernels (see matmul_simd_impl.h). Compiled with -mavx2 -mfma -mf16c;
// reached only through kernels_avx2() after isa_available(Isa::Avx2).
#define ENGRAM_KERNEL_TABLE_FN kernels_avx2
#include "kernels/matmul_simd_impl.h"
