// Sampler stages on known distributions, and reproducibility of the whole chain.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engram/error.h"
#include "engram/sampler.h"

namespace engram {
namespace {

std::vector<TokenProb> from_probs(const std::vector<float>& p) {
  std::vector<TokenProb> c;
  for (size_t i = 0; i < p.size(); ++i) c.push_back({int32_t(i), std::log(p[i]), 0});
  return c;
}

TEST(Sampler, SoftmaxRecoversProbabilities) {
  auto c = from_probs({0.5f, 0.25f, 0.125f, 0.125f});
  Sampler::softmax(c);
  EXPECT_NEAR(c[0].p, 0.5f, 1e-6);
  EXPECT_NEAR(c[3].p, 0.125f, 1e-6);
}

TEST(Sampler, TopKKeepsTheKLargestSorted) {
  auto c = from_probs({0.1f, 0.4f, 0.2f, 0.3f});
  Sampler::top_k(c, 2);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 1);
  EXPECT_EQ(c[1].id, 3);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixOverP) {
  auto c = from_probs({0.4f, 0.3f, 0.2f, 0.1f});
  Sampler::sort_desc(c);
  Sampler::softmax(c);
  auto d = c;
  Sampler::top_p(d, 0.65f);  // 0.4 < 0.65 <= 0.7
  EXPECT_EQ(d.size(), 2u);
  d = c;
  Sampler::top_p(d, 0.71f);  // needs 0.4 + 0.3 + 0.2
  EXPECT_EQ(d.size(), 3u);
  d = c;
  Sampler::top_p(d, 0.1f);  // always at least one
  EXPECT_EQ(d.size(), 1u);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheTop) {
  auto c = from_probs({0.5f, 0.3f, 0.15f, 0.05f});
  Sampler::sort_desc(c);
  Sampler::softmax(c);
  Sampler::min_p(c, 0.2f);  // floor 0.1: drops 0.05
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c.back().id, 2);
}

TEST(Sampler, PenaltiesLowerRecentTokens) {
  std::vector<TokenProb> c = {{0, 2.0f, 0}, {1, -2.0f, 0}, {2, 2.0f, 0}};
  std::deque<int32_t> recent = {0, 1, 0};
  Sampler::apply_penalties(c, recent, 2.0f, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(c[0].logit, 2.0f / 2 - 0.5f * 2 - 0.25f);
  EXPECT_FLOAT_EQ(c[1].logit, -2.0f * 2 - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(c[2].logit, 2.0f);  // not recent
}

// Accepting a span is accepting each token in turn: the window keeps the last penalty_last_n.
TEST(Sampler, AcceptingASpanKeepsTheLastWindowOfTokens) {
  SamplerParams p;
  p.temperature = 0;
  p.repeat_penalty = 100;
  p.penalty_last_n = 2;
  const std::vector<float> logits = {3.0f, 2.9f, 2.8f, 0.0f};
  const std::vector<int32_t> seen = {2, 2, 0, 1};
  Sampler one_by_one(p), spanned(p);
  for (int32_t t : seen) one_by_one.accept(t);
  spanned.accept(seen);
  // 0 and 1 are in the window, 2 has left it.
  EXPECT_EQ(one_by_one.sample(logits), 2);
  EXPECT_EQ(spanned.sample(logits), 2);
  p.penalty_last_n = 0;  // no penalties: nothing is kept
  Sampler none(p);
  none.accept(seen);
  EXPECT_EQ(none.sample(logits), 0);
}

TEST(Sampler, GreedyPicksTheArgmax) {
  SamplerParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 2.9f};
  EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i)) * 2;
  auto draw = [&](uint64_t seed) {
    SamplerParams p;
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, DrawFrequenciesFollowTheDistribution) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.seed = 123;
  Sampler s(p);
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits)];
  EXPECT_NEAR(counts[0] / double(n), 0.6, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.1, 0.02);
}

TEST(Sampler, RejectsOutOfRangeParameters) {
  SamplerParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.min_p = 1.5f;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.repeat_penalty = 0;
  try {
    Sampler s(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("repeat_penalty"), std::string::npos);
  }
}

}  // namespace
}  // namespace engram
