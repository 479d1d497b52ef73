// The shipped model against its PyTorch reference (tools/train/reference.py, which reads the
// GGUF itself): greedy continuations token for token, and held-out perplexity within 0.5%.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engram/context.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"

namespace engram {
namespace {

const std::string kRoot = std::string(ENGRAM_SOURCE_DIR) + "/";

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(kRoot + path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST(ShippedModel, GreedyContinuationsMatchTheReference) {
  const auto g = load_json("tests/fixtures/shipped/greedy.json");
  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  ThreadPool pool(2);
  Context ctx(*model, pool);
  int checked = 0;
  for (const auto& p : g["prompts"]) {
    const auto prompt = p["prompt"].get<std::vector<int32_t>>();
    const auto expected = p["continuation"].get<std::vector<int32_t>>();
    ctx.clear();
    ctx.eval(prompt);
    std::vector<int32_t> got;
    for (size_t i = 0; i < expected.size(); ++i) {
      got.push_back(argmax(ctx.logits()));
      ctx.eval(std::span<const int32_t>(&got.back(), 1));
    }
    EXPECT_EQ(got, expected) << "prompt " << checked;
    ++checked;
  }
  EXPECT_EQ(checked, 20);
}

TEST(ShippedModel, HeldOutPerplexityMatchesTheReference) {
  const auto f = load_json("tests/fixtures/shipped/perplexity.json");
  const auto& set = f["sets"]["heldout_sample"];
  const auto tokens = set["tokens"].get<std::vector<int32_t>>();
  const int64_t n_ctx = f["n_ctx"].get<int64_t>();

  auto model = Model::load(kRoot + "models/engram-tiny.gguf");
  // The tokenizer reproduces the reference's token stream of the same text.
  auto tok = Tokenizer::from_gguf(model->file());
  std::ifstream in(kRoot + "data/heldout_sample.txt", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(tok->encode(text, true, false), tokens);

  ThreadPool pool(1);  // a long run: one thread, as in test_shipped_memory.cpp
  ContextParams cp;
  cp.n_ctx = n_ctx;
  Context ctx(*model, pool, cp);
  double sum = 0;
  int64_t count = 0;
  const int64_t n_chunk = int64_t(tokens.size()) / n_ctx;
  for (int64_t c = 0; c < n_chunk; ++c) {
    std::vector<int32_t> w(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    w[0] = tok->bos();
    ctx.clear();
    ctx.eval(w, true);
    for (int64_t j = n_ctx / 2; j < n_ctx - 1; ++j) {
      auto l = ctx.logits(j);
      const float mx = *std::max_element(l.begin(), l.end());
      double z = 0;
      for (float v : l) z += std::exp(double(v) - mx);
      sum += std::log(z) - (double(l[w[j + 1]]) - mx);
      ++count;
    }
  }
  EXPECT_EQ(count, set["scored_tokens"].get<int64_t>());
  const double ppl = std::exp(sum / count);
  const double ref = set["ppl"].get<double>();
  EXPECT_NEAR(ppl / ref, 1.0, 0.005) << "engram " << ppl << " vs reference " << ref;
}

}  // namespace
}  // namespace engram
