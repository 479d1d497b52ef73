#include "eval/needle_wording.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <utility>

#include "engram/error.h"
#include "engram/tokenizer.h"
#include "eval/multikey_task.h"
#include "eval/passkey_task.h"
#include "util/trailing_space.h"

namespace engram {

// The split is fixed here and in docs/EVALUATION.md before any retrieval change was measured.
// engram-tiny (2 layers) reads only wordings built like its training ones: of 27 candidates tried
// with `full` at 500 tokens (seed 7, 20 keys each; docs/EVALUATION.md), wordings without the
// repeated key ("The code is K.") scored 10-65%, so every wording here but passkey-plain repeats
// it. Tuned: the training wording, a trained variant without intro, two with other nouns; held
// out: three more with other nouns and, in my-code, another sentence shape.
const std::vector<NeedleWording>& passkey_wordings() {
  static const std::vector<NeedleWording> w = {
      {"infinitebench", kPasskeyIntro, kPasskeyNeedle, kPasskeyQuestion, false},
      {"passkey-plain", "", "The pass key is {key}.", kPasskeyQuestion, false},
      {"secret-code", "", "The secret code is {key}. Remember it. {key} is the secret code.",
       "What is the secret code? The secret code is", false},
      {"password", "", "The password is {key}. Remember it. {key} is the password.",
       "What is the password? The password is", false},
      {"lock-code", "", "The lock code is {key}. Remember it. {key} is the lock code.",
       "What is the lock code? The lock code is", true},
      {"order-number", "", "The order number is {key}. Remember it. {key} is the order number.",
       "What is the order number? The order number is", true},
      {"my-code", "", "My code is {key}. Remember it. {key} is my code.",
       "What is my code? My code is", true},
  };
  return w;
}

const std::vector<NeedleWording>& kv_wordings() {
  static const std::vector<NeedleWording> w = {
      {"passkey-for", "", kMultiKeyNeedle, kMultiKeyQuestion, false},
      {"code-of", "", "The code of {label} is {key}. Remember it.",
       "What is the code of {label}? The code of {label} is", false},
      {"lock-code-for", "", "The lock code for {label} is {key}. Remember it.",
       "What is the lock code for {label}? The lock code for {label} is", true},
      {"room-number-of", "", "The room number of {label} is {key}. Remember it.",
       "What is the room number of {label}? The room number of {label} is", true},
      {"my-code-for", "", "My code for {label} is {key}.",
       "What is my code for {label}? My code for {label} is", true},
  };
  return w;
}

std::vector<NeedleWording> select_wordings(const std::vector<NeedleWording>& builtin,
                                           const std::string& spec, const char* task) {
  std::vector<NeedleWording> out;
  if (spec == "tuned" || spec == "held-out" || spec == "all") {
    for (const NeedleWording& w : builtin) {
      if (spec == "all" || w.held_out == (spec == "held-out")) out.push_back(w);
    }
    return out;
  }
  size_t at = 0;
  while (at <= spec.size()) {
    const size_t comma = std::min(spec.find(',', at), spec.size());
    const std::string name = spec.substr(at, comma - at);
    const NeedleWording* found = nullptr;
    for (const NeedleWording& w : builtin) found = w.name == name ? &w : found;
    if (!found) {
      std::vector<std::string> names;
      for (const NeedleWording& w : builtin) names.push_back(w.name);
      throw Error(fmt::format("{}: --wording '{}' is not one of tuned, held-out, all, {}", task,
                              name, fmt::join(names, ", ")));
    }
    out.push_back(*found);
    at = comma + 1;
  }
  return out;
}

NeedleWording wording_from_templates(const std::string& needle, const std::string& question,
                                     bool labelled, const char* task) {
  NeedleWording w{"custom", "", without_trailing_space(needle), without_trailing_space(question),
                  true};
  if (w.needle.find("{key}") == std::string::npos) {
    throw Error(fmt::format("{}: --needle-template '{}' has no {{key}}", task, w.needle));
  }
  if (w.question.empty()) throw Error(fmt::format("{}: --question-template is empty", task));
  if (labelled) {
    for (const auto& [flag, text] : {std::pair{"--needle-template", &w.needle},
                                     std::pair{"--question-template", &w.question}}) {
      if (text->find("{label}") == std::string::npos) {
        throw Error(fmt::format("{}: {} '{}' has no {{label}}", task, flag, *text));
      }
    }
  }
  return w;
}

std::string fill_wording(const std::string& text, const std::string& key,
                         const std::string& label) {
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    if (text.compare(at, 5, "{key}") == 0) {
      out += key;
      at += 5;
    } else if (text.compare(at, 7, "{label}") == 0) {
      out += label;
      at += 7;
    } else {
      out += text[at++];
    }
  }
  return out;
}

std::vector<int32_t> question_tokens(const Tokenizer& tok, const std::string& question,
                                     QuestionAt at) {
  if (at == QuestionAt::block) return tok.encode(question, false, false);
  // "\n" alone ends in the newline's id; what precedes it is the tokenizer's text-start piece.
  const int32_t newline = tok.encode("\n", false, false).back();
  std::vector<int32_t> line = tok.encode("\n" + question, false, false);
  const auto nl = std::find(line.begin(), line.end(), newline);
  line.erase(line.begin(), nl);
  return line;
}

}  // namespace engram
