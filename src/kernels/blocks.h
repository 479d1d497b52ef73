// GGUF/ggml block layouts of the quantized weight types, shared by the quantizers and the
// matmul kernels. Field order and sizes are the on-disk format.
#pragma once

#include <cstdint>
#include <cstring>

namespace engram {

constexpr int kQK = 32;    // block size of Q8_0 / Q4_0
constexpr int kQKK = 256;  // super-block size of the K-quants

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;           // f16 scale; value = d * (q - 8)
  uint8_t qs[kQK / 2];  // low nibbles: elements 0..15, high nibbles: 16..31
};
static_assert(sizeof(BlockQ4_0) == 18);

// 8 sub-blocks of 32; value = d * sc[j] * q - dmin * m[j], sc/m 6-bit packed in `scales`.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];  // 64-element chunks: low nibbles first 32, high nibbles next 32
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q4_K with a fifth bit: element l of sub-block j adds 16 * (bit j of qh[l]) to its nibble;
// value = d * sc[j] * q - dmin * m[j], q in 0..31.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];  // as Q4_K's
};
static_assert(sizeof(BlockQ5_K) == 176);

// 16 sub-blocks of 16; value = d * scales[j] * (q - 32), q 6-bit split into ql (low 4) and
// qh (high 2).
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Unpacks the 6-bit scales and mins of a Q4_K or Q5_K block: sc[0..7], m[0..7]. Works on
// 32-bit words (bytes 0-3 hold sc0-3 plus the high bits of sc4-7, bytes 4-7 m0-3 plus the high
// bits of m4-7, bytes 8-11 the low nibbles of sc4-7 and m4-7).
inline void unpack_q4_k_scales(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, s, 4);
  std::memcpy(&u1, s + 4, 4);
  std::memcpy(&u2, s + 8, 4);
  const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
  const uint32_t m_lo = u1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
  std::memcpy(sc, &sc_lo, 4);
  std::memcpy(sc + 4, &sc_hi, 4);
  std::memcpy(m, &m_lo, 4);
  std::memcpy(m + 4, &m_hi, 4);
}

}  // namespace engram
