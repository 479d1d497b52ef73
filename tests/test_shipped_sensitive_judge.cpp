// The sensitive-data detector's model layer with the shipped chat model, on the case table
// (tests/fixtures/agent_memory/sensitive_cases.json). The model was not trained for the yes/no
// question, so its accuracy is printed, not asserted (docs/ARCHITECTURE.md reports it), with the
// categories it is able to judge (its controls); what is asserted is the combination: every
// category of each text is put to the model, and its answers only ever add to what the rules
// found, on the categories it is able to judge.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent_memory/sensitive_judge.h"
#include "engram/chat_template.h"
#include "engram/memory_session.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"

namespace engram::agent_memory {
namespace {

const std::string kRoot = std::string(ENGRAM_SOURCE_DIR) + "/";

uint32_t bits_of(const nlohmann::json& names) {
  uint32_t bits = 0;
  for (const SensitiveQuestion& q : sensitive_questions())
    for (const auto& n : names)
      if (n.get<std::string>() == category_name(q.category))
        bits |= static_cast<uint32_t>(q.category);
  return bits;
}

TEST(ShippedSensitiveJudge, TheModelOnlyAddsToTheRulesOnTheCaseTable) {
  std::ifstream in(kRoot + "tests/fixtures/agent_memory/sensitive_cases.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json cases = nlohmann::json::parse(in)["cases"];
  auto model = Model::load(kRoot + "models/engram-tiny-chat.gguf");
  auto tok = Tokenizer::from_gguf(model->file());
  const ChatTemplate tmpl = ChatTemplate::from_gguf(model->file());
  ThreadPool pool(1);  // ctest runs two tests at once on CI's two cores
  auto mm = engine_memory_model(*model, *tok, tmpl, pool, nullptr);
  SensitiveJudge judge(mm.get());
  const SensitiveFindings able = judge.able();
  const size_t controls = judge.questions_asked();

  const size_t n_cat = sensitive_questions().size();
  size_t passed_rules = 0, ungated_right = 0, texts = 0, answers_right = 0, yes = 0, rows_right = 0,
         combined_right = 0, rules_right = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    if (text.empty()) continue;
    ++texts;
    const uint32_t rules = bits_of(c["rules"]);
    const uint32_t truth = c.contains("truth") ? bits_of(c["truth"]) : rules;
    const SensitiveFindings asked = judge.ask_model(text);
    const SensitiveFindings combined = judge.judge(text);
    // Never less than the rules; the model is consulted only when the rules found nothing.
    EXPECT_EQ(combined.categories & rules, rules) << text;
    const uint32_t expected = rules != 0 ? rules : asked.categories & able.categories;
    EXPECT_EQ(combined.categories, expected) << text;
    passed_rules += rules == 0;
    for (const SensitiveQuestion& q : sensitive_questions()) {
      const auto bit = static_cast<uint32_t>(q.category);
      answers_right += ((asked.categories & bit) != 0) == ((truth & bit) != 0);
      yes += (asked.categories & bit) != 0;
    }
    rows_right += asked.any() == (truth != 0);
    combined_right += combined.any() == (truth != 0);
    ungated_right += ((rules | asked.categories) != 0) == (truth != 0);
    rules_right += (rules != 0) == (truth != 0);
  }
  // Every category of every text was put to the model (each question fit and was answered), and
  // the judge asked the categories it is able to judge of each text the rules passed.
  EXPECT_EQ(judge.questions_asked(), controls + texts * n_cat + passed_rules * able.names().size());
  std::printf(
      "sensitive yes/no, engram-tiny-chat, %zu texts x %zu categories: answers right %zu/%zu "
      "(%.1f%%), yes %zu; texts right (any yes = sensitive) %zu/%zu (%.1f%%); "
      "rules alone %zu/%zu, rules + model %zu/%zu (every category used, ability aside: %zu/%zu); "
      "able to "
      "judge: [%s]\n",
      texts, n_cat, answers_right, texts * n_cat, 100.0 * answers_right / (texts * n_cat), yes,
      rows_right, texts, 100.0 * rows_right / texts, rules_right, texts, combined_right, texts,
      ungated_right, texts, fmt::format("{}", fmt::join(able.names(), ", ")).c_str());
}

}  // namespace
}  // namespace engram::agent_memory
