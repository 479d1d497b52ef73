// Issue 21, acceptance 5: the shipped model recalls a needle worded as none of the tuned
// wordings, 8k tokens back, when the question is the last line of what it reads -- through the
// command line, as a user would. `eval passkey --question-at end` reads the prompt as `run -f`
// reads a file that ends with its question (and reports what each layer loaded); `run -f` reads
// such a file. Held-out wording: lock-code (src/eval/needle_wording.cpp), held-out Brown text.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::slurp;
using engram::testing_cli::TempFile;

const std::string kModel = std::string("'") + ENGRAM_SOURCE_DIR + "/models/engram-tiny.gguf'";

// One thread: ctest runs two tests at once on CI's two cores.
nlohmann::json passkey(const std::string& flags) {
  const TempFile json_file("recall.json");
  const CliResult r = run_cli("eval passkey -m " + kModel +
                              " -t 1 -q --wording lock-code --question-at end --depths 0.1,0.5,0.9 "
                              "--trials 1 --seed 21 " +
                              flags + " --json '" + json_file.path() + "'");
  EXPECT_EQ(r.status, 0) << r.err;
  return nlohmann::json::parse(slurp(json_file.path()));
}

// Wherever the model reads the key in its own context (full, 500 tokens), episodic at 8k answers
// it too, and every layer attended every token of the needle while reading the question.
TEST(ShippedRecall, HeldOutWordingWithTheQuestionAsTheLastLineAt8k) {
  const nlohmann::json full = passkey("--memory full --lengths 500");
  const nlohmann::json far = passkey("--memory episodic --lengths 8192");
  ASSERT_EQ(full["trials"].size(), 3u);
  ASSERT_EQ(far["trials"].size(), 3u);
  int in_context = 0;
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json& f = full["trials"][i];
    const nlohmann::json& t = far["trials"][i];
    ASSERT_EQ(f["key"], t["key"]);
    EXPECT_FALSE(t["held_out"].get<bool>() == false) << "lock-code must be a held-out wording";
    EXPECT_EQ(t["hit_rate"].get<double>(), 1.0)
        << "depth " << t["depth"] << ": needle attended per layer " << t["needle_attended"];
    if (f["correct"].get<bool>()) {
      ++in_context;
      EXPECT_TRUE(t["correct"].get<bool>())
          << "depth " << t["depth"] << ": key " << t["key"] << ", answer at 8k " << t["answer"];
    }
  }
  EXPECT_GE(in_context, 2);  // not vacuous
}

// `run -f` of an 8k-token file (about 8,180) of held-out Brown with the needle 40% deep, ending
// with the question on its own line, answers the key.
TEST(ShippedRecall, RunReadsAFileEndingWithItsQuestion) {
  const std::string brown = slurp(std::string(ENGRAM_SOURCE_DIR) + "/data/heldout_sample.txt");
  ASSERT_GT(brown.size(), 40000u);
  std::string body = brown.substr(0, 27500);
  const size_t at = body.find(". ", 11000) + 2;
  const std::string key = "63917";
  body.insert(at, "The lock code is " + key + ". Remember it. " + key + " is the lock code. ");
  const TempFile file("recall_prompt.txt");
  std::ofstream(file.path()) << body << "\nWhat is the lock code? The lock code is\n";
  const CliResult r = run_cli("run -m " + kModel + " -t 1 -q --memory episodic --temp 0 -n 6 -f '" +
                              file.path() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::regex answered("^\\s*" + key + "\\b");
  EXPECT_TRUE(std::regex_search(r.out, answered)) << "answer: " << r.out;
  // The needle is ~4,900 tokens back: a policy without memory cannot answer.
  const CliResult s = run_cli("run -m " + kModel + " -t 1 -q --memory sinks --temp 0 -n 6 -f '" +
                              file.path() + "'");
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_FALSE(std::regex_search(s.out, answered)) << "sinks answered: " << s.out;
}

}  // namespace
