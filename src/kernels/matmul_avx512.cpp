// AVX-512 (F/BW/VL/DQ/VNNI) matmul kernels (see matmul_simd_impl.h); reached only through
// kernels_avx512() after isa_available(Isa::Avx512).
// GCC 12 reports false "may be used uninitialized" warnings from inside avx512fintrin.h
// (its _mm512_undefined_* placeholders) wherever those intrinsics are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define ENGRAM_KERNEL_TABLE_FN kernels_avx512
#include "kernels/matmul_simd_impl.h"
