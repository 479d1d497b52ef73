// Tensor element types as numbered by GGUF/ggml, with their block geometry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace engram {

// Values are the ggml type ids stored in GGUF tensor infos.
enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TensorTypeInfo {
  const char* name;    // "q4_K", as ggml spells it
  int64_t block_size;  // elements per block
  size_t block_bytes;  // bytes per block
  bool supported;      // engram can compute with it (dequantize + matmul)
};

// Geometry of a raw ggml type id, or nullptr for ids this build does not know.
const TensorTypeInfo* tensor_type_info(uint32_t type_id);
const TensorTypeInfo& tensor_type_info(TensorType type);

// "q4_K" or "unknown(77)".
std::string tensor_type_name(uint32_t type_id);

// Bytes taken by a row of n elements; throws engram::Error when n is not a multiple of the
// block size.
size_t tensor_row_bytes(TensorType type, int64_t n);

// Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k" (case-insensitive).
TensorType parse_tensor_type(const std::string& name);

}  // namespace engram
