// fp16/bf16 conversions and the block (de)quantizers: exactness of the conversions, the
// ggml block layouts (hand-built blocks decoded element by element), and quantization error.
#include <gtest/gtest.h>
#include <immintrin.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "kernels/blocks.h"
#include "kernels/quant.h"
#include "util/cpu_features.h"

namespace engram {
namespace {

__attribute__((target("f16c"))) float hw_half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}
__attribute__((target("f16c"))) uint16_t hw_float_to_half(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

TEST(Fp16, AllHalvesDecodeLikeHardwareAndRoundTrip) {
  const bool hw = engram::cpu_features().f16c;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (hw) {
      ASSERT_EQ(std::bit_cast<uint32_t>(f), std::bit_cast<uint32_t>(hw_half_to_float(h)))
          << "half 0x" << std::hex << h;
    }
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7c00u, 0x7c00u);
      EXPECT_NE(h & 0x3ffu, 0u);
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

// dequantize_row / quantize_row take a SIMD path for whole rows; it must agree bit for bit
// with the element-wise conversions, including NaNs, infinities and subnormals.
TEST(Fp16, RowConversionsMatchScalar) {
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
  std::vector<float> f(all.size()), bf(all.size());
  dequantize_row(TensorType::F16, all.data(), f.data(), static_cast<int64_t>(all.size()));
  dequantize_row(TensorType::BF16, all.data(), bf.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(f[i]), std::bit_cast<uint32_t>(fp16_to_fp32(all[i]))) << i;
    ASSERT_EQ(std::bit_cast<uint32_t>(bf[i]), std::bit_cast<uint32_t>(bf16_to_fp32(all[i]))) << i;
  }
  std::mt19937 rng(9);
  std::vector<float> src(100003);
  for (auto& v : src) v = std::bit_cast<float>(static_cast<uint32_t>(rng()));
  src[0] = 65520.0f;
  src[1] = 0x1p-25f;
  src[2] = std::numeric_limits<float>::infinity();
  std::vector<uint16_t> h(src.size());
  quantize_row(TensorType::F16, src.data(), h.data(), static_cast<int64_t>(src.size()));
  for (size_t i = 0; i < src.size(); ++i) {
    if (std::isnan(src[i])) {
      ASSERT_TRUE(std::isnan(fp16_to_fp32(h[i])));
    } else {
      ASSERT_EQ(h[i], fp32_to_fp16(src[i])) << src[i];
    }
  }
}

TEST(Fp16, EncodeRoundsToNearestEven) {
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bffu);
  EXPECT_EQ(fp32_to_fp16(65519.996f), 0x7bffu);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00u);  // the tie goes to the even (infinite) side
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00u);
  EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xfc00u);
  EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001u);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000u);  // tie to even: zero
  EXPECT_EQ(fp32_to_fp16(0x1.000002p-25f), 0x0001u);
  EXPECT_EQ(fp32_to_fp16(0x3p-25f), 0x0002u);  // 1.5 units ties to 2
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000u);
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00u);  // tie, even stays
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x3p-11f), 0x3c02u);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_fp16(0x1.ffcp-15f), 0x0400u);     // subnormal rounding up into normal
}

TEST(Fp16, EncodeMatchesHardwareOnRandomFloats) {
  if (!engram::cpu_features().f16c) GTEST_SKIP() << "no F16C";
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), hw_float_to_half(f)) << "f=" << f;
  }
}

TEST(Bf16, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_bf16(f), h);
  }
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80u);  // tie to even
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x3p-8f), 0x3f82u);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1.2p-8f), 0x3f81u);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80u);  // rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}

TEST(Quant, Q8_0LayoutAndRule) {
  BlockQ8_0 b{};
  b.d = fp32_to_fp16(0.5f);
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  float y[32];
  dequantize_row(TensorType::Q8_0, &b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * (j * 8 - 128));

  // ggml's rule: d = amax / 127, q = round(x / d).
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = (j - 10) * 0.25f;  // amax 5.25 at j = 31
  BlockQ8_0 q{};
  quantize_row(TensorType::Q8_0, x, &q, 32);
  EXPECT_EQ(q.d, fp32_to_fp16(5.25f / 127.0f));
  EXPECT_EQ(q.qs[31], 127);
  EXPECT_EQ(q.qs[10], 0);
  EXPECT_EQ(q.qs[0], static_cast<int8_t>(std::round(-2.5f / (5.25f / 127.0f))));
}

