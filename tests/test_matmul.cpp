// matmul: every weight type, every ISA this CPU has, odd shapes.
//
// Two kinds of checks:
//  * SIMD vs scalar of the same algorithm (same activation quantization, same integer dot
//    products, only the float summation order differs): max |diff| <= 1e-5 * max |y|.
//  * Any kernel vs matmul_reference (dequantized weights, f32 activations, double sums): the
//    quantized types round activations to 8 bits (per 32 or 256 elements, step amax/127), an
//    error of about 0.3-0.5% of |x| per element that averages out over a dot product; on
//    Gaussian data the RMS error of y is ~0.5% of its typical size, so we require <= 1.5% (<= 1e-5
//    for the float types, which use the f32 activations as they are).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/tensor_type.h"
#include "engram/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant.h"

namespace engram {
namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

Weights make_weights(TensorType type, int64_t rows, int64_t cols, std::mt19937& rng,
                     size_t pad = 0) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Weights out;
  const size_t rb = tensor_row_bytes(type, cols) + pad;
  out.bytes.assign(rb * rows, 0xcd);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = nd(rng);
    quantize_row(type, row.data(), out.bytes.data() + r * rb, cols);
  }
  out.w = WeightMatrix{type, out.bytes.data(), rows, cols, rb, nullptr};
  return out;
}

std::vector<float> make_acts(int64_t n_tok, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n_tok * cols);
  for (auto& v : x) v = nd(rng);
  return x;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float f : v) m = std::max(m, static_cast<double>(std::fabs(f)));
  return m;
}

// RMS error relative to the typical size of an output. Weights and activations are unit
// Gaussians, so an output is N(0, cols); dividing by sqrt(cols) rather than by the actual
// outputs keeps the measure stable when a few outputs happen to be near zero.
double rel_rms(const std::vector<float>& a, const std::vector<float>& ref, int64_t cols) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
  }
  return std::sqrt(e / a.size()) / std::sqrt(static_cast<double>(cols));
}

bool is_float_type(TensorType t) {
  return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16;
}

const TensorType kTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16,
                             TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K,
                             TensorType::Q5_K, TensorType::Q6_K};

bool is_k_quant(TensorType t) {
  return t == TensorType::Q4_K || t == TensorType::Q5_K || t == TensorType::Q6_K;
}

std::string type_name(TensorType t) {
  return tensor_type_info(t).name;
}

TEST(Matmul, EveryIsaMatchesScalarAndReference) {
  ThreadPool pool(2);
  std::mt19937 rng(42);
  const Isa isas[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512};
  for (TensorType type : kTypes) {
    const bool kquant = is_k_quant(type);
    // Float types get lengths with SIMD tails; block types multiples of their block.
    std::vector<int64_t> col_options = {32, 96, 544};
    if (kquant) col_options = {256, 768, 1024};
    if (is_float_type(type)) col_options = {7, 100, 520};
    for (int64_t cols : col_options) {
      for (int64_t rows : {1, 5, 37, 64}) {
        for (int64_t n_tok : {1, 3, 17, 64}) {
          if (rows * n_tok * cols > 64 * 64 * 768) continue;  // keep the scalar runs quick
          Weights wt = make_weights(type, rows, cols, rng);
          const std::vector<float> x = make_acts(n_tok, cols, rng);
          std::vector<float> ref(n_tok * rows), scalar(n_tok * rows, -1.0f);
          matmul_reference(wt.w, x.data(), n_tok, ref.data());
          matmul_with_isa(Isa::Scalar, wt.w, x.data(), n_tok, scalar.data(), pool);
          const std::string where = type_name(type) + " rows=" + std::to_string(rows) +
                                    " cols=" + std::to_string(cols) +
                                    " n_tok=" + std::to_string(n_tok);
          EXPECT_LE(rel_rms(scalar, ref, cols), is_float_type(type) ? 1e-5 : 0.015) << where;
          const double tol = 1e-5 * std::max(1.0, max_abs(scalar));
          for (Isa isa : isas) {
            if (isa == Isa::Scalar || !isa_available(isa)) continue;
            std::vector<float> y(n_tok * rows, -1.0f);
            matmul_with_isa(isa, wt.w, x.data(), n_tok, y.data(), pool);
            double worst = 0;
            for (size_t i = 0; i < y.size(); ++i) {
              worst = std::max(worst, std::fabs(static_cast<double>(y[i]) - scalar[i]));
            }
            EXPECT_LE(worst, tol) << isa_name(isa) << " vs scalar, " << where;
          }
        }
      }
    }
  }
}

