#include "agent_memory/sensitive_judge.h"

#include <fmt/format.h>

#include "engram/error.h"
#include "engram/grammar.h"

namespace engram::agent_memory {
namespace {

constexpr int kAnswerTokens = 4;  // "yes"/"no" and the end of the reply

}  // namespace

const std::vector<SensitiveQuestion>& sensitive_questions() {
  static const std::vector<SensitiveQuestion> questions = {
      {SensitiveCategory::kCardNumber, "a payment card number",
       "User's card number is 4111 1111 1111 1111."},
      {SensitiveCategory::kBankAccount, "a bank account number",
       "User's bank account number is 12345678."},
      {SensitiveCategory::kGovernmentId,
       "a government id number (passport, social security, driver's license)",
       "User's passport number is X1234567."},
      {SensitiveCategory::kHealth,
       "the user's health (an illness, a diagnosis, a treatment, a pregnancy)",
       "User was diagnosed with cancer."},
      {SensitiveCategory::kReligion, "the user's religion or religious beliefs",
       "User is a devout Catholic."},
      {SensitiveCategory::kSexualOrientation, "the user's sexual orientation or gender identity",
       "User is gay."},
      {SensitiveCategory::kPoliticalOpinion,
       "the user's political opinions or trade union membership",
       "User votes for the Green Party."},
  };
  return questions;
}

const std::vector<std::string_view>& sensitive_negative_controls() {
  static const std::vector<std::string_view> controls = {"User likes tea.",
                                                         "User's favourite colour is blue."};
  return controls;
}

std::vector<ChatMessage> sensitive_question_messages(SensitiveCategory category,
                                                     std::string_view statement) {
  std::string_view reveals;
  for (const SensitiveQuestion& q : sensitive_questions())
    if (q.category == category) reveals = q.reveals;
  return {
      {"system", "Answer yes or no."},
      {"user", fmt::format("Does this statement reveal {}?\nStatement: {}", reveals, statement)}};
}

SensitiveJudge::SensitiveJudge(MemoryModel* model) : model_(model) {}

int SensitiveJudge::ask(SensitiveCategory category, std::string_view text) {
  const std::vector<ChatMessage> msgs = sensitive_question_messages(category, text);
  if (model_->count_tokens(msgs) + kAnswerTokens > model_->context_tokens()) return -1;
  if (!yes_no_) yes_no_ = Grammar::from_gbnf(kYesNoGbnf);
  try {
    const std::string answer = model_->complete(msgs, yes_no_, kAnswerTokens);
    ++asked_;
    return answer == "yes" ? 1 : 0;
  } catch (const Error&) {
    return -1;
  }
}

SensitiveFindings SensitiveJudge::able() {
  if (able_) return *able_;
  SensitiveFindings able;
  if (model_) {
    for (const SensitiveQuestion& q : sensitive_questions()) {
      bool right = ask(q.category, q.positive) == 1;
      for (std::string_view plain : sensitive_negative_controls())
        right = right && ask(q.category, plain) == 0;
      if (right) able.categories |= static_cast<uint32_t>(q.category);
    }
  }
  able_ = able;
  return able;
}

SensitiveFindings SensitiveJudge::judge(std::string_view text) {
  const SensitiveFindings rules = detect_sensitive(text);
  if (rules.any() || !model_ || text.empty() || !able().any()) return rules;
  if (auto it = judged_.find(text); it != judged_.end()) return it->second;
  SensitiveFindings found;
  for (const SensitiveQuestion& q : sensitive_questions()) {
    if (!able().has(q.category)) continue;
    const int a = ask(q.category, text);
    if (a < 0) return found;  // not able: not cached, the rules stand
    if (a == 1) found.categories |= static_cast<uint32_t>(q.category);
  }
  judged_.emplace(std::string(text), found);
  return found;
}

SensitiveFindings SensitiveJudge::ask_model(std::string_view text) {
  SensitiveFindings found;
  if (!model_ || text.empty()) return found;
  if (auto it = cache_.find(text); it != cache_.end()) return it->second;
  for (const SensitiveQuestion& q : sensitive_questions()) {
    const int a = ask(q.category, text);
    if (a < 0) return found;  // not able: not cached, the rules stand
    if (a == 1) found.categories |= static_cast<uint32_t>(q.category);
  }
  cache_.emplace(std::string(text), found);
  return found;
}

}  // namespace engram::agent_memory
