// Matrix products of stored weights with f32 activations: Y = X * W^T.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engram/tensor_type.h"

namespace engram {

class ThreadPool;

// A row-major weight matrix as stored in GGUF: `rows` rows of `cols` elements of `type`.
// (A GGUF tensor with ne = [cols, rows].)
struct WeightMatrix {
  TensorType type = TensorType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
};

// x: [n_tok, cols] f32, row-major. y: [n_tok, rows] f32, row-major.
// Dispatches at run time to the best kernel this CPU supports (AVX-512, AVX2/FMA, scalar).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool);

// The reference: dequantize each row to f32 and accumulate in double. Slow; for tests.
void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tok, float* y);

// Name of the kernel family matmul() picked on this machine ("avx512", "avx2", "scalar").
const char* matmul_isa();

}  // namespace engram
