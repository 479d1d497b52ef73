// AttentionRecorder: a `full` policy that keeps the attention mass each position received from
// the last block's queries. It must not change what the model computes, and every layer's mass
// must add up to one per query and head (each softmax row sums to 1).
#include <gtest/gtest.h>

#include <cmath>

#include "engram/context.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "eval/attention_recorder.h"
#include "random_vectors.h"

namespace engram::eval {
namespace {

const std::string kModel = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/llama_f32.gguf";

TEST(AttentionRecorder, KeepsTheLastBlocksAttentionWithoutChangingTheModel) {
  auto model = Model::load(kModel);
  const ModelConfig& c = model->config();
  ThreadPool pool(2);
  auto owned = std::make_unique<AttentionRecorder>(c.n_ctx_train);
  AttentionRecorder* rec = owned.get();
  Context with(*model, pool, {}, std::move(owned));
  Context plain(*model, pool);
  const auto prefix = testing_util::random_tokens(40, c.n_vocab, 1);
  const auto answer = testing_util::random_tokens(7, c.n_vocab, 2);
  for (Context* ctx : {&with, &plain}) {
    ctx->eval(prefix);
    ctx->eval(answer);
  }
  const auto a = with.logits(), b = plain.logits();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4f) << i;

  // The answer block's 7 queries, every head, per layer: total mass 7 * n_head.
  ASSERT_EQ(rec->received().size(), size_t(c.n_layer));
  for (const auto& row : rec->received()) {
    ASSERT_EQ(row.size(), prefix.size() + answer.size());
    double sum = 0;
    for (float v : row) {
      EXPECT_GE(v, 0.0f);
      sum += v;
    }
    EXPECT_NEAR(sum, 7.0 * c.n_head, 1e-3);
    // Causal: the last position is seen by the last query only, at most one per head.
    EXPECT_LE(row.back(), c.n_head + 1e-4);
  }
  const double total = rec->mass(0, 47);
  EXPECT_NEAR(total, 7.0 * c.n_head * c.n_layer, 1e-2);
  EXPECT_NEAR(rec->mass(0, 20) + rec->mass(20, 47), total, 1e-3);
  EXPECT_EQ(rec->mass(47, 100), 0.0);

  with.clear();
  EXPECT_TRUE(rec->received().empty());
  with.eval(prefix);
  EXPECT_NEAR(rec->mass(0, 40), 40.0 * c.n_head * c.n_layer, 1e-1);
}

}  // namespace
}  // namespace engram::eval
