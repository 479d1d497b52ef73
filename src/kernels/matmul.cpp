// matmul driver (activation preparation, threading, dispatch), the scalar kernels and the
// double-precision reference.
#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "engram/error.h"
#include "engram/thread_pool.h"
#include "kernels/blocks.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant.h"
#include "util/cpu_features.h"
#include "util/huge_pages.h"

namespace engram {

namespace {

// ---- scalar activation quantization (the definition the SIMD versions must match) ----

void quantize_acts_32_scalar(const float* x, int64_t n, int8_t* qs, float* d, float* s) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, qs += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
      sum += qs[j];
    }
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

void quantize_acts_256_scalar(const float* x, int64_t n, int8_t* qs, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < n / kQKK; ++b, x += kQKK, qs += kQKK) {
    float amax = 0.0f;
    for (int j = 0; j < kQKK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 16 * g; j < 16 * g + 16; ++j) {
        qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
        sum += qs[j];
      }
      bsums[16 * b + g] = static_cast<int16_t>(sum);
    }
    d[b] = db;
  }
}

// ---- scalar kernels: one (row, token) dot product at a time ----

template <class Dot>
void scalar_tiles(const WeightMatrix& w, int64_t r0, int64_t r1, int64_t t0, int64_t t1, float* y,
                  int64_t ldy, Dot dot) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    for (int64_t t = t0; t < t1; ++t) y[t * ldy + r] = dot(row, t);
  }
}

void tile_f32_scalar(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                     int64_t t1, float* y, int64_t ldy) {
  scalar_tiles(w, r0, r1, t0, t1, y, ldy, [&](const uint8_t* row, int64_t t) {
    const auto* wr = reinterpret_cast<const float*>(row);
    const float* x = a.x + t * a.cols;
    float sum = 0.0f;
    for (int64_t k = 0; k < a.cols; ++k) sum += wr[k] * x[k];
    return sum;
  });
}

template <float (*Conv)(uint16_t)>
void tile_half_scalar(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                      int64_t t1, float* y, int64_t ldy) {
  scalar_tiles(w, r0, r1, t0, t1, y, ldy, [&](const uint8_t* row, int64_t t) {
    const auto* wr = reinterpret_cast<const uint16_t*>(row);
    const float* x = a.x + t * a.cols;
    float sum = 0.0f;
    for (int64_t k = 0; k < a.cols; ++k) sum += Conv(wr[k]) * x[k];
    return sum;
  });
}

void tile_q8_0_scalar(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                      int64_t t1, float* y, int64_t ldy) {
  scalar_tiles(w, r0, r1, t0, t1, y, ldy, [&](const uint8_t* row, int64_t t) {
    const auto* wb = reinterpret_cast<const BlockQ8_0*>(row);
    const int8_t* xq = a.qs + t * a.cols;
    const float* xd = a.d + t * a.nblk;
    float sum = 0.0f;
    for (int64_t b = 0; b < a.nblk; ++b) {
      int isum = 0;
      for (int j = 0; j < kQK; ++j) isum += wb[b].qs[j] * xq[kQK * b + j];
      sum += fp16_to_fp32(wb[b].d) * xd[b] * static_cast<float>(isum);
    }
    return sum;
  });
}

void tile_q4_0_scalar(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                      int64_t t1, float* y, int64_t ldy) {
  scalar_tiles(w, r0, r1, t0, t1, y, ldy, [&](const uint8_t* row, int64_t t) {
    const auto* wb = reinterpret_cast<const BlockQ4_0*>(row);
    const int8_t* xq = a.qs + t * a.cols;
    const float* xd = a.d + t * a.nblk;
    const float* xs = a.s + t * a.nblk;
    float sum = 0.0f, corr = 0.0f;  // sum over d*(q+8)*x, then remove 8 * d * sum(x)
    for (int64_t b = 0; b < a.nblk; ++b) {
      int isum = 0;
      for (int j = 0; j < 16; ++j) {
        isum += (wb[b].qs[j] & 0xf) * xq[kQK * b + j];
        isum += (wb[b].qs[j] >> 4) * xq[kQK * b + j + 16];
      }
      const float dw = fp16_to_fp32(wb[b].d);
      sum += dw * xd[b] * static_cast<float>(isum);
      corr += dw * xs[b];
    }
    return sum - 8.0f * corr;
  });
}

