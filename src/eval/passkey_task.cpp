#include "eval/passkey_task.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include "engram/error.h"
#include "engram/tokenizer.h"

namespace engram {

const char* const kPasskeyIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize "
    "them. I will quiz you about the important information there.";
const char* const kPasskeyNeedle = "The pass key is {}. Remember it. {} is the pass key.";
const char* const kPasskeyQuestion = "What is the pass key? The pass key is";

PasskeyTask::PasskeyTask(const Tokenizer& tok, const std::string& filler_text)
    : tok_(tok),
      filler_(tok.encode(filler_text, false, false)),
      intro_(tok.encode(kPasskeyIntro, false, false)),
      question_(tok.encode(kPasskeyQuestion, false, false)),
      bos_(tok.add_bos() ? tok.bos() : -1) {
  if (filler_.size() < 64) {
    throw Error(fmt::format("passkey: the filler text is too short ({} tokens, want >= 64)",
                            filler_.size()));
  }
}

PasskeyPrompt PasskeyTask::make(int64_t length, double depth, std::mt19937_64& rng) const {
  if (!(depth >= 0 && depth <= 1)) {
    throw Error(fmt::format("passkey: depth {} is not in [0, 1]", depth));
  }
  PasskeyPrompt p;
  p.key = std::to_string(std::uniform_int_distribution<int>(10000, 99999)(rng));
  const std::vector<int32_t> needle =
      tok_.encode(fmt::format(fmt::runtime(kPasskeyNeedle), p.key, p.key), false, false);
  const int64_t fixed = (bos_ >= 0) + intro_.size() + needle.size() + question_.size();
  const int64_t n_fill = length - fixed;
  if (n_fill < 0) {
    throw Error(fmt::format("passkey: length {} is shorter than the task's {} fixed tokens", length,
                            fixed));
  }
  const int64_t at = static_cast<int64_t>(std::llround(depth * n_fill));
  size_t off = std::uniform_int_distribution<size_t>(0, filler_.size() - 1)(rng);
  std::vector<int32_t>& seq = p.tokens;
  seq.reserve(length);
  if (bos_ >= 0) seq.push_back(bos_);
  seq.insert(seq.end(), intro_.begin(), intro_.end());
  auto fill = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) seq.push_back(filler_[off++ % filler_.size()]);
  };
  fill(at);
  p.needle_begin = static_cast<int64_t>(seq.size());
  seq.insert(seq.end(), needle.begin(), needle.end());
  p.needle_end = static_cast<int64_t>(seq.size());
  fill(n_fill - at);
  p.question_begin = static_cast<int64_t>(seq.size());
  seq.insert(seq.end(), question_.begin(), question_.end());
  return p;
}

bool passkey_answer_matches(const std::string& answer, const std::string& key) {
  const size_t i = answer.find_first_not_of(" \n\t");
  if (i == std::string::npos || answer.compare(i, key.size(), key) != 0) return false;
  const size_t j = i + key.size();
  return j == answer.size() || !std::isalnum(static_cast<unsigned char>(answer[j]));
}

}  // namespace engram
