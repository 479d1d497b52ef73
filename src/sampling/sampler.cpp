#include "engram/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "engram/error.h"
#include "engram/grammar.h"

namespace engram {

void SamplerParams::validate() const {
  auto bad = [](const char* name, double v, const char* range) {
    throw Error(fmt::format("sampler: {} = {} is out of range ({})", name, v, range));
  };
  if (!std::isfinite(temperature)) bad("temperature", temperature, "a finite number");
  if (!(top_p > 0.0f && top_p <= 1.0f)) bad("top_p", top_p, "(0, 1]");
  if (!(min_p >= 0.0f && min_p < 1.0f)) bad("min_p", min_p, "[0, 1)");
  if (!(repeat_penalty > 0.0f && std::isfinite(repeat_penalty))) {
    bad("repeat_penalty", repeat_penalty, "> 0");
  }
  if (!std::isfinite(frequency_penalty)) bad("frequency_penalty", frequency_penalty, "finite");
  if (!std::isfinite(presence_penalty)) bad("presence_penalty", presence_penalty, "finite");
  if (penalty_last_n < 0) bad("penalty_last_n", penalty_last_n, ">= 0");
}

Sampler::Sampler(const SamplerParams& params) : params_(params) {
  params_.validate();
  reset();
}

void Sampler::reset() {
  // splitmix64 of the seed: a well-mixed, portable start state.
  rng_state_ = params_.seed + 0x9E3779B97F4A7C15ull;
  recent_.clear();
}

double Sampler::uniform() {
  // splitmix64: portable and reproducible across compilers, unlike std:: distributions.
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

void Sampler::accept(int32_t token) {
  if (params_.penalty_last_n == 0) return;
  recent_.push_back(token);
  while (static_cast<int>(recent_.size()) > params_.penalty_last_n) recent_.pop_front();
}

void Sampler::accept(std::span<const int32_t> tokens) {
  const size_t window = static_cast<size_t>(params_.penalty_last_n);
  for (size_t i = tokens.size() > window ? tokens.size() - window : 0; i < tokens.size(); ++i) {
    accept(tokens[i]);
  }
}

void Sampler::apply_penalties(std::vector<TokenProb>& c, const std::deque<int32_t>& recent,
                              float repeat, float frequency, float presence) {
  if (recent.empty() || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
  std::unordered_map<int32_t, int> count;
  for (int32_t t : recent) ++count[t];
  for (TokenProb& t : c) {
    auto it = count.find(t.id);
    if (it == count.end()) continue;
    t.logit = t.logit > 0 ? t.logit / repeat : t.logit * repeat;
    t.logit -= frequency * it->second + presence;
  }
}

void Sampler::sort_desc(std::vector<TokenProb>& c) {
  // Ties broken by id so the order never depends on the sort algorithm.
  std::sort(c.begin(), c.end(), [](const TokenProb& a, const TokenProb& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  });
}

void Sampler::top_k(std::vector<TokenProb>& c, int k) {
  if (k > 0 && static_cast<size_t>(k) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + k, c.end(),
                      [](const TokenProb& a, const TokenProb& b) {
                        return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
                      });
    c.resize(k);
  } else {
    sort_desc(c);
  }
}

void Sampler::softmax(std::vector<TokenProb>& c) {
  if (c.empty()) return;
  float mx = c[0].logit;
  for (const TokenProb& t : c) mx = std::max(mx, t.logit);
  double sum = 0;
  for (TokenProb& t : c) {
    t.p = std::exp(t.logit - mx);
    sum += t.p;
  }
  for (TokenProb& t : c) t.p = static_cast<float>(t.p / sum);
}

void Sampler::top_p(std::vector<TokenProb>& c, float p) {
  if (p >= 1.0f) return;
  // Keep the smallest prefix whose mass reaches p.
  double cum = 0;
  size_t keep = c.size();
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  c.resize(std::max<size_t>(keep, 1));
}

void Sampler::min_p(std::vector<TokenProb>& c, float p) {
  if (p <= 0.0f || c.empty()) return;
  const float floor = c[0].p * p;
  size_t keep = 1;
  while (keep < c.size() && c[keep].p >= floor) ++keep;
  c.resize(keep);
}

void Sampler::set_grammar(std::shared_ptr<GrammarMatcher> grammar) {
  grammar_ = std::move(grammar);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampler: empty logits");
  if (!grammar_) return draw(logits, nullptr);
  // Sample first and check the one token; the whole mask only when it is refused.
  int32_t t = draw(logits, nullptr);
  if (!grammar_->allows(t)) {
    grammar_->fill_mask(mask_);
    bool any = false;
    for (size_t w = 0; w < mask_.size() && !any; ++w) any = mask_[w] != 0;
    if (!any) throw Error("sampler: the grammar allows no token here (its output is complete)");
    if (mask_.size() * 64 < logits.size()) mask_.resize((logits.size() + 63) / 64, 0);
    t = draw(logits, &mask_);
  }
  if (!grammar_->accept(t)) throw Error(fmt::format("sampler: the grammar refused token {}", t));
  return t;
}

int32_t Sampler::draw(std::span<const float> logits, const std::vector<uint64_t>* allowed) {
  cand_.clear();
  cand_.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    if (allowed && !(((*allowed)[i >> 6] >> (i & 63)) & 1)) continue;
    cand_.push_back({static_cast<int32_t>(i), logits[i], 0.0f});
  }
  if (cand_.empty()) throw Error("sampler: no candidate token");
  apply_penalties(cand_, recent_, params_.repeat_penalty, params_.frequency_penalty,
                  params_.presence_penalty);
  if (params_.temperature <= 0.0f) {
    const auto best =
        std::max_element(cand_.begin(), cand_.end(), [](const TokenProb& a, const TokenProb& b) {
          return a.logit != b.logit ? a.logit < b.logit : a.id > b.id;
        });
    return best->id;
  }
  top_k(cand_, params_.top_k);
  softmax(cand_);
  top_p(cand_, params_.top_p);
  min_p(cand_, params_.min_p);
  for (TokenProb& t : cand_) t.logit /= params_.temperature;
  softmax(cand_);
  double r = uniform();
  for (const TokenProb& t : cand_) {
    r -= t.p;
    if (r < 0) return t.id;
  }
  return cand_.back().id;
}

}  // namespace engram