// Element l of sub-block j of a Q4_K or Q5_K super-block: its nibble, and for Q5_K the fifth
// bit from qh.
template <class Block>
int q45_k_weight(const Block& b, int j, int l) {
  const uint8_t q = b.qs[32 * (j / 2) + l];
  int w = j % 2 ? q >> 4 : q & 0xf;
  if constexpr (std::is_same_v<Block, BlockQ5_K>) w |= ((b.qh[l] >> j) & 1) << 4;
  return w;
}

template <class Block>
void tile_q45_k_scalar(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                       int64_t t1, float* y, int64_t ldy) {
  scalar_tiles(w, r0, r1, t0, t1, y, ldy, [&](const uint8_t* row, int64_t t) {
    const auto* wb = reinterpret_cast<const Block*>(row);
    const int8_t* xq = a.qs + t * a.cols;
    const float* xd = a.d + t * a.nblk;
    const int16_t* bs = a.bsums + t * a.nblk * 16;
    float sum = 0.0f;
    for (int64_t b = 0; b < a.nblk; ++b) {
      uint8_t sc[8], m[8];
      unpack_q4_k_scales(wb[b].scales, sc, m);
      const int8_t* x = xq + kQKK * b;
      int isum = 0, msum = 0;
      for (int j = 0; j < 8; ++j) {
        int dot = 0;
        for (int l = 0; l < 32; ++l) dot += q45_k_weight(wb[b], j, l) * x[32 * j + l];
        isum += sc[j] * dot;
        msum += m[j] * (bs[16 * b + 2 * j] + bs[16 * b + 2 * j + 1]);
      }
      sum += fp16_to_fp32(wb[b].d) * xd[b] * static_cast<float>(isum) -
             fp16_to_fp32(wb[b].dmin) * xd[b] * static_cast<float>(msum);
    }
    return sum;
  });
}

void tile_q6_k_scalar(const WeightMatrix& w, const Acts& a, int64_t r0, int64_t r1, int64_t t0,
                      int64_t t1, float* y, int64_t ldy) {
  scalar_tiles(w, r0, r1, t0, t1, y, ldy, [&](const uint8_t* row, int64_t t) {
    const auto* wb = reinterpret_cast<const BlockQ6_K*>(row);
    const int8_t* xq = a.qs + t * a.cols;
    const float* xd = a.d + t * a.nblk;
    const int16_t* bs = a.bsums + t * a.nblk * 16;
    float sum = 0.0f;
    for (int64_t b = 0; b < a.nblk; ++b) {
      int dots[16] = {};  // per sub-block of 16, with q stored as 0..63
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = wb[b].ql + 64 * h;
        const uint8_t* qh = wb[b].qh + 32 * h;
        const int8_t* x = xq + kQKK * b + 128 * h;
        for (int l = 0; l < 32; ++l) {
          const int q0 = (ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4);
          const int q1 = (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4);
          const int q2 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
          const int q3 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
          dots[8 * h + l / 16] += q0 * x[l];
          dots[8 * h + 2 + l / 16] += q1 * x[l + 32];
          dots[8 * h + 4 + l / 16] += q2 * x[l + 64];
          dots[8 * h + 6 + l / 16] += q3 * x[l + 96];
        }
      }
      int isum = 0;
      for (int j = 0; j < 16; ++j) isum += wb[b].scales[j] * (dots[j] - 32 * bs[16 * b + j]);
      sum += fp16_to_fp32(wb[b].d) * xd[b] * static_cast<float>(isum);
    }
    return sum;
  });
}

