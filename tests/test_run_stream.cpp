// `engram run -f FILE [-p QUESTION]` on a file long enough to be streamed (read, encoded and
// evaluated piece by piece under a progress bar): the same continuation as the whole text given
// at once, a progress bar that names what memory holds, and the question read after the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::TempFile;

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

TEST(RunStream, LongFileGivesTheContinuationOfTheWholeTextAndAProgressBar) {
  const std::string text = words(70 * 1024, 3);  // over the 64 KiB streaming threshold
  const TempFile file("book.txt");
  const std::string& path = file.path();
  std::ofstream(path, std::ios::binary) << text;
  // One thread: the three runs are the longest of the suite, and ctest runs two tests at once.
  const std::string common = "run -m " + kModel + " --memory episodic -n 6 --temp 0 --seed 1 -t 1";
  const CliResult streamed = run_cli(common + " -f '" + path + "'");
  ASSERT_EQ(streamed.status, 0) << streamed.err;
  const CliResult whole = run_cli(common + " -p '" + text + "'");
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
  // A question after the file is read as its own block and answered; the prompt count says
  // the file's tokens and the question's were all read.
  const CliResult asked = run_cli(common + " -f '" + path + "' -p 'what sat on the mat'");
  ASSERT_EQ(asked.status, 0) << asked.err;
  EXPECT_FALSE(asked.out.empty());
  auto prompt_tokens = [](const std::string& err) {
    const size_t at = err.find("prompt: ");
    return at == std::string::npos ? -1L : std::stol(err.substr(at + 8));
  };
  const long extra = prompt_tokens(asked.err) - prompt_tokens(streamed.err);
  EXPECT_GT(extra, 0) << asked.err;
  EXPECT_LE(extra, long(std::string(" what sat on the mat").size())) << asked.err;
}

// --kv-dir moves the memory units' K/V to a file: the same answer, the progress bar says how
// much is on disk, and the directory is left empty (the file was unlinked when made).
TEST(RunStream, MemoryUnitsOnDiskGiveTheSameAnswer) {
  const TempFile file("book.txt");
  std::ofstream(file.path(), std::ios::binary) << words(24 * 1024, 5);  // read as one prompt
  const TempFile dir("kvdir");
  std::filesystem::create_directories(dir.path());
  const std::string common = "run -m " + kModel + " --memory episodic -n 6 --temp 0 -t 1 -f '" +
                             file.path() + "' -p 'what sat on the mat'";
  const CliResult ram = run_cli(common);
  ASSERT_EQ(ram.status, 0) << ram.err;
  const CliResult disk = run_cli(common + " --kv-dir '" + dir.path() + "' --kv-cache 1");
  ASSERT_EQ(disk.status, 0) << disk.err;
  EXPECT_EQ(disk.out, ram.out);
  EXPECT_NE(disk.err.find("on disk"), std::string::npos) << disk.err;
  EXPECT_EQ(ram.err.find("on disk"), std::string::npos) << ram.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  // Refusals name the flag.
  const CliResult sinks = run_cli(
      "run -m " + kModel + " --memory sinks -n 1 -p 'the cat' --kv-dir '" + dir.path() + "'");
  EXPECT_NE(sinks.status, 0);
  EXPECT_NE(sinks.err.find("--kv-dir"), std::string::npos) << sinks.err;
  const CliResult missing =
      run_cli("run -m " + kModel + " --memory episodic -n 1 -p 'the cat' --kv-dir /nonexistent/kv");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/nonexistent/kv"), std::string::npos) << missing.err;
}

// A file's trailing whitespace is left out: what follows (generated text or a question)
// follows its last word, short file or streamed.
TEST(RunStream, TrailingWhitespaceOfTheFileIsLeftOut) {
  for (size_t bytes : {size_t(2000), size_t(70 * 1024)}) {
    const std::string text = words(bytes, 6);
    const TempFile plain("plain.txt"), padded("padded.txt");
    std::ofstream(plain.path(), std::ios::binary) << text;
    std::ofstream(padded.path(), std::ios::binary) << text << " \n\n";
    // sinks: the cheapest policy that streams (this is about the text, not the memory).
    const std::string common = "run -q -m " + kModel + " --memory sinks -n 5 --temp 0 -t 1";
    const CliResult a = run_cli(common + " -f '" + plain.path() + "'");
    const CliResult b = run_cli(common + " -f '" + padded.path() + "'");
    ASSERT_EQ(a.status, 0) << a.err;
    ASSERT_EQ(b.status, 0) << b.err;
    EXPECT_EQ(a.out, b.out) << bytes;
  }
}

TEST(RunStream, FullPolicyRefusesAFileLongerThanItsContext) {
  const TempFile file("long.txt");
  const std::string& path = file.path();
  std::ofstream(path, std::ios::binary) << words(70 * 1024, 4);
  const CliResult r = run_cli("run -q -m " + kModel + " -n 2 -f '" + path + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("context is full"), std::string::npos) << r.err;
}

}  // namespace