TEST(Quant, Q4_0LayoutAndRule) {
  BlockQ4_0 b{};
  b.d = fp32_to_fp16(2.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(TensorType::Q4_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * (j - 8)) << j;            // low nibbles: elements 0..15
    EXPECT_EQ(y[j + 16], 2.0f * (15 - j - 8)) << j;  // high nibbles: elements 16..31
  }
  // d = max / -8 with max the signed value of largest magnitude: here -4 -> d = 0.5, and the
  // extreme lands on q = 0.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = (j % 7) * 0.5f - 1.0f;
  x[5] = -4.0f;
  BlockQ4_0 q{};
  quantize_row(TensorType::Q4_0, x, &q, 32);
  EXPECT_EQ(fp16_to_fp32(q.d), 0.5f);
  EXPECT_EQ(q.qs[5] & 0xf, 0);
  float back[32];
  dequantize_row(TensorType::Q4_0, &q, back, 32);
  for (int j = 0; j < 32; ++j) EXPECT_NEAR(back[j], x[j], 0.25f + 1e-6f) << j;
}

// Packs 6-bit scales/mins as the Q4_K format describes (independently of the unpacker).
void pack_q4_k_scales(const int sc[8], const int m[8], uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

TEST(Quant, Q4_KLayout) {
  BlockQ4_K b{};
  b.d = fp32_to_fp16(0.25f);
  b.dmin = fp32_to_fp16(0.125f);
  const int sc[8] = {1, 63, 17, 32, 5, 60, 48, 33};
  const int m[8] = {0, 7, 63, 40, 21, 62, 16, 50};
  pack_q4_k_scales(sc, m, b.scales);
  uint8_t sc_u[8], m_u[8];
  unpack_q4_k_scales(b.scales, sc_u, m_u);
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(sc_u[j], sc[j]);
    EXPECT_EQ(m_u[j], m[j]);
  }
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i * 7 + 3) & 0xff);
  std::vector<float> y(256);
  dequantize_row(TensorType::Q4_K, &b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    // Element e: 64-element chunk c, first half from low nibbles of qs[32c..], second from
    // high nibbles; sub-block e / 32.
    const int c = e / 64, l = e % 64;
    const uint8_t byte = b.qs[32 * c + l % 32];
    const int q = l < 32 ? (byte & 0xf) : (byte >> 4);
    const int j = e / 32;
    const float expect = 0.25f * sc[j] * q - 0.125f * m[j];
    ASSERT_EQ(y[e], expect) << "element " << e;
  }
}

TEST(Quant, Q6_KLayout) {
  BlockQ6_K b{};
  b.d = fp32_to_fp16(0.5f);
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>((i * 37 + 11) & 0xff);
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>((i * 91 + 5) & 0xff);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j * 17 - 128);
  std::vector<float> y(256);
  dequantize_row(TensorType::Q6_K, &b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    // Element e: half h, quarter k of the half, lane l. Low 4 bits from ql[64h + 32(k&1) + l]
    // (low nibble for k < 2), high 2 bits from qh[32h + l] bits 2k..2k+1.
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b.ql[64 * h + 32 * (k & 1) + l];
    const int low4 = k < 2 ? (lo & 0xf) : (lo >> 4);
    const int high2 = (b.qh[32 * h + l] >> (2 * k)) & 3;
    const int q = (low4 | (high2 << 4)) - 32;
    const float expect = 0.5f * b.scales[e / 16] * q;
    ASSERT_EQ(y[e], expect) << "element " << e;
  }
}

struct ErrCase {
  TensorType type;
  double max_rel_rms;  // RMS error / RMS value on Gaussian data
};

TEST(Quant, RoundTripErrorOnGaussianData) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 4096;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng);
  x[100] = 9.0f;  // an outlier in one block
  const ErrCase cases[] = {
      {TensorType::F32, 0.0},   {TensorType::F16, 1e-3},  {TensorType::BF16, 5e-3},
      {TensorType::Q8_0, 0.01}, {TensorType::Q4_0, 0.15}, {TensorType::Q4_K, 0.15},
      {TensorType::Q5_K, 0.08}, {TensorType::Q6_K, 0.05},
  };
  for (const auto& c : cases) {
    std::vector<uint8_t> buf(n * 4);
    quantize_row(c.type, x.data(), buf.data(), n);
    dequantize_row(c.type, buf.data(), y.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (y[i] - x[i]) * (y[i] - x[i]);
      ref += x[i] * x[i];
    }
    EXPECT_LE(std::sqrt(err / ref), c.max_rel_rms) << "type id " << static_cast<int>(c.type);
  }
}