bool cpu_has_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c && f.bmi2;
}

bool cpu_has_avx512() {
  const CpuFeatures& f = cpu_features();
  return cpu_has_avx2() && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
}

const KernelTable& table_for(Isa isa) {
  if (!isa_available(isa)) {
    throw Error(std::string("matmul: kernel family '") + isa_name(isa) +
                "' is not supported by this CPU");
  }
  switch (isa) {
    case Isa::Avx512:
      return kernels_avx512();
    case Isa::Avx2:
      return kernels_avx2();
    default:
      return kernels_scalar();
  }
}

int64_t block_of(TensorType t) {
  switch (t) {
    case TensorType::Q8_0:
    case TensorType::Q4_0:
      return kQK;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      return kQKK;
    default:
      return 1;
  }
}

size_t expected_row_bytes(TensorType t, int64_t cols) {
  switch (t) {
    case TensorType::F32:
      return cols * 4;
    case TensorType::F16:
    case TensorType::BF16:
      return cols * 2;
    case TensorType::Q8_0:
      return cols / kQK * sizeof(BlockQ8_0);
    case TensorType::Q4_0:
      return cols / kQK * sizeof(BlockQ4_0);
    case TensorType::Q4_K:
      return cols / kQKK * sizeof(BlockQ4_K);
    case TensorType::Q5_K:
      return cols / kQKK * sizeof(BlockQ5_K);
    case TensorType::Q6_K:
      return cols / kQKK * sizeof(BlockQ6_K);
    default:
      throw Error("matmul: weight type id " + std::to_string(static_cast<uint32_t>(t)) +
                  " is not supported (supported: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)");
  }
}

void check_weights(const WeightMatrix& w) {
  const size_t rb = expected_row_bytes(w.type, w.cols);
  if (w.rows < 0 || w.cols <= 0 || w.cols % block_of(w.type) != 0) {
    throw Error("matmul: weight shape [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                "] is invalid for its type (row length must be a " + "positive multiple of " +
                std::to_string(block_of(w.type)) + ")");
  }
  if (w.row_bytes < rb) {
    throw Error("matmul: row_bytes " + std::to_string(w.row_bytes) + " is less than the " +
                std::to_string(rb) + " bytes a row of " + std::to_string(w.cols) + " needs");
  }
  if (w.data == nullptr && w.rows > 0) throw Error("matmul: weight data is null");
}

}  // namespace

const KernelTable& kernels_scalar() {
  static const KernelTable t = {
      quantize_acts_32_scalar,
      quantize_acts_256_scalar,
      tile_f32_scalar,
      tile_half_scalar<fp16_to_fp32>,
      tile_half_scalar<bf16_to_fp32>,
      tile_q8_0_scalar,
      tile_q4_0_scalar,
      tile_q45_k_scalar<BlockQ4_K>,
      tile_q45_k_scalar<BlockQ5_K>,
      tile_q6_k_scalar,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
      nullptr,
  };
  return t;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

bool isa_available(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return cpu_has_avx512();
    case Isa::Avx2:
      return cpu_has_avx2();
    default:
      return true;
  }
}

Isa best_isa() {
  static const Isa best = isa_available(Isa::Avx512) ? Isa::Avx512
                          : isa_available(Isa::Avx2) ? Isa::Avx2
                                                     : Isa::Scalar;
  return best;
}

const char* matmul_isa() {
  return isa_name(best_isa());
}

bool packs_type(Isa isa, TensorType t) {
  return isa == Isa::Avx512 &&
         (t == TensorType::Q8_0 || t == TensorType::Q4_0 || t == TensorType::Q4_K ||
          t == TensorType::Q5_K || t == TensorType::Q6_K);
}

