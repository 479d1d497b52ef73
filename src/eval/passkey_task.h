// The InfiniteBench passkey task: an intro, filler text with a five-digit key hidden at a chosen
// depth, and the question. Shared by `engram eval passkey` and `engram demo`.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "eval/filler.h"

namespace engram {

class Tokenizer;

// InfiniteBench's wording (engram-tiny was trained on it, beside variants).
extern const char* const kPasskeyIntro;
extern const char* const kPasskeyNeedle;  // fmt pattern: the key twice
extern const char* const kPasskeyQuestion;

struct PasskeyPrompt {
  std::string key;
  std::vector<int32_t> tokens;  // BOS (if the model adds one), intro, filler, needle, question
  int64_t needle_begin = 0;     // token range of the needle sentence in `tokens`
  int64_t needle_end = 0;
  int64_t question_begin = 0;  // the question is tokens[question_begin, end)
};

class PasskeyTask {
 public:
  // `filler` is tokenized once; prompts take it from a random offset, wrapping around.
  PasskeyTask(const Tokenizer& tok, const std::string& filler_text);

  // A prompt of exactly `length` tokens with the needle at `depth` (0: right after the intro,
  // 1: right before the question) of the filler. Draws the key, then the filler offset, from rng.
  PasskeyPrompt make(int64_t length, double depth, std::mt19937_64& rng) const;

 private:
  const Tokenizer& tok_;
  Filler filler_;
  std::vector<int32_t> intro_, question_;
  int32_t bos_ = -1;
};

// True when the answer's first word (after spaces) is the key.
bool passkey_answer_matches(const std::string& answer, const std::string& key);

}  // namespace engram
