// End to end: the shipped model, reading an 8k-token stream (16x its trained context) through
// the episodic memory policy, answers the passkey question, and every layer loaded the needle.
// (This 2-layer model's first layer has no content-matching heads and does not find the needle
// by itself; shared retrieval gives it what the last layer found: EVALUATION.md.)
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "engram/context.h"
#include "engram/memory.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "eval/passkey_task.h"

namespace engram {
namespace {

std::unique_ptr<MemoryPolicy> episodic_for(const Model& model) {
  MemoryParams p;
  p.kind = "episodic";
  const ModelShape s = model_shape(model.config());
  return make_memory_policy(resolve_memory_params(p, s), s);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Greedy answer of `n` tokens after the prompt's last block.
std::string answer(Context& ctx, const Tokenizer& tok, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::span<const float> lg = ctx.logits();
    const auto next = static_cast<int32_t>(std::max_element(lg.begin(), lg.end()) - lg.begin());
    out.push_back(next);
    const int32_t one[1] = {next};
    ctx.eval(one);
  }
  return tok.decode(out);
}

// Memory keeps the model's own recall: for each depth, the same key is asked within the trained
// context with full attention (504 tokens) and at 8k through `episodic`; wherever the model
// recalls it in its own context it must recall it at 8k, and every layer must have loaded the
// needle either way.
TEST(ShippedMemory, EpisodicAnswersThePasskeyIn8kTokensWhereverFullAttentionDoes) {
  const std::string root = std::string(ENGRAM_SOURCE_DIR) + "/";
  auto model = Model::load(root + "models/engram-tiny.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  const PasskeyTask task(*tok, slurp(root + "data/heldout_sample.txt"));
  // One thread: ctest runs two tests at once on CI's two cores, and a second thread would only
  // spin against the other test. Results do not depend on the thread count (test_matmul,
  // test_ops check that).
  ThreadPool pool(1);
  std::mt19937_64 rng(2024);
  int recalled_in_context = 0;
  for (double depth : {0.1, 0.5, 0.9}) {
    std::mt19937_64 same_key = rng;  // make() draws the key first
    const PasskeyPrompt p = task.make(8192, depth, rng);
    const PasskeyPrompt short_p = task.make(504, depth, same_key);
    ASSERT_EQ(short_p.key, p.key);

    Context full(*model, pool, {});
    full.eval(short_p.tokens);
    const bool in_context = passkey_answer_matches(answer(full, *tok, 6), p.key);
    recalled_in_context += in_context;

    Context ctx(*model, pool, {}, episodic_for(*model));
    const std::span<const int32_t> all(p.tokens);
    ctx.eval(all.first(p.question_begin));
    ctx.eval(all.subspan(p.question_begin));  // the question as its own block
    for (int l = 0; l < model->config().n_layer; ++l) {
      std::span<const int64_t> att = ctx.attended_positions(l);
      for (int64_t pos = p.needle_begin; pos < p.needle_end; ++pos) {
        EXPECT_NE(std::find(att.begin(), att.end(), pos), att.end())
            << "depth " << depth << " layer " << l << " needle token at " << pos;
      }
    }
    const std::string got = answer(ctx, *tok, 6);
    if (in_context) {
      EXPECT_TRUE(passkey_answer_matches(got, p.key))
          << "depth " << depth << ": key " << p.key << ", answer at 8k '" << got << "'";
    }
  }
  // Not vacuous: the model recalls these keys in its own context.
  EXPECT_GE(recalled_in_context, 2);
}

}  // namespace
}  // namespace engram
