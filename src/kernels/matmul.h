// Matrix products of stored weights with f32 activations: Y = X * W^T.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engram/tensor_type.h"

namespace engram {

class ThreadPool;
struct PackedWeights;  // kernels/matmul_internal.h

// A row-major weight matrix as stored in GGUF: `rows` rows of `cols` elements of `type`.
// (A GGUF tensor with ne = [cols, rows].)
struct WeightMatrix {
  TensorType type = TensorType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
  // Optional copy of the rows in the layout of this CPU's fastest kernel for the type, made
  // once by prepack_weights(). Kernels that know the layout read it instead of `data`; the
  // others (and matmul_reference) keep reading `data`, which must stay valid.
  std::shared_ptr<const PackedWeights> packed;
};

// Repacks w's rows for the fastest kernel on this CPU when it has a packed layout for w's
// type (today Q8_0, Q4_0, Q4_K, Q5_K and Q6_K on AVX-512 VNNI: rows interleaved 16 at a
// time; see PackedWeights in kernels/matmul_internal.h); otherwise leaves w as it is. Costs
// one more copy of the matrix (about the same number of bytes); call once at load.
void prepack_weights(WeightMatrix& w);

// x: [n_tok, cols] f32, row-major. y: [n_tok, rows] f32, row-major.
// Dispatches at run time to the best kernel this CPU supports (AVX-512, AVX2/FMA, scalar).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool);

// Several matrices applied to the same activations (Q/K/V, FFN gate/up): y[m] = X * w[m]^T.
// The activations are prepared (quantized) once per layout and all rows of all matrices go
// out in one parallel region. Types may differ; the row lengths must match. Each y[m] equals
// what matmul(w[m], ...) writes, bit for bit.
void matmul_many(const WeightMatrix* w, float* const* y, int count, const float* x, int64_t n_tok,
                 ThreadPool& pool);

// The reference: dequantize each row to f32 and accumulate in double. Slow; for tests.
void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tok, float* y);

// Name of the kernel family matmul() picked on this machine ("avx512", "avx2", "scalar").
const char* matmul_isa();

}  // namespace engram
