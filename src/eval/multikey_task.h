// Multi-key retrieval: several labelled five-digit pass keys hidden at random depths of filler
// text, and one of them asked. A policy must bring back the right needle among look-alikes:
// a key from another needle is a wrong answer. engram-tiny was trained on this wording
// (tools/train/tasks.py, `multikey`, with 2-5 keys in 64-512 tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "eval/filler.h"
#include "eval/needle_wording.h"

namespace engram {

class Tokenizer;

extern const char* const kMultiKeyNeedle;    // "{label}", "{key}"
extern const char* const kMultiKeyQuestion;  // "{label}" twice

// The labels the keys are filed under (the training task's list); a prompt uses distinct ones.
const std::vector<std::string>& multikey_labels();

struct MultiKeyPrompt {
  std::vector<std::string> labels, keys;             // per needle, in stream order
  std::vector<std::pair<int64_t, int64_t>> needles;  // token range of each needle sentence
  int asked = 0;                                     // the needle the question asks for
  std::vector<int32_t> tokens;                       // BOS (if the model adds one), text, question
  int64_t question_begin = 0;                        // the question is tokens[question_begin, end)
};

class MultiKeyTask {
 public:
  MultiKeyTask(const Tokenizer& tok, const std::string& filler_text);
  // The same over a filler shared with other tasks, in `wording` (its templates hold "{label}").
  MultiKeyTask(const Tokenizer& tok, std::shared_ptr<const Filler> filler, NeedleWording wording);

  // A prompt of exactly `length` tokens: n_keys needles (2 <= n_keys <= the number of labels)
  // with distinct labels and keys at uniformly random depths of the filler, then the question
  // for needle `asked` (0-based, in stream order), as its own block or the stream's last line.
  // Everything random is drawn from rng.
  MultiKeyPrompt make(int64_t length, int n_keys, int asked, std::mt19937_64& rng,
                      QuestionAt at = QuestionAt::block) const;

  const NeedleWording& wording() const { return wording_; }

 private:
  const Tokenizer& tok_;
  std::shared_ptr<const Filler> filler_;
  NeedleWording wording_;
  int32_t bos_ = -1;
};

}  // namespace engram
