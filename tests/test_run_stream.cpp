// `engram run -f FILE -p QUESTION` on a file long enough to be streamed (read, encoded and
// evaluated piece by piece under a progress bar): the same answer as the whole text given at
// once, and a progress bar that names what memory holds.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::temp_path;

const std::string kModel =
    std::string("'") + ENGRAM_SOURCE_DIR + "/tests/fixtures/golden/llama_f32.gguf'";

// About `bytes` of shell-safe words (letters, digits, spaces, periods).
std::string words(size_t bytes, unsigned seed) {
  const char* vocab[] = {"the", "cat", "sat", "on", "a", "mat", "and", "then", "went", "home"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < bytes) {
    s += vocab[rng() % 10];
    s += (rng() % 9 == 0) ? ". " : " ";
    if (rng() % 50 == 0) s += std::to_string(rng() % 1000) + " ";
  }
  s += "end";
  return s;
}

TEST(RunStream, LongFileGivesTheAnswerOfTheWholeTextAndAProgressBar) {
  const std::string text = words(70 * 1024, 3);  // over the 64 KiB streaming threshold
  const std::string path = temp_path("book.txt");
  std::ofstream(path, std::ios::binary) << text;
  const std::string common = "run -m " + kModel + " --memory episodic -n 6 --temp 0 --seed 1";
  const CliResult streamed = run_cli(common + " -f '" + path + "' -p 'what sat on the mat'");
  ASSERT_EQ(streamed.status, 0) << streamed.err;
  const CliResult whole = run_cli(common + " -p '" + text + "\n\nwhat sat on the mat'");
  ASSERT_EQ(whole.status, 0) << whole.err;
  // Neither echoes the long text: stdout holds the answer alone, the same for both.
  EXPECT_FALSE(streamed.out.empty());
  EXPECT_LT(streamed.out.size(), text.size() / 10);
  EXPECT_EQ(streamed.out, whole.out);
  // The streamed file's progress bar: policy, MiB read, events formed, done.
  EXPECT_NE(streamed.err.find("[episodic]"), std::string::npos) << streamed.err;
  EXPECT_NE(streamed.err.find("MiB"), std::string::npos) << streamed.err;
  EXPECT_NE(streamed.err.find("events"), std::string::npos) << streamed.err;
  EXPECT_NE(streamed.err.find("100%"), std::string::npos) << streamed.err;
}

TEST(RunStream, FullPolicyRefusesAFileLongerThanItsContext) {
  const std::string path = temp_path("long.txt");
  std::ofstream(path, std::ios::binary) << words(70 * 1024, 4);
  const CliResult r = run_cli("run -q -m " + kModel + " -n 2 -f '" + path + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("context is full"), std::string::npos) << r.err;
}

}  // namespace
