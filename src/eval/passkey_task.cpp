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
const char* const kPasskeyNeedle = "The pass key is {key}. Remember it. {key} is the pass key.";
const char* const kPasskeyQuestion = "What is the pass key? The pass key is";

PasskeyTask::PasskeyTask(const Tokenizer& tok, const std::string& filler_text)
    : PasskeyTask(tok, std::make_shared<const Filler>(tok, filler_text, "passkey"),
                  passkey_wordings().front()) {}

PasskeyTask::PasskeyTask(const Tokenizer& tok, std::shared_ptr<const Filler> filler,
                         NeedleWording wording)
    : tok_(tok),
      filler_(std::move(filler)),
      wording_(std::move(wording)),
      intro_(tok.encode(wording_.intro, false, false)),
      question_{question_tokens(tok, wording_.question, QuestionAt::block),
                question_tokens(tok, wording_.question, QuestionAt::end)},
      bos_(tok.add_bos() ? tok.bos() : -1) {}

PasskeyPrompt PasskeyTask::make(int64_t length, double depth, std::mt19937_64& rng,
                                QuestionAt at) const {
  if (!(depth >= 0 && depth <= 1)) {
    throw Error(fmt::format("passkey: depth {} is not in [0, 1]", depth));
  }
  PasskeyPrompt p;
  p.key = std::to_string(std::uniform_int_distribution<int>(10000, 99999)(rng));
  const std::vector<int32_t> needle =
      tok_.encode(fill_wording(wording_.needle, p.key), false, false);
  const std::vector<int32_t>& question = question_[static_cast<int>(at)];
  const int64_t fixed = (bos_ >= 0) + intro_.size() + needle.size() + question.size();
  const int64_t n_fill = length - fixed;
  if (n_fill < 0) {
    throw Error(fmt::format("passkey: length {} is shorter than the task's {} fixed tokens", length,
                            fixed));
  }
  const int64_t at_fill = static_cast<int64_t>(std::llround(depth * n_fill));
  size_t off = filler_->random_offset(rng);
  std::vector<int32_t>& seq = p.tokens;
  seq.reserve(length);
  if (bos_ >= 0) seq.push_back(bos_);
  seq.insert(seq.end(), intro_.begin(), intro_.end());
  filler_->append(seq, at_fill, off);
  p.needle_begin = static_cast<int64_t>(seq.size());
  seq.insert(seq.end(), needle.begin(), needle.end());
  p.needle_end = static_cast<int64_t>(seq.size());
  filler_->append(seq, n_fill - at_fill, off);
  p.question_begin = static_cast<int64_t>(seq.size());
  seq.insert(seq.end(), question.begin(), question.end());
  return p;
}

bool passkey_answer_matches(const std::string& answer, const std::string& key) {
  const size_t i = answer.find_first_not_of(" \n\t");
  if (i == std::string::npos || answer.compare(i, key.size(), key) != 0) return false;
  const size_t j = i + key.size();
  return j == answer.size() || !std::isalnum(static_cast<unsigned char>(answer[j]));
}

}  // namespace engram