namespace {

// Puts 32 values of 0..15 (`lo`) and their 32 partners (`hi`) as the nibbles of row i's bytes
// in 4 packed vectors (see PackedWeights): vector k, byte 4i + j: lo[4k + j] | hi[4k + j] << 4.
void put_nibbles(uint8_t* vecs, int64_t i, const uint8_t* lo, const uint8_t* hi) {
  for (int k = 0; k < 16; ++k) {
    vecs[64 * (k / 4) + 4 * i + k % 4] = static_cast<uint8_t>((lo[k] & 0xf) | (hi[k] << 4));
  }
}

// Q4_K and Q5_K: the 8 sub-blocks' nibbles, (Q5_K) their fifth bits, scales, mins.
template <class Block>
void pack_q45_k_row(const Block* blocks, int64_t nb, int64_t i, uint8_t* g, int64_t record,
                    uint16_t* scales) {
  constexpr int kR = PackedWeights::kRows;
  constexpr bool q5 = std::is_same_v<Block, BlockQ5_K>;
  constexpr int sc_at = q5 ? 2048 + 512 : 2048;  // the record's scales, then mins
  for (int64_t b = 0; b < nb; ++b) {
    const Block& blk = blocks[b];
    uint8_t* rec = g + b * record;
    uint8_t sc[8], m[8];
    unpack_q4_k_scales(blk.scales, sc, m);
    for (int s = 0; s < 8; ++s) {
      uint8_t q[32];  // the sub-block's elements: low (even s) or high nibbles of a chunk
      for (int e = 0; e < 32; ++e) {
        const uint8_t byte = blk.qs[32 * (s / 2) + e];
        q[e] = s % 2 ? byte >> 4 : byte & 0xf;
      }
      put_nibbles(rec + 256 * s, i, q, q + 16);
      if constexpr (q5) {
        // Fifth bits of sub-block s: byte 4i + j of its 64-byte plane holds in bit k the bit of
        // the element in the low nibble of vector k's byte 4i + j, in bit 4 + k the high one's.
        for (int e = 0; e < 16; ++e) {
          const int k = e / 4;
          const int lo = (blk.qh[e] >> s) & 1, hi = (blk.qh[e + 16] >> s) & 1;
          uint8_t& dst = rec[2048 + 64 * s + 4 * i + e % 4];
          dst = static_cast<uint8_t>(dst | (lo << k) | (hi << (4 + k)));
        }
      }
      rec[sc_at + kR * s + i] = sc[s];
      rec[sc_at + 128 + kR * s + i] = m[s];
    }
    scales[2 * kR * b + i] = blk.d;
    scales[2 * kR * b + kR + i] = blk.dmin;
  }
}

void pack_q6_k_row(const BlockQ6_K* blocks, int64_t nb, int64_t i, uint8_t* g, int64_t record,
                   uint16_t* scales) {
  constexpr int kR = PackedWeights::kRows;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K& blk = blocks[b];
    uint8_t* rec = g + b * record;
    uint8_t q[256];  // 6-bit values 0..63 in element order
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo0 = blk.ql[64 * h + l], lo1 = blk.ql[64 * h + l + 32];
        const uint8_t hb = blk.qh[32 * h + l];
        q[128 * h + l] = static_cast<uint8_t>((lo0 & 0xf) | ((hb & 3) << 4));
        q[128 * h + l + 32] = static_cast<uint8_t>((lo1 & 0xf) | (((hb >> 2) & 3) << 4));
        q[128 * h + l + 64] = static_cast<uint8_t>((lo0 >> 4) | (((hb >> 4) & 3) << 4));
        q[128 * h + l + 96] = static_cast<uint8_t>((lo1 >> 4) | (((hb >> 6) & 3) << 4));
      }
    }
    for (int c = 0; c < 8; ++c) {
      const uint8_t* x = q + 32 * c;
      put_nibbles(rec + 256 * c, i, x, x + 16);
      for (int k = 0; k < 16; ++k) {
        const int v = k / 4;  // the chunk's vector this element pair lives in
        const uint8_t bits = static_cast<uint8_t>((x[k] >> 4) | ((x[16 + k] >> 4) << 2));
        uint8_t& dst = rec[2048 + 128 * c + 64 * (v / 2) + 4 * i + k % 4];
        dst = static_cast<uint8_t>(dst | (bits << (4 * (v % 2))));
      }
    }
    for (int j = 0; j < 16; ++j) rec[3072 + kR * j + i] = static_cast<uint8_t>(blk.scales[j]);
    scales[kR * b + i] = blk.d;
  }
}

}  // namespace

