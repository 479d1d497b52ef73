// AVX2/FMA tiled attention kernel (see tiled_attention_simd_impl.h); reached only through
// attention_with_isa after isa_available(Isa::Avx2).
#define ENGRAM_TILE_FN attention_tile_avx2
#include "kernels/tiled_attention_simd_impl.h"
