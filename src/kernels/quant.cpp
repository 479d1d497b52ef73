// Scalar conversions and (de)quantization in the ggml block formats. Dequantization follows
// ggml's arithmetic operation for operation so results are bit-identical; quantization of
// Q8_0/Q4_0 follows ggml's reference rules, Q4_K/Q6_K use a simpler (non-searching) rule that
// produces valid blocks with somewhat larger error than llama.cpp's quantizer.
#include "kernels/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "engram/error.h"
#include "kernels/blocks.h"
#include "util/cpu_features.h"

namespace engram {

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in f32.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) {
    // Inf, or NaN made quiet (as F16C's vcvtph2ps does, so scalar and SIMD rows agree).
    const uint32_t quiet = mant != 0 ? 0x400000u : 0u;
    return std::bit_cast<float>(sign | 0x7f800000u | quiet | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) {  // NaN: keep it quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf (and inf itself)
  if (ax >= 0x38800000u) {                       // normal half (>= 2^-14)
    const uint32_t exp = (ax >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | ((ax & 0x7fffffu) >> 13);
    const uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
    return static_cast<uint16_t>(sign | h);
  }
  if (ax <= 0x33000000u) return sign;  // <= 2^-25: rounds (ties to even) to zero
  // Subnormal half: units of 2^-24.
  const uint32_t e = ax >> 23;
  const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// quant_avx2.cpp
void fp16_to_fp32_row_f16c(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16_row_f16c(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32_row_avx2(const uint16_t* src, float* dst, int64_t n);

namespace {

bool has_avx2_f16c() {
  static const bool yes = cpu_features().avx2 && cpu_features().f16c;
  return yes;
}

int64_t block_size_of(TensorType type) {
  switch (type) {
    case TensorType::F32:
    case TensorType::F16:
    case TensorType::BF16:
      return 1;
    case TensorType::Q8_0:
    case TensorType::Q4_0:
      return kQK;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      return kQKK;
    default:
      throw Error("quant: tensor type id " + std::to_string(static_cast<uint32_t>(type)) +
                  " is not supported (supported: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)");
  }
}

void check_row(TensorType type, int64_t n) {
  const int64_t bs = block_size_of(type);
  if (n < 0 || n % bs != 0) {
    throw Error("quant: row length " + std::to_string(n) + " is not a multiple of the block size " +
                std::to_string(bs) + " of type id " + std::to_string(static_cast<uint32_t>(type)));
  }
}

inline int nearest_int(float v) {
  return static_cast<int>(std::nearbyint(v));
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;  // max: the signed value of largest magnitude
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      // Truncation of v + 8.5 (v >= -8 here) is ggml's rounding rule; 16 clamps to 15.
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// The super-block header of Q4_K / Q5_K from 256 values: d, dmin, the packed 6-bit scales and
// mins, and each value's level q in 0..levels (value ~= d * sc * q - dmin * m).
void quantize_k_header(const float* x, int levels, uint16_t& d16, uint16_t& dmin16, uint8_t* scales,
                       uint8_t* q) {
  float scale[8], min[8];  // per sub-block: value ~= scale * q - min
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float lo = 0.0f, hi = 0.0f;  // lo <= 0 keeps the min non-negative, as the format needs
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    scale[j] = (hi - lo) / static_cast<float>(levels);
    min[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, min[j]);
  }
  d16 = fp32_to_fp16(max_scale / 63.0f);
  dmin16 = fp32_to_fp16(max_min / 63.0f);
  const float d = fp16_to_fp32(d16);
  const float dmin = fp16_to_fp32(dmin16);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    // Round the sub-block scale up so the largest value still fits in `levels` steps.
    sc[j] = d > 0.0f ? static_cast<uint8_t>(
                           std::clamp(static_cast<int>(std::ceil(scale[j] / d - 1e-4f)), 0, 63))
                     : 0;
    m[j] = dmin > 0.0f ? static_cast<uint8_t>(std::clamp(nearest_int(min[j] / dmin), 0, 63)) : 0;
  }
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    const float ds = d * sc[j];
    const float dm = dmin * m[j];
    for (int l = 0; l < 32; ++l) {
      const int v = ds != 0.0f ? nearest_int((x[32 * j + l] + dm) / ds) : 0;
      q[32 * j + l] = static_cast<uint8_t>(std::clamp(v, 0, levels));
    }
  }
}

// The low nibbles of 256 levels in Q4_K/Q5_K order: chunk c of 32 bytes holds sub-block 2c in
// its low nibbles and 2c + 1 in its high ones.
void pack_k_nibbles(const uint8_t* q, uint8_t* qs) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] =
          static_cast<uint8_t>((q[64 * c + l] & 0xf) | ((q[64 * c + 32 + l] & 0xf) << 4));
    }
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    uint8_t q[kQKK];
    quantize_k_header(x, 15, y[i].d, y[i].dmin, y[i].scales, q);
    pack_k_nibbles(q, y[i].qs);
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    uint8_t q[kQKK];
    quantize_k_header(x, 31, y[i].d, y[i].dmin, y[i].scales, q);
    pack_k_nibbles(q, y[i].qs);
    for (int l = 0; l < 32; ++l) {
      uint8_t bits = 0;
      for (int j = 0; j < 8; ++j) bits = static_cast<uint8_t>(bits | ((q[32 * j + l] >> 4) << j));
      y[i].qh[l] = bits;
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scale[16];  // per sub-block of 16: value ~= scale * q, q in -32..31
    float max_abs = 0.0f;
    for (int j = 0; j < 16; ++j) {
      float amax = 0.0f, max = 0.0f;
      for (int l = 0; l < 16; ++l) {
        if (amax < std::fabs(x[16 * j + l])) {
          amax = std::fabs(x[16 * j + l]);
          max = x[16 * j + l];
        }
      }
      scale[j] = max / -32.0f;  // the extreme value lands exactly on q = -32
      max_abs = std::max(max_abs, std::fabs(scale[j]));
    }
    y[i].d = fp32_to_fp16(max_abs / 127.0f);
    const float d = fp16_to_fp32(y[i].d);
    uint8_t q[kQKK];
    for (int j = 0; j < 16; ++j) {
      const int s = d > 0.0f ? std::clamp(nearest_int(scale[j] / d), -128, 127) : 0;
      y[i].scales[j] = static_cast<int8_t>(s);
      const float ds = d * static_cast<float>(s);
      for (int l = 0; l < 16; ++l) {
        const int v = ds != 0.0f ? nearest_int(x[16 * j + l] / ds) : 0;
        q[16 * j + l] = static_cast<uint8_t>(std::clamp(v, -32, 31) + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* qq = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int q0 = qq[l], q1 = qq[l + 32], q2 = qq[l + 64], q3 = qq[l + 96];
        y[i].ql[64 * h + l] = static_cast<uint8_t>((q0 & 0xf) | ((q2 & 0xf) << 4));
        y[i].ql[64 * h + l + 32] = static_cast<uint8_t>((q1 & 0xf) | ((q3 & 0xf) << 4));
        y[i].qh[32 * h + l] = static_cast<uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) |
                                                   ((q3 >> 4) << 6));
      }
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK; ++j) *y++ = x[i].qs[j] * d;
  }
}

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = ((x[i].qs[j] & 0xf) - 8) * d;
      y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    uint8_t sc[8], m[8];
    unpack_q4_k_scales(x[i].scales, sc, m);
    const uint8_t* q = x[i].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      const float d1 = d * sc[2 * c], m1 = dmin * m[2 * c];
      const float d2 = d * sc[2 * c + 1], m2 = dmin * m[2 * c + 1];
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xf) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    uint8_t sc[8], m[8];
    unpack_q4_k_scales(x[i].scales, sc, m);
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = x[i].qs + 32 * (j / 2);
      const float dj = d * sc[j], mj = dmin * m[j];
      for (int l = 0; l < 32; ++l) {
        const int nib = j % 2 ? q[l] >> 4 : q[l] & 0xf;
        *y++ = dj * (nib | (((x[i].qh[l] >> j) & 1) << 4)) - mj;
      }
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = x[i].ql + 64 * h;
      const uint8_t* qh = x[i].qh + 32 * h;
      const int8_t* sc = x[i].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q0 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q0;
        y[l + 32] = d * sc[is + 2] * q1;
        y[l + 64] = d * sc[is + 4] * q2;
        y[l + 96] = d * sc[is + 6] * q3;
      }
    }
  }
}

}  // namespace

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  check_row(type, n);
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case TensorType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      if (has_avx2_f16c()) return fp16_to_fp32_row_f16c(s, dst, n);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
      return;
    }
    case TensorType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      if (has_avx2_f16c()) return bf16_to_fp32_row_avx2(s, dst, n);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
      return;
    }
    case TensorType::Q8_0:
      return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / kQK);
    case TensorType::Q4_0:
      return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / kQK);
    case TensorType::Q4_K:
      return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, n / kQKK);
    case TensorType::Q5_K:
      return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, n / kQKK);
    case TensorType::Q6_K:
      return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, n / kQKK);
    default:
      break;  // unreachable: check_row threw
  }
}

void quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  check_row(type, n);
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case TensorType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      if (has_avx2_f16c()) return fp32_to_fp16_row_f16c(src, d, n);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
      return;
    }
    case TensorType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
      return;
    }
    case TensorType::Q8_0:
      return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n / kQK);
    case TensorType::Q4_0:
      return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n / kQK);
    case TensorType::Q4_K:
      return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), n / kQKK);
    case TensorType::Q5_K:
      return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), n / kQKK);
    case TensorType::Q6_K:
      return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), n / kQKK);
    default:
      break;
  }
}

}  // namespace engram
