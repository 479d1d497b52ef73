// Turns logits into the next token: one chain shared by the CLI and the server.
// Order: penalties -> top-k -> top-p -> min-p -> temperature -> draw (greedy when temp <= 0),
// then the grammar stage when a grammar is set (see set_grammar()).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

namespace engram {

class GrammarMatcher;

struct SamplerParams {
  float temperature = 0.8f;        // <= 0: greedy
  int top_k = 40;                  // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off; divides positive logits, multiplies negative
  float frequency_penalty = 0.0f;  // subtracted once per occurrence in the window
  float presence_penalty = 0.0f;   // subtracted once if present in the window
  int penalty_last_n = 64;         // window of recent tokens the penalties look at
  uint64_t seed = 0;

  // Throws engram::Error naming the first out-of-range field.
  void validate() const;
};

// A candidate token with its (adjusted) logit and, after normalisation, its probability.
struct TokenProb {
  int32_t id;
  float logit;
  float p;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);

  // Picks the next token from logits [n_vocab]. Deterministic for a given seed and history.
  int32_t sample(std::span<const float> logits);
  // Records a token of the context (prompt or generated) for the penalties.
  void accept(int32_t token);
  // Records tokens in order, as one accept() each would; only the last penalty_last_n are read
  // (a stream resumed from a session may hold millions).
  void accept(std::span<const int32_t> tokens);
  void reset();

  // Constrains sample() to a grammar (engram/grammar.h); nullptr removes it. The chain first
  // draws from the unconstrained candidates and checks that one token (cheap); only when the
  // grammar refuses it is the full token mask computed, the refused tokens dropped and the
  // draw repeated. EOS/EOG tokens pass only where the grammar's output is complete. sample()
  // advances the matcher past the token it returns, so the caller must use that token (or
  // set a new matcher). Throws engram::Error when the grammar allows no token at all (check
  // GrammarMatcher::finished() to stop before that).
  void set_grammar(std::shared_ptr<GrammarMatcher> grammar);
  GrammarMatcher* grammar() const { return grammar_.get(); }

  // The stages, exposed for tests. Each works on a candidate list sorted or not as stated.
  static void apply_penalties(std::vector<TokenProb>& c, const std::deque<int32_t>& recent,
                              float repeat, float frequency, float presence);
  static void sort_desc(std::vector<TokenProb>& c);
  static void top_k(std::vector<TokenProb>& c, int k);    // c sorted on return
  static void softmax(std::vector<TokenProb>& c);         // sets p from logit
  static void top_p(std::vector<TokenProb>& c, float p);  // c sorted + softmaxed
  static void min_p(std::vector<TokenProb>& c, float p);  // c sorted + softmaxed

 private:
  double uniform();  // [0, 1), from the seeded generator
  // Penalties and the chain over candidates built from logits; `allowed` (a token bitset, or
  // null) drops the tokens a grammar refuses.
  int32_t draw(std::span<const float> logits, const std::vector<uint64_t>* allowed);

  SamplerParams params_;
  uint64_t rng_state_;
  std::deque<int32_t> recent_;
  std::vector<TokenProb> cand_;
  std::shared_ptr<GrammarMatcher> grammar_;
  std::vector<uint64_t> mask_;
};

}  // namespace engram
