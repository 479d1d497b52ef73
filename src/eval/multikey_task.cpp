#include "eval/multikey_task.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "engram/error.h"
#include "engram/tokenizer.h"

namespace engram {

const char* const kMultiKeyNeedle = "The pass key for {label} is {key}.";
const char* const kMultiKeyQuestion =
    "What is the pass key for {label}? The pass key for {label} is";

const std::vector<std::string>& multikey_labels() {
  static const std::vector<std::string> labels = {
      "the red door",  "the blue box",   "the green gate",   "the north office",
      "the old safe",  "the front desk", "the garden shed",  "the main server",
      "the back room", "the west wing",  "the small locker", "the car"};
  return labels;
}

MultiKeyTask::MultiKeyTask(const Tokenizer& tok, const std::string& filler_text)
    : MultiKeyTask(tok, std::make_shared<const Filler>(tok, filler_text, "multi-key"),
                   kv_wordings().front()) {}

MultiKeyTask::MultiKeyTask(const Tokenizer& tok, std::shared_ptr<const Filler> filler,
                           NeedleWording wording)
    : tok_(tok),
      filler_(std::move(filler)),
      wording_(std::move(wording)),
      bos_(tok.add_bos() ? tok.bos() : -1) {}

MultiKeyPrompt MultiKeyTask::make(int64_t length, int n_keys, int asked, std::mt19937_64& rng,
                                  QuestionAt at) const {
  const std::vector<std::string>& all = multikey_labels();
  if (n_keys < 2 || n_keys > static_cast<int>(all.size())) {
    throw Error(fmt::format("multi-key: {} keys asked for, need 2..{}", n_keys, all.size()));
  }
  if (asked < 0 || asked >= n_keys) {
    throw Error(fmt::format("multi-key: needle {} asked for, there are {}", asked, n_keys));
  }
  MultiKeyPrompt p;
  std::vector<std::string> labels = all;
  std::shuffle(labels.begin(), labels.end(), rng);
  p.labels.assign(labels.begin(), labels.begin() + n_keys);
  std::set<int> used;
  while (static_cast<int>(p.keys.size()) < n_keys) {
    const int k = std::uniform_int_distribution<int>(10000, 99999)(rng);
    if (used.insert(k).second) p.keys.push_back(std::to_string(k));
  }
  p.asked = asked;

  std::vector<std::vector<int32_t>> needles;
  int64_t fixed = bos_ >= 0;
  for (int i = 0; i < n_keys; ++i) {
    needles.push_back(
        tok_.encode(fill_wording(wording_.needle, p.keys[i], p.labels[i]), false, false));
    fixed += static_cast<int64_t>(needles.back().size());
  }
  const std::vector<int32_t> question =
      question_tokens(tok_, fill_wording(wording_.question, "", p.labels[asked]), at);
  fixed += static_cast<int64_t>(question.size());
  const int64_t n_fill = length - fixed;
  if (n_fill < 0) {
    throw Error(fmt::format("multi-key: length {} is shorter than the task's {} fixed tokens",
                            length, fixed));
  }
  // Depths: n_keys sorted uniform cut points of the filler.
  std::vector<int64_t> cuts(n_keys);
  for (int64_t& c : cuts) c = std::uniform_int_distribution<int64_t>(0, n_fill)(rng);
  std::sort(cuts.begin(), cuts.end());

  size_t off = filler_->random_offset(rng);
  std::vector<int32_t>& seq = p.tokens;
  seq.reserve(length);
  if (bos_ >= 0) seq.push_back(bos_);
  int64_t filled = 0;
  for (int i = 0; i < n_keys; ++i) {
    filler_->append(seq, cuts[i] - filled, off);
    filled = cuts[i];
    const int64_t begin = static_cast<int64_t>(seq.size());
    seq.insert(seq.end(), needles[i].begin(), needles[i].end());
    p.needles.emplace_back(begin, static_cast<int64_t>(seq.size()));
  }
  filler_->append(seq, n_fill - filled, off);
  p.question_begin = static_cast<int64_t>(seq.size());
  seq.insert(seq.end(), question.begin(), question.end());
  return p;
}

}  // namespace engram
