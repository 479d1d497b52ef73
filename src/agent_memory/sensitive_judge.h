// The sensitive-data detector with the model's constrained yes/no beside the rules
// (sensitive_detector.h). The rules decide first: a statement they flag is sensitive, and the
// model is not asked (its "no" never overrides a pattern or lexicon hit, and the statement is
// not shown to it needlessly). A statement the rules pass is put to the model once per
// category, as
//
//   system: Answer yes or no.
//   user:   Does this statement reveal <what the category covers>?
//           Statement: <text>
//
// with the reply constrained to `root ::= "yes" | "no"`; a "yes" adds that category. So the
// model can only add caution. It is asked only about the categories it is able to judge: before
// its first question the model answers three controls per category (the category's plain
// positive example must be "yes", two everyday statements "no"), and a category it gets wrong
// is left to the rules. A question that does not fit the context, or a failing model, also
// leaves the rules' answer standing. Answers are cached per text (reflection checks the same
// turn more than once). The shipped chat model was not trained for the question and passes no
// category's controls (docs/ARCHITECTURE.md, "The sensitive-data detector").
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent_memory/sensitive_detector.h"
#include "engram/memory_session.h"

namespace engram::agent_memory {

// The categories in the order they are asked, with the words the question uses for each.
struct SensitiveQuestion {
  SensitiveCategory category;
  std::string_view reveals;   // "the user's health (an illness, ...)"
  std::string_view positive;  // the control the model must answer "yes" for
};
const std::vector<SensitiveQuestion>& sensitive_questions();

// The question about `category` for `statement`, as the model is asked it.
std::vector<ChatMessage> sensitive_question_messages(SensitiveCategory category,
                                                     std::string_view statement);

// The grammar the answer is constrained to.
inline constexpr std::string_view kYesNoGbnf = "root ::= \"yes\" | \"no\"\n";

class SensitiveJudge {
 public:
  // `model` null: the rules alone.
  explicit SensitiveJudge(MemoryModel* model);

  // The rules; for a statement they pass, the model's yes answers on the categories it is
  // able to judge added.
  SensitiveFindings judge(std::string_view text);
  // The categories the model is able to judge (its controls answered right; asked once).
  SensitiveFindings able();
  // The model's answers alone, every category asked, ability aside (what the measurement on
  // the case table reads). Empty findings when there is no model or the question does not fit.
  SensitiveFindings ask_model(std::string_view text);
  // Questions put to the model so far (cache hits not counted).
  size_t questions_asked() const { return asked_; }

 private:
  // The model's answer: 1 yes, 0 no, -1 not asked (does not fit, or the model failed).
  int ask(SensitiveCategory category, std::string_view text);

  MemoryModel* model_;
  std::shared_ptr<const Grammar> yes_no_;
  std::map<std::string, SensitiveFindings, std::less<>> cache_;   // ask_model's answers
  std::map<std::string, SensitiveFindings, std::less<>> judged_;  // judge's (able categories)
  std::optional<SensitiveFindings> able_;
  size_t asked_ = 0;
};

// Everyday statements the model must answer "no" for, in every category.
const std::vector<std::string_view>& sensitive_negative_controls();

}  // namespace engram::agent_memory
