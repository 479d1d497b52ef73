// The forward pass against golden logits from an independent PyTorch reference
// (tools/py/make_golden.py): prefill of the whole prompt, prefill in small chunks, and
// token-by-token decode must all match within the fixture's tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"

namespace engram {
namespace {

const std::string kDir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

struct Golden {
  std::vector<int32_t> prompt;
  std::vector<float> logits;  // [n_tok, n_vocab]
  int n_vocab = 0;
  double tol = 0;
};

Golden load_golden(const std::string& name) {
  std::ifstream js(kDir + name + ".json");
  EXPECT_TRUE(js.good()) << name;
  nlohmann::json j = nlohmann::json::parse(js);
  Golden g;
  g.prompt = j["prompt"].get<std::vector<int32_t>>();
  g.n_vocab = j["shape"][1].get<int>();
  g.tol = j["tolerance_max_abs"].get<double>();
  std::ifstream bin(kDir + j["logits"].get<std::string>(), std::ios::binary);
  g.logits.resize(g.prompt.size() * g.n_vocab);
  bin.read(reinterpret_cast<char*>(g.logits.data()), g.logits.size() * sizeof(float));
  EXPECT_TRUE(bin.good()) << name;
  return g;
}

double max_abs_diff(std::span<const float> a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

class GoldenLogits : public ::testing::TestWithParam<std::string> {};

// Largest |engram - reference| over every logit of the prompt, prefilled in blocks of n_batch.
double worst_prefill_diff(const std::string& name, int n_batch) {
  const Golden g = load_golden(name);
  auto model = Model::load(kDir + name + ".gguf");
  EXPECT_EQ(model->config().n_vocab, g.n_vocab);
  ThreadPool pool(2);
  ContextParams cp;
  cp.n_batch = n_batch;
  Context ctx(*model, pool, cp);
  ctx.eval(g.prompt, /*all_logits=*/true);
  double worst = 0;
  for (size_t t = 0; t < g.prompt.size(); ++t) {
    worst = std::max(worst, max_abs_diff(ctx.logits(t), &g.logits[t * g.n_vocab], g.n_vocab));
  }
  return worst;
}

TEST_P(GoldenLogits, PrefillMatchesReference) {
  EXPECT_LE(worst_prefill_diff(GetParam(), 512), load_golden(GetParam()).tol) << GetParam();
}

TEST_P(GoldenLogits, ChunkedPrefillMatchesReference) {
  // Blocks of 7 do not divide the 64-token prompt.
  EXPECT_LE(worst_prefill_diff(GetParam(), 7), load_golden(GetParam()).tol) << GetParam();
}

TEST_P(GoldenLogits, TokenByTokenDecodeMatchesReference) {
  const Golden g = load_golden(GetParam());
  auto model = Model::load(kDir + GetParam() + ".gguf");
  ThreadPool pool(2);
  Context ctx(*model, pool);
  double worst = 0;
  for (size_t t = 0; t < g.prompt.size(); ++t) {
    ctx.eval(std::span<const int32_t>(&g.prompt[t], 1));
    worst = std::max(worst, max_abs_diff(ctx.logits(), &g.logits[t * g.n_vocab], g.n_vocab));
  }
  EXPECT_LE(worst, g.tol) << GetParam();
  EXPECT_EQ(ctx.n_past(), int64_t(g.prompt.size()));
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenLogits,
                         ::testing::Values("llama_f32", "llama_f16", "llama_tied_rope_freqs",
                                           "llama_rope_linear", "qwen2_f32"));

TEST(Context, RefusesToOverflowTheFullPolicyWithoutChangingState) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(1);
  ContextParams cp;
  cp.n_ctx = 16;
  Context ctx(*model, pool, cp);
  std::vector<int32_t> ten(10, 5);
  ctx.eval(ten);
  std::vector<float> before(ctx.logits().begin(), ctx.logits().end());
  EXPECT_THROW(ctx.eval(ten), Error);
  EXPECT_EQ(ctx.n_past(), 10);
  EXPECT_EQ(max_abs_diff(ctx.logits(), before.data(), before.size()), 0.0);
  // The failed call left the stream intact: continuing works and matches a fresh run.
  std::vector<int32_t> six(6, 7);
  ctx.eval(six);
  Context fresh(*model, pool, cp);
  fresh.eval(ten);
  fresh.eval(six);
  EXPECT_EQ(max_abs_diff(ctx.logits(), fresh.logits().data(), model->config().n_vocab), 0.0);
}

TEST(Context, RejectsOutOfRangeTokenIds) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(1);
  Context ctx(*model, pool);
  std::vector<int32_t> bad = {1, 256};
  EXPECT_THROW(ctx.eval(bad), Error);
  std::vector<int32_t> neg = {-1};
  EXPECT_THROW(ctx.eval(neg), Error);
  EXPECT_EQ(ctx.n_past(), 0);
}

}  // namespace
}  // namespace engram
