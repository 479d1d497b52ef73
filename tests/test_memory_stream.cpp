// Memory policies driving the real forward pass (golden models: random weights, trained
// context 256): they agree with `full` while nothing has left the window, and keep running far
// past the trained context with bounded memory; a policy gets the surprise and received
// attention it asks for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "random_vectors.h"

namespace engram {
namespace {

const std::string kDir = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";

using testing_util::random_tokens;

std::unique_ptr<MemoryPolicy> policy(const std::string& kind, const Model& m,
                                     Refine refine = Refine::none) {
  MemoryParams p;
  p.kind = kind;
  p.refine = refine;
  return make_memory_policy(p, model_shape(m.config()));
}

// Attends to every cell at its own position, as `full` does, and keeps what the model hands a
// policy that asks for surprise and received attention.
class RecordingPolicy : public MemoryPolicy {
 public:
  std::string name() const override { return "recording"; }
  PolicyNeeds needs() const override {
    PolicyNeeds n;
    n.surprise = true;
    n.received = true;
    return n;
  }
  void plan(int, const QueryBlock& block, const std::vector<KvCell>& cells, const BlockData&,
            AttentionPlan& out) const override {
    out.clear();
    for (int64_t c = 0; c < int64_t(cells.size()); ++c) {
      out.cells.push_back(c);
      out.key_pos.push_back(cells[c].pos);
    }
    for (int64_t c = block.first_cell; c < block.first_cell + block.n_tokens; ++c) {
      out.query_pos.push_back(cells[c].pos);
    }
  }
  void apply(const QueryBlock& block, const std::vector<KvCell>&, const BlockData& data,
             Eviction&) override {
    surprise.insert(surprise.end(), data.surprise.begin(), data.surprise.end());
    received_sums.push_back({});
    for (const auto& r : data.received) {
      double sum = 0;
      for (float x : r) {
        EXPECT_GE(x, 0.0f);
        sum += x;
      }
      received_sums.back().push_back(sum);
    }
    block_sizes.push_back(block.n_tokens);
  }
  std::vector<float> surprise;
  std::vector<std::vector<double>> received_sums;  // [block][layer]
  std::vector<int> block_sizes;
};

// The surprise a policy receives is -log softmax of the previous token's logits at the token,
// across block boundaries; the attention each key received sums, per layer, to one unit per
// query and head.
TEST(PolicyData, PolicyGetsEachTokensSurpriseAndTheAttentionItsKeysReceived) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(2);
  const int n_vocab = model->config().n_vocab;
  const int n_head = model->config().n_head;
  const auto tokens = random_tokens(150, n_vocab, 3);
  Context full(*model, pool);
  full.eval(tokens, true);

  auto owned = std::make_unique<RecordingPolicy>();
  RecordingPolicy* rec = owned.get();
  Context ctx(*model, pool, {}, std::move(owned));
  const std::span<const int32_t> all(tokens);
  for (size_t at = 0; at < tokens.size();) {  // blocks of 1, 7, 64, ... tokens
    const size_t n = std::min(tokens.size() - at, at == 0 ? size_t(1) : at < 30 ? size_t(7) : 64);
    ctx.eval(all.subspan(at, n));
    at += n;
  }
  ASSERT_EQ(rec->surprise.size(), tokens.size());
  EXPECT_EQ(rec->surprise[0], 0.0f);  // nothing predicts the first token
  for (size_t t = 1; t < tokens.size(); ++t) {
    const std::span<const float> lg = full.logits(int64_t(t) - 1);
    double mx = lg[0], sum = 0;
    for (float x : lg) mx = std::max(mx, double(x));
    for (float x : lg) sum += std::exp(double(x) - mx);
    const double want = std::log(sum) + mx - lg[tokens[t]];
    ASSERT_NEAR(rec->surprise[t], want, 1e-3 * std::max(1.0, want)) << "token " << t;
  }
  ASSERT_EQ(rec->received_sums.size(), rec->block_sizes.size());
  for (size_t b = 0; b < rec->block_sizes.size(); ++b) {
    for (double s : rec->received_sums[b]) {
      EXPECT_NEAR(s, double(rec->block_sizes[b]) * n_head, 1e-3 * rec->block_sizes[b] * n_head)
          << "block " << b;
    }
  }
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

// What the CLI's progress bar relies on: a long input evaluated in slices of whole chunks gives
// bit for bit what one call gives (the same blocks reach the policy), ending in the same short
// block that a policy takes for a question.
TEST(MemoryStream, SlicesOfWholeChunksEqualOneCall) {
  auto model = Model::load(kDir + "llama_f32.gguf");
  ThreadPool pool(2);
  const auto tokens = random_tokens(1500, model->config().n_vocab, 6);
  for (const char* kind : {"sinks", "episodic"}) {
    Context whole(*model, pool, {}, policy(kind, *model));
    whole.eval(tokens);
    Context sliced(*model, pool, {}, policy(kind, *model));
    const size_t slice = 2 * static_cast<size_t>(sliced.block_limit());
    ASSERT_LT(slice, tokens.size());
    for (size_t i = 0; i < tokens.size(); i += slice) {
      sliced.eval(std::span<const int32_t>(tokens).subspan(i, std::min(slice, tokens.size() - i)));
    }
    ASSERT_EQ(sliced.n_past(), whole.n_past());
    EXPECT_EQ(sliced.memory_stats().units, whole.memory_stats().units) << kind;
    for (size_t v = 0; v < whole.logits().size(); ++v) {
      ASSERT_EQ(sliced.logits()[v], whole.logits()[v]) << kind << " logit " << v;
    }
  }
}

}  // namespace
}  // namespace engram
