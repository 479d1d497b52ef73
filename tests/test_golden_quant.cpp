// Dequantization against the independent reference of tools/py/quant_ref.py (issue 2,
// acceptance item 2). The fixtures in tests/fixtures/golden/ hold seeded random blocks
// (quant_TYPE.bin) and the values the numpy reference decodes them to (quant_TYPE.f32).
// F16/BF16/Q8_0/Q4_0 must match bit for bit; Q4_K/Q6_K within float rounding (in practice
// they match exactly too: every product in their formulas is exact in float32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engram/tensor_type.h"
#include "kernels/quant.h"

namespace engram {
namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open fixture " << path;
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct Case {
  const char* file;  // fixture name part: quant_<file>.bin
  TensorType type;
  bool bit_exact;
};

class GoldenQuant : public ::testing::TestWithParam<Case> {};

TEST_P(GoldenQuant, DequantizeMatchesReference) {
  const Case c = GetParam();
  const std::string dir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/quant_";
  const std::vector<char> raw = read_file(dir + c.file + ".bin");
  const std::vector<char> ref_bytes = read_file(dir + c.file + ".f32");
  ASSERT_FALSE(raw.empty());
  ASSERT_EQ(ref_bytes.size() % sizeof(float), 0u);

  const TensorTypeInfo& info = tensor_type_info(c.type);
  ASSERT_EQ(raw.size() % info.block_bytes, 0u) << "fixture is not whole blocks";
  const int64_t n = int64_t(raw.size() / info.block_bytes) * info.block_size;
  ASSERT_EQ(size_t(n) * sizeof(float), ref_bytes.size()) << "fixture sizes disagree";
  std::vector<float> ref(n);
  std::memcpy(ref.data(), ref_bytes.data(), ref_bytes.size());

  // Whole tensor in one call, then block by block (a row starting mid-buffer).
  std::vector<float> got(n, -12345.0f);
  dequantize_row(c.type, raw.data(), got.data(), n);
  std::vector<float> got_blocks(n, -12345.0f);
  for (int64_t b = 0; b < n / info.block_size; ++b) {
    dequantize_row(c.type, raw.data() + b * info.block_bytes,
                   got_blocks.data() + b * info.block_size, info.block_size);
  }

  int64_t mismatches = 0;
  for (int64_t i = 0; i < n && mismatches < 10; ++i) {
    for (const float g : {got[i], got_blocks[i]}) {
      if (c.bit_exact) {
        uint32_t a = 0, b = 0;
        std::memcpy(&a, &g, 4);
        std::memcpy(&b, &ref[i], 4);
        if (a != b) {
          ++mismatches;
          ADD_FAILURE() << c.file << " element " << i << " (block " << i / info.block_size
                        << "): got " << g << " (0x" << std::hex << a << "), want " << ref[i]
                        << " (0x" << b << std::dec << ")";
        }
      } else {
        // Float rounding of d*sc*q - dmin*m: relative to the block's largest magnitude.
        const int64_t b0 = i / info.block_size * info.block_size;
        float block_max = 0.0f;
        for (int64_t j = b0; j < b0 + info.block_size; ++j)
          block_max = std::fmax(block_max, std::fabs(ref[j]));
        const float tol = 1e-6f * block_max;
        if (!(std::fabs(g - ref[i]) <= tol)) {
          ++mismatches;
          ADD_FAILURE() << c.file << " element " << i << " (block " << i / info.block_size
                        << "): got " << g << ", want " << ref[i] << " (tolerance " << tol << ")";
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, GoldenQuant,
    ::testing::Values(Case{"f16", TensorType::F16, true}, Case{"bf16", TensorType::BF16, true},
                      Case{"q8_0", TensorType::Q8_0, true}, Case{"q4_0", TensorType::Q4_0, true},
                      Case{"q4_k", TensorType::Q4_K, false}, Case{"q6_k", TensorType::Q6_K, false},
                      Case{"q5_k", TensorType::Q5_K, false}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.file); });

}  // namespace
}  // namespace engram
