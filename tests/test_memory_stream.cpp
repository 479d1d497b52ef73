// Memory policies driving the real forward pass (golden models: random weights, trained
// context 256): they agree with `full` while nothing has left the window, and keep running far
// past the trained context with bounded memory.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"

namespace engram {
namespace {

const std::string kDir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

std::vector<int32_t> random_tokens(int n, int n_vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, n_vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

std::unique_ptr<MemoryPolicy> policy(const std::string& kind, const Model& m,
                                     Refine refine = Refine::none) {
  MemoryParams p;
  p.kind = kind;
  p.refine = refine;
  return make_memory_policy(p, model_shape(m.config()));
}

class MemoryStream : public ::testing::TestWithParam<std::string> {};

TEST_P(MemoryStream, EqualsFullWhileNothingHasLeftTheWindow) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(2);
  const int n_vocab = model->config().n_vocab;
  const auto tokens = random_tokens(120, n_vocab, 1);
  Context full(*model, pool);
  full.eval(tokens, true);
  Context ctx(*model, pool, {}, policy(GetParam(), *model));
  ctx.eval(tokens, true);
  double worst = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (int v = 0; v < n_vocab; ++v) {
      worst = std::max(worst, double(std::fabs(ctx.logits(t)[v] - full.logits(t)[v])));
    }
  }
  EXPECT_LE(worst, 1e-4) << GetParam();
}

TEST_P(MemoryStream, RunsFarPastTheTrainedContextWithBoundedMemory) {
  auto model = Model::load(kDir + "llama_f16.gguf");
  ThreadPool pool(2);
  const int n_ctx_train = model->config().n_ctx_train;
  const auto tokens = random_tokens(8 * n_ctx_train, model->config().n_vocab, 2);
  Context ctx(*model, pool, {}, policy(GetParam(), *model));
  int64_t most_held = 0;
  for (size_t i = 0; i < tokens.size(); i += 97) {
    const size_t n = std::min<size_t>(97, tokens.size() - i);
    ctx.eval(std::span<const int32_t>(tokens.data() + i, n));
    most_held = std::max(most_held, ctx.memory_stats().cells_held);
    for (float v : ctx.logits()) ASSERT_TRUE(std::isfinite(v));
  }
  // A few decode steps after the long prefill.
  for (int i = 0; i < 40; ++i) {
    const int32_t one[1] = {tokens[i]};
    ctx.eval(one);
    most_held = std::max(most_held, ctx.memory_stats().cells_held);
  }
  EXPECT_EQ(ctx.n_past(), int64_t(tokens.size()) + 40);
  const MemoryStats m = ctx.memory_stats();
  // Every block attends to at most the trained context's worth of positions' keys.
  EXPECT_LE(m.cells_attended, n_ctx_train + 256) << GetParam();
  if (GetParam() == "sinks" || GetParam() == "window") {
    EXPECT_LE(most_held, n_ctx_train + 32 + 97) << GetParam();  // window + batch slack + block
  } else {
    EXPECT_GT(m.units, 10) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, MemoryStream,
                         ::testing::Values("window", "sinks", "blocks", "episodic"));

TEST(MemoryStream, EpisodicWithRefinementFormsEvents) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(2);
  const auto tokens = random_tokens(1200, model->config().n_vocab, 3);
  for (Refine r : {Refine::modularity, Refine::conductance}) {
    Context ctx(*model, pool, {}, policy("episodic", *model, r));
    ctx.eval(tokens);
    EXPECT_GT(ctx.memory_stats().units, 10);
  }
}

TEST(MemoryStream, F16StoreHalvesTheCacheAndStaysCloseToF32) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(2);
  const auto tokens = random_tokens(600, model->config().n_vocab, 6);
  MemoryParams p;
  p.kind = "episodic";
  Context f32(*model, pool, {}, make_memory_policy(p, model_shape(model->config())));
  p.kv_f16 = true;
  Context f16(*model, pool, {}, make_memory_policy(p, model_shape(model->config())));
  f32.eval(tokens);
  f16.eval(tokens);
  double worst = 0;
  for (size_t v = 0; v < f32.logits().size(); ++v) {
    worst = std::max(worst, double(std::fabs(f32.logits()[v] - f16.logits()[v])));
  }
  EXPECT_LE(worst, 0.05);
  EXPECT_GT(worst, 0.0);  // it really is stored differently
}

TEST(MemoryStream, FullStillRefusesToGrowPastItsContext) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(1);
  Context ctx(*model, pool, {}, policy("full", *model));
  const auto tokens = random_tokens(model->config().n_ctx_train + 1, model->config().n_vocab, 4);
  EXPECT_THROW(ctx.eval(tokens), Error);
  EXPECT_EQ(ctx.n_past(), 0);
}

TEST(MemoryStream, ClearStartsTheStreamOver) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(2);
  const auto tokens = random_tokens(700, model->config().n_vocab, 5);
  Context a(*model, pool, {}, policy("episodic", *model));
  a.eval(tokens);
  a.clear();
  EXPECT_EQ(a.memory_stats().units, 0);
  a.eval(std::span<const int32_t>(tokens.data(), 50));
  Context b(*model, pool, {}, policy("episodic", *model));
  b.eval(std::span<const int32_t>(tokens.data(), 50));
  for (size_t v = 0; v < a.logits().size(); ++v) EXPECT_EQ(a.logits()[v], b.logits()[v]);
}

}  // namespace
}  // namespace engram