std::shared_ptr<const PackedWeights> pack_weights(const WeightMatrix& w) {
  check_weights(w);
  if (!packs_type(Isa::Avx512, w.type)) {
    throw Error("matmul: only q8_0, q4_0, q4_K, q5_K and q6_K matrices have a packed layout");
  }
  constexpr int kR = PackedWeights::kRows;
  const bool q8 = w.type == TensorType::Q8_0;
  const bool q4k = w.type == TensorType::Q4_K;
  const bool q5k = w.type == TensorType::Q5_K;
  const bool q6k = w.type == TensorType::Q6_K;
  const bool kquant = q4k || q5k || q6k;
  const int64_t nb = w.cols / (kquant ? kQKK : kQK);
  auto p = std::make_shared<PackedWeights>();
  p->type = w.type;
  p->groups = (w.rows + kR - 1) / kR;
  p->quant_bytes = q8    ? 8 * 64
                   : q4k ? 2048 + 256
                   : q5k ? 2048 + 512 + 256
                   : q6k ? 2048 + 1024 + 256
                         : 4 * 64;
  p->scale_offset = nb * p->quant_bytes;
  const int64_t scales_per_block = q4k || q5k ? 2 * kR : kR;
  p->group_bytes = (p->scale_offset + nb * scales_per_block * 2 + 63) / 64 * 64;
  const size_t total = static_cast<size_t>(std::max<int64_t>(1, p->groups * p->group_bytes));
  p->data.reset(static_cast<uint8_t*>(allocate_huge_page_backed(total)));
  if (!p->data)
    throw Error("matmul: out of memory packing a " + std::to_string(total) + "-byte matrix");
  std::memset(p->data.get(), 0, total);  // padding rows: zero quants and scales
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    uint8_t* g = p->data.get() + (r / kR) * p->group_bytes;
    const int64_t i = r % kR;
    auto* scales = reinterpret_cast<uint16_t*>(g + p->scale_offset);
    if (q4k) {
      pack_q45_k_row(reinterpret_cast<const BlockQ4_K*>(row), nb, i, g, p->quant_bytes, scales);
      continue;
    }
    if (q5k) {
      pack_q45_k_row(reinterpret_cast<const BlockQ5_K*>(row), nb, i, g, p->quant_bytes, scales);
      continue;
    }
    if (q6k) {
      pack_q6_k_row(reinterpret_cast<const BlockQ6_K*>(row), nb, i, g, p->quant_bytes, scales);
      continue;
    }
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* qdst = g + b * p->quant_bytes + 4 * i;
      if (q8) {
        const auto& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
        for (int k = 0; k < 32; ++k) {
          qdst[64 * (k / 4) + k % 4] = static_cast<uint8_t>(blk.qs[k]) ^ 0x80;
        }
        scales[kR * b + i] = blk.d;
      } else {
        const auto& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
        for (int k = 0; k < 16; ++k) qdst[64 * (k / 4) + k % 4] = blk.qs[k];
        scales[kR * b + i] = blk.d;
      }
    }
  }
  return p;
}

void prepack_weights(WeightMatrix& w) {
  if (w.rows > 0 && packs_type(best_isa(), w.type)) w.packed = pack_weights(w);
}