// Quantized rows repacked 16 at a time (PackedWeights) against the scalar kernel on the
// original rows: row counts around the group size, token counts around the 8/4/2/1 tiles.
TEST(Matmul, PackedMatchesScalarAndReference) {
  if (!isa_available(Isa::Avx512)) GTEST_SKIP() << "no packed layout on this CPU";
  ThreadPool pool(2);
  std::mt19937 rng(21);
  for (TensorType type :
       {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    ASSERT_TRUE(packs_type(Isa::Avx512, type));
    const bool kquant = is_k_quant(type);
    for (int64_t cols :
         kquant ? std::vector<int64_t>{256, 768} : std::vector<int64_t>{32, 96, 544}) {
      for (int64_t rows : {1, 15, 16, 17, 37, 100}) {
        Weights wt = make_weights(type, rows, cols, rng, /*pad=*/rows % 2 ? 6 : 0);
        WeightMatrix packed = wt.w;
        packed.packed = pack_weights(wt.w);
        for (int64_t n_tok : {1, 2, 3, 7, 8, 9, 15, 16, 31, 50}) {
          const std::vector<float> x = make_acts(n_tok, cols, rng);
          std::vector<float> ref(n_tok * rows), scalar(n_tok * rows), y(n_tok * rows, -1.0f);
          matmul_reference(wt.w, x.data(), n_tok, ref.data());
          matmul_with_isa(Isa::Scalar, wt.w, x.data(), n_tok, scalar.data(), pool);
          matmul_with_isa(Isa::Avx512, packed, x.data(), n_tok, y.data(), pool);
          const std::string where = type_name(type) + " rows=" + std::to_string(rows) +
                                    " cols=" + std::to_string(cols) +
                                    " n_tok=" + std::to_string(n_tok);
          const double tol = 1e-5 * std::max(1.0, max_abs(scalar));
          double worst = 0;
          for (size_t i = 0; i < y.size(); ++i) {
            worst = std::max(worst, std::fabs(static_cast<double>(y[i]) - scalar[i]));
          }
          EXPECT_LE(worst, tol) << "packed vs scalar, " << where;
          EXPECT_LE(rel_rms(y, ref, cols), 0.015) << where;
          // A token's outputs do not depend on the tile it fell in (decode == prefill).
          for (int64_t t = 0; t < n_tok; t += 3) {
            std::vector<float> one(rows);
            matmul_with_isa(Isa::Avx512, packed, x.data() + t * cols, 1, one.data(), pool);
            for (int64_t r = 0; r < rows; ++r) {
              ASSERT_EQ(one[r], y[t * rows + r]) << where << " t=" << t << " r=" << r;
            }
          }
        }
      }
    }
  }
}

TEST(Matmul, PackOnlyQuantizedTypes) {
  std::mt19937 rng(23);
  Weights wt = make_weights(TensorType::F16, 4, 64, rng);
  EXPECT_THROW(pack_weights(wt.w), Error);
  prepack_weights(wt.w);  // no packed layout for F16: unchanged
  EXPECT_EQ(wt.w.packed, nullptr);
  Weights q = make_weights(TensorType::Q4_0, 4, 64, rng);
  prepack_weights(q.w);
  EXPECT_EQ(q.w.packed != nullptr, packs_type(best_isa(), TensorType::Q4_0));
}

TEST(Matmul, LargeShapesMatchReference) {
  // Model-sized shapes (more rows than one thread's share, prefill token chunking).
  ThreadPool pool(2);
  std::mt19937 rng(3);
  for (TensorType type : kTypes) {
    const int64_t rows = 200, cols = 768, n_tok = 300;
    Weights wt = make_weights(type, rows, cols, rng);
    prepack_weights(wt.w);
    const std::vector<float> x = make_acts(n_tok, cols, rng);
    std::vector<float> ref(n_tok * rows), y(n_tok * rows);
    matmul_reference(wt.w, x.data(), n_tok, ref.data());
    matmul(wt.w, x.data(), n_tok, y.data(), pool);
    EXPECT_LE(rel_rms(y, ref, wt.w.cols), is_float_type(type) ? 1e-5 : 0.015) << type_name(type);
  }
}

TEST(Matmul, ThreadCountDoesNotChangeResults) {
  std::mt19937 rng(5);
  ThreadPool one(1), three(3);
  for (TensorType type : kTypes) {
    Weights wt = make_weights(type, 77, 512, rng);
    prepack_weights(wt.w);
    const std::vector<float> x = make_acts(9, 512, rng);
    std::vector<float> a(9 * 77), b(9 * 77);
    matmul(wt.w, x.data(), 9, a.data(), one);
    matmul(wt.w, x.data(), 9, b.data(), three);
    EXPECT_EQ(a, b) << type_name(type);
  }
}

TEST(Matmul, PaddedRowStride) {
  ThreadPool pool(2);
  std::mt19937 rng(9);
  for (TensorType type : kTypes) {
    Weights wt = make_weights(type, 19, 256, rng, /*pad=*/64);
    prepack_weights(wt.w);
    const std::vector<float> x = make_acts(5, 256, rng);
    std::vector<float> ref(5 * 19), y(5 * 19);
    matmul_reference(wt.w, x.data(), 5, ref.data());
    matmul(wt.w, x.data(), 5, y.data(), pool);
    EXPECT_LE(rel_rms(y, ref, wt.w.cols), is_float_type(type) ? 1e-5 : 0.015) << type_name(type);
  }
}

TEST(Matmul, ZeroActivationsGiveZero) {
  ThreadPool pool(2);
  std::mt19937 rng(11);
  for (TensorType type : kTypes) {
    Weights wt = make_weights(type, 8, 256, rng);
    prepack_weights(wt.w);
    std::vector<float> x(2 * 256, 0.0f), y(2 * 8, 1.0f);
    matmul(wt.w, x.data(), 2, y.data(), pool);
    for (float v : y) EXPECT_EQ(v, 0.0f) << type_name(type);
  }
}

TEST(Matmul, RejectsBadShapesAndTypes) {
  ThreadPool pool(1);
  std::vector<uint8_t> buf(4096);
  std::vector<float> x(256), y(16);
  EXPECT_THROW(matmul(WeightMatrix{TensorType::Q8_0, buf.data(), 2, 40, 64, nullptr}, x.data(), 1,
                      y.data(), pool),
               Error);  // 40 is not a multiple of 32
  EXPECT_THROW(matmul(WeightMatrix{TensorType::Q4_K, buf.data(), 2, 256, 100, nullptr}, x.data(), 1,
                      y.data(), pool),
               Error);  // row_bytes too small
  EXPECT_THROW(matmul(WeightMatrix{TensorType::Q3_K, buf.data(), 2, 256, 110, nullptr}, x.data(), 1,
                      y.data(), pool),
               Error);  // unsupported type
}

TEST(Matmul, ManyMatricesEqualSeparateCalls) {
  // Q/K/V-like groups of mixed types and row counts read one input: every output must be the
  // bytes a separate matmul writes (same tiles, same activation quantization).
  ThreadPool pool(2);
  std::mt19937 rng(13);
  const int64_t cols = 512;
  for (int64_t n_tok : {1, 7, 300}) {
    std::vector<Weights> wts;
    wts.push_back(make_weights(TensorType::Q4_K, 96, cols, rng));
    wts.push_back(make_weights(TensorType::Q6_K, 33, cols, rng));
    wts.push_back(make_weights(TensorType::Q5_K, 40, cols, rng));
    wts.push_back(make_weights(TensorType::Q8_0, 64, cols, rng));
    wts.push_back(make_weights(TensorType::F16, 16, cols, rng));
    wts.push_back(make_weights(TensorType::Q4_0, 5, cols, rng));
    wts.push_back(make_weights(TensorType::Q8_0, 40, cols, rng));
    wts.push_back(make_weights(TensorType::Q4_0, 48, cols, rng));
    // packed (on AVX-512): the first Q4_K and Q5_K, the last Q8_0 and Q4_0
    for (size_t i : {size_t{0}, size_t{2}, wts.size() - 2, wts.size() - 1})
      prepack_weights(wts[i].w);
    const std::vector<float> x = make_acts(n_tok, cols, rng);
    std::vector<WeightMatrix> w;
    std::vector<std::vector<float>> many, one;
    for (const Weights& wt : wts) {
      w.push_back(wt.w);
      many.emplace_back(n_tok * wt.w.rows, -1.0f);
      one.emplace_back(n_tok * wt.w.rows, -2.0f);
      matmul(wt.w, x.data(), n_tok, one.back().data(), pool);
    }
    std::vector<float*> y;
    for (auto& m : many) y.push_back(m.data());
    matmul_many(w.data(), y.data(), static_cast<int>(w.size()), x.data(), n_tok, pool);
    for (size_t m = 0; m < w.size(); ++m) {
      EXPECT_EQ(many[m], one[m]) << "matrix " << m << " n_tok=" << n_tok;
    }
  }
}

TEST(Matmul, ManyRejectsMismatchedRowLengths) {
  ThreadPool pool(1);
  std::mt19937 rng(17);
  Weights a = make_weights(TensorType::F32, 4, 64, rng);
  Weights b = make_weights(TensorType::F32, 4, 96, rng);
  const WeightMatrix w[2] = {a.w, b.w};
  std::vector<float> x(96), y0(4), y1(4);
  float* const y[2] = {y0.data(), y1.data()};
  EXPECT_THROW(matmul_many(w, y, 2, x.data(), 1, pool), Error);
}

TEST(Matmul, IsaNameIsKnown) {
  const std::string isa = matmul_isa();
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "scalar") << isa;
}

}  // namespace
}  // namespace engram
