// Conversions between f32 and the stored weight types, following the GGUF/ggml block
// layouts bit for bit. These are the scalar references the SIMD kernels are tested against.
#pragma once

#include <cstdint>

#include "engram/tensor_type.h"

namespace engram {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);  // round to nearest even

// n must be a multiple of the type's block size. Supported: F32, F16, BF16, Q8_0, Q4_0,
// Q4_K, Q5_K, Q6_K; other types throw engram::Error naming the type.
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);
void quantize_row(TensorType type, const float* src, void* dst, int64_t n);

}  // namespace engram