namespace {

// The activation layouts the kernels read (see Acts): float rows, int8 blocks of 32, int8
// blocks of 256. Weight types that read the same layout share one prepared copy.
enum class ActFormat { F32, Blocks32, Blocks256 };

ActFormat act_format(TensorType t) {
  switch (t) {
    case TensorType::Q8_0:
    case TensorType::Q4_0:
      return ActFormat::Blocks32;
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K:
      return ActFormat::Blocks256;
    default:
      return ActFormat::F32;
  }
}

TileFn tile_for(const KernelTable& k, const WeightMatrix& w) {
  if (w.packed && w.packed->type == w.type) {
    if (w.type == TensorType::Q8_0 && k.q8_0_packed) return k.q8_0_packed;
    if (w.type == TensorType::Q4_0 && k.q4_0_packed) return k.q4_0_packed;
    if (w.type == TensorType::Q4_K && k.q4_k_packed) return k.q4_k_packed;
    if (w.type == TensorType::Q5_K && k.q5_k_packed) return k.q5_k_packed;
    if (w.type == TensorType::Q6_K && k.q6_k_packed) return k.q6_k_packed;
  }
  switch (w.type) {
    case TensorType::F32:
      return k.f32;
    case TensorType::F16:
      return k.f16;
    case TensorType::BF16:
      return k.bf16;
    case TensorType::Q8_0:
      return k.q8_0;
    case TensorType::Q4_0:
      return k.q4_0;
    case TensorType::Q4_K:
      return k.q4_k;
    case TensorType::Q5_K:
      return k.q5_k;
    case TensorType::Q6_K:
      return k.q6_k;
    default:
      return nullptr;  // check_weights threw before this is asked
  }
}

// Activations of one layout, prepared once per call and shared by all threads and matrices.
struct PreparedActs {
  Acts a;
  std::vector<int8_t> qs;     // [n_tok, cols]
  std::vector<float> d, s;    // [n_tok, nblk]
  std::vector<int16_t> bsum;  // [n_tok, nblk * 16]
  std::vector<int32_t> off;   // [2][n_tok, nblk]: off_q4, off_q8
  size_t row_bytes = 0;       // bytes of one token's activations as the kernels read them

  void prepare(ActFormat f, const KernelTable& k, const float* x, int64_t n_tok, int64_t cols,
               ThreadPool& pool) {
    a.cols = cols;
    a.x = x;
    row_bytes = cols * sizeof(float);
    if (f == ActFormat::Blocks32) {
      a.nblk = cols / kQK;
      qs.resize(n_tok * cols);
      d.resize(n_tok * a.nblk);
      s.resize(n_tok * a.nblk);
      off.resize(2 * n_tok * a.nblk);
      int32_t* off4 = off.data();
      int32_t* off8 = off4 + n_tok * a.nblk;
      pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          k.quantize_acts_32(x + t * cols, cols, &qs[t * cols], &d[t * a.nblk], &s[t * a.nblk]);
        }
        for (int64_t b = t0 * a.nblk; b < t1 * a.nblk; ++b) {
          int sum = 0;
          for (int j = 0; j < kQK; ++j) sum += qs[kQK * b + j];
          off4[b] = -8 * sum;
          off8[b] = -128 * sum;
        }
      });
      a.s = s.data();
      a.off_q4 = off4;
      a.off_q8 = off8;
      row_bytes = cols + a.nblk * 16;
    } else if (f == ActFormat::Blocks256) {
      a.nblk = cols / kQKK;
      qs.resize(n_tok * cols);
      d.resize(n_tok * a.nblk);
      bsum.resize(n_tok * a.nblk * 16);
      pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          k.quantize_acts_256(x + t * cols, cols, &qs[t * cols], &d[t * a.nblk],
                              &bsum[t * a.nblk * 16]);
        }
      });
      a.bsums = bsum.data();
      row_bytes = cols + a.nblk * 36;
    }
    a.qs = qs.data();
    a.d = d.data();
  }
};

}  // namespace