TEST(Quant, ZeroAndConstantBlocks) {
  for (TensorType t :
       {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    std::vector<float> x(256, 0.0f), y(256);
    std::vector<uint8_t> buf(1024);
    quantize_row(t, x.data(), buf.data(), 256);
    dequantize_row(t, buf.data(), y.data(), 256);
    for (float v : y) ASSERT_EQ(v, 0.0f);
    std::fill(x.begin(), x.end(), -3.0f);
    quantize_row(t, x.data(), buf.data(), 256);
    dequantize_row(t, buf.data(), y.data(), 256);
    for (float v : y) ASSERT_NEAR(v, -3.0f, 0.05f) << static_cast<int>(t);
  }
}

TEST(Quant, RejectsBadLengthAndType) {
  float x[64] = {};
  uint8_t buf[256];
  EXPECT_THROW(quantize_row(TensorType::Q8_0, x, buf, 33), Error);
  EXPECT_THROW(dequantize_row(TensorType::Q4_K, buf, x, 64), Error);
  EXPECT_THROW(dequantize_row(TensorType::Q5_K, buf, x, 64), Error);
  EXPECT_THROW(dequantize_row(TensorType::Q3_K, buf, x, 256), Error);
  try {
    quantize_row(TensorType::Q2_K, x, buf, 256);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("10"), std::string::npos) << e.what();
  }
}

#ifdef ENGRAM_CLI_PATH
// `engram quantize` end to end: a small GGUF with a K-quant-sized matrix, a matrix whose rows
// only fit Q8_0, and a norm vector.
TEST(QuantizeCli, WritesAReadableQuantizedModel) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("engram_quantize_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> big(8 * 512), small(4 * 96), norm(512, 1.0f);
  for (auto& v : big) v = nd(rng);
  for (auto& v : small) v = nd(rng);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  w.set_u32("general.file_type", 0);
  w.add_tensor("blk.0.attn_q.weight", {512, 8}, TensorType::F32, big.data(), big.size() * 4);
  w.add_tensor("blk.0.ffn_up.weight", {96, 4}, TensorType::F32, small.data(), small.size() * 4);
  w.add_tensor("blk.0.attn_norm.weight", {512}, TensorType::F32, norm.data(), norm.size() * 4);
  const std::string in = (dir / "in.gguf").string(), out = (dir / "out.gguf").string();
  w.write(in);

  const std::string cli = ENGRAM_CLI_PATH;
  const std::string log = (dir / "log.txt").string();
  ASSERT_EQ(std::system(
                (cli + " quantize " + in + " " + out + " --type q4_k > " + log + " 2>&1").c_str()),
            0);
  auto f = GgufFile::open(out);
  EXPECT_EQ(f->get_uint("general.file_type"), 15u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  const auto* q = f->find_tensor("blk.0.attn_q.weight");
  const auto* up = f->find_tensor("blk.0.ffn_up.weight");
  const auto* nw = f->find_tensor("blk.0.attn_norm.weight");
  ASSERT_TRUE(q && up && nw);
  EXPECT_EQ(q->type, static_cast<uint32_t>(TensorType::Q4_K));
  EXPECT_EQ(up->type, static_cast<uint32_t>(TensorType::Q8_0));  // 96 is no multiple of 256
  EXPECT_EQ(nw->type, static_cast<uint32_t>(TensorType::F32));
  std::vector<float> back(512);
  double err = 0, ref = 0;
  for (int r = 0; r < 8; ++r) {
    dequantize_row(TensorType::Q4_K, f->tensor_data(*q) + r * 288, back.data(), 512);
    for (int c = 0; c < 512; ++c) {
      err += (back[c] - big[r * 512 + c]) * (back[c] - big[r * 512 + c]);
      ref += big[r * 512 + c] * big[r * 512 + c];
    }
  }
  EXPECT_LT(std::sqrt(err / ref), 0.15);
  std::ifstream lf(log);
  std::stringstream text;
  text << lf.rdbuf();
  EXPECT_NE(text.str().find("q8_0 instead"), std::string::npos) << text.str();

  // A bad --type names the value and the accepted list; exit code 1.
  const int rc = std::system(
      (cli + " quantize " + in + " " + out + " --type q3_k > " + log + " 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  std::ifstream lf2(log);
  std::stringstream text2;
  text2 << lf2.rdbuf();
  EXPECT_NE(text2.str().find("'q3_k'"), std::string::npos) << text2.str();
  EXPECT_NE(text2.str().find("q4_0"), std::string::npos) << text2.str();
  fs::remove_all(dir);
}
#endif

}  // namespace
}  // namespace engram
