// key_scores() for AVX2/FMA CPUs (see key_scores_impl.h).
#define ENGRAM_KEY_SCORES_FN key_scores_avx2
#include "kernels/key_scores_impl.h"