void matmul_many_with_isa(Isa isa, const WeightMatrix* w, float* const* y, int count,
                          const float* x, int64_t n_tok, ThreadPool& pool) {
  for (int m = 0; m < count; ++m) {
    check_weights(w[m]);
    if (w[m].cols != w[0].cols) {
      throw Error("matmul: matrices sharing one input need the same row length (" +
                  std::to_string(w[0].cols) + " vs " + std::to_string(w[m].cols) + ")");
    }
  }
  if (n_tok <= 0 || count <= 0) return;
  const KernelTable& k = table_for(isa);

  PreparedActs acts[3];
  bool ready[3] = {false, false, false};
  size_t widest = 0;
  for (int m = 0; m < count; ++m) {
    const int f = static_cast<int>(act_format(w[m].type));
    if (!ready[f]) acts[f].prepare(static_cast<ActFormat>(f), k, x, n_tok, w[0].cols, pool);
    ready[f] = true;
    widest = std::max(widest, acts[f].row_bytes);
  }

  // Tokens are processed in chunks whose activations stay in L2 (~256 KiB) while a thread
  // sweeps its rows, so each weight row block is read once per chunk, not once per token.
  // A multiple of 8, the widest token tile, so chunks leave no tail tiles but the last.
  const int64_t tok_chunk =
      std::clamp<int64_t>(static_cast<int64_t>((256 * 1024) / widest), 8, 256) / 8 * 8;
  // Rows of all matrices go out as one pool of tasks (one parallel region per call), in chunks
  // that are a multiple of 16 (every kernel's row tile divides 16), about four per thread, taken
  // dynamically so a preempted thread on a busy machine delays little.
  int64_t total_rows = 0;
  for (int m = 0; m < count; ++m) total_rows += w[m].rows;
  if (total_rows == 0) return;
  // Guided sizes: each task takes a share of the rows still unassigned, so the tasks shrink
  // towards the end and the last one to finish holds up the others by little.
  struct Task {
    int m;
    int64_t r0, r1;
  };
  std::vector<Task> tasks;
  int64_t left = total_rows;
  for (int m = 0; m < count; ++m) {
    for (int64_t r0 = 0; r0 < w[m].rows;) {
      const int64_t share = (left + 2 * pool.size() - 1) / (2 * pool.size());
      const int64_t size = std::max<int64_t>(16, (share + 15) / 16 * 16);
      const int64_t r1 = std::min(w[m].rows, r0 + size);
      tasks.push_back({m, r0, r1});
      left -= r1 - r0;
      r0 = r1;
    }
  }
  pool.parallel_for_dynamic(static_cast<int64_t>(tasks.size()), 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const Task& t = tasks[i];
      const WeightMatrix& wm = w[t.m];
      const TileFn tile = tile_for(k, wm);
      const Acts& a = acts[static_cast<int>(act_format(wm.type))].a;
      for (int64_t t0 = 0; t0 < n_tok; t0 += tok_chunk) {
        tile(wm, a, t.r0, t.r1, t0, std::min(n_tok, t0 + tok_chunk), y[t.m], wm.rows);
      }
    }
  });
}

void matmul_with_isa(Isa isa, const WeightMatrix& w, const float* x, int64_t n_tok, float* y,
                     ThreadPool& pool) {
  matmul_many_with_isa(isa, &w, &y, 1, x, n_tok, pool);
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  matmul_with_isa(best_isa(), w, x, n_tok, y, pool);
}

void matmul_many(const WeightMatrix* w, float* const* y, int count, const float* x, int64_t n_tok,
                 ThreadPool& pool) {
  matmul_many_with_isa(best_isa(), w, y, count, x, n_tok, pool);
}

void matmul_reference(const WeightMatrix& w, const float* x, int64_t n_tok, float* y) {
  check_weights(w);
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * w.row_bytes, row.data(),
                   w.cols);
    for (int64_t t = 0; t < n_tok; ++t) {
      double sum = 0.0;
      for (int64_t c = 0; c < w.cols; ++c) sum += static_cast<double>(row[c]) * x[t * w.cols + c];
      y[t * w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace engram
