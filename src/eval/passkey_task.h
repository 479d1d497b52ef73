// The passkey task: an intro, filler text with a five-digit key hidden at a chosen depth, and
// the question, in one of several wordings (eval/needle_wording.h; InfiniteBench's by default).
// Shared by `engram eval passkey` and `engram demo`.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "eval/filler.h"
#include "eval/needle_wording.h"

namespace engram {

class Tokenizer;

// InfiniteBench's wording (engram-tiny was trained on it, beside variants).
extern const char* const kPasskeyIntro;
extern const char* const kPasskeyNeedle;  // "{key}" twice
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
  // The same over a filler shared with other tasks, in `wording`.
  PasskeyTask(const Tokenizer& tok, std::shared_ptr<const Filler> filler, NeedleWording wording);

  // A prompt of exactly `length` tokens with the needle at `depth` (0: right after the intro,
  // 1: right before the question) of the filler. Draws the key, then the filler offset, from rng.
  // With QuestionAt::end the question is the stream's last line (a newline precedes it).
  PasskeyPrompt make(int64_t length, double depth, std::mt19937_64& rng,
                     QuestionAt at = QuestionAt::block) const;

  const NeedleWording& wording() const { return wording_; }

 private:
  const Tokenizer& tok_;
  std::shared_ptr<const Filler> filler_;
  NeedleWording wording_;
  std::vector<int32_t> intro_, question_[2];  // question_[QuestionAt]
  int32_t bos_ = -1;
};

// True when the answer's first word (after spaces) is the key.
bool passkey_answer_matches(const std::string& answer, const std::string& key);

}  // namespace engram
