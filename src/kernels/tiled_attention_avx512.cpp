// AVX-512 tiled attention kernel (see tiled_attention_simd_impl.h); reached only through
// attention_with_isa after isa_available(Isa::Avx512).
// GCC 12 reports false "may be used uninitialized" warnings from inside avx512fintrin.h
// (its _mm512_undefined_* placeholders) wherever those intrinsics are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define ENGRAM_TILE_FN attention_tile_avx512
#include "kernels/tiled_attention_simd_impl.h"
