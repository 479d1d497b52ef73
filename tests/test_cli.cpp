// The command line's error paths and a smoke run of run/perplexity/bench on a golden model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::TempFile;

const std::string kModel =
    std::string("'") + ENGRAM_SOURCE_DIR + "/tests/fixtures/golden/llama_f32.gguf'";

void expect_error(const CliResult& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

// Command-line errors are bad input like any other: one line "engram: error: ...", exit 1.
TEST(Cli, UnknownSubcommandAndFlagAreRefused) {
  for (const char* args : {"frobnicate", "", "run --no-such-flag -p hi", "run -p hi -n abc",
                           "chat --system x --system-file y"}) {
    const CliResult r = run_cli(args);
    EXPECT_EQ(r.status, 1) << args << ": " << r.err;
    EXPECT_TRUE(r.err.starts_with("engram: error: ")) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
  expect_error(run_cli("run --no-such-flag -p hi"), "no-such-flag");
  expect_error(run_cli("run -p hi -n abc"), "--n-predict = abc");
  // --help and --version still succeed.
  EXPECT_EQ(run_cli("--version").status, 0);
  EXPECT_EQ(run_cli("run --help").status, 0);
}

TEST(Cli, RunNamesAMissingModelFile) {
  expect_error(run_cli("run -m /nonexistent/m.gguf -p hello"), "/nonexistent/m.gguf");
}

TEST(Cli, RunRefusesBadFlagValues) {
  expect_error(run_cli("run -m " + kModel + " -p hi -n -3"), "-n must be >= 0");
  expect_error(run_cli("run -m " + kModel + " -p hi --top-p 1.5"), "top_p");
  expect_error(run_cli("run -m " + kModel + " -p hi --min-p -1"), "min_p");
  expect_error(run_cli("run -m " + kModel + " -p hi -n abc"), "abc");
  expect_error(run_cli("run -m " + kModel), "give -p TEXT, -f FILE or both");
  expect_error(run_cli("run -m " + kModel + " -f /nonexistent/prompt.txt"),
               "/nonexistent/prompt.txt");
}

TEST(Cli, RunGeneratesReproduciblyWithASeed) {
  const std::string args = "run -q -m " + kModel + " -p 'the cat' -n 12 --temp 1.0 --seed 5";
  CliResult a = run_cli(args);
  CliResult b = run_cli(args);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
}

// --stop ends the output right before the first occurrence of the stop text (not shown).
TEST(Cli, RunStopsAtAStopStringWithoutShowingIt) {
  const std::string model = std::string("'") + ENGRAM_SOURCE_DIR + "/models/engram-tiny.gguf'";
  const std::string args =
      "run -q -m " + model + " -p 'She walked into the room and' -n 40 --temp 0";
  const CliResult free = run_cli(args);
  ASSERT_EQ(free.status, 0) << free.err;
  // The first word of 3+ letters after the 10th byte is the stop string.
  const std::string& out = free.out;
  auto letter = [&](size_t i) { return std::isalpha(static_cast<unsigned char>(out[i])) != 0; };
  size_t b = 10, e = 10;
  while (b < out.size()) {
    while (b < out.size() && !letter(b)) ++b;
    for (e = b; e < out.size() && letter(e);) ++e;
    if (e - b >= 3) break;
    b = e;
  }
  ASSERT_GE(e - b, 3u) << "greedy output: " << out;
  const std::string stop = out.substr(b, e - b);
  const CliResult stopped = run_cli(args + " --stop " + stop);
  ASSERT_EQ(stopped.status, 0) << stopped.err;
  EXPECT_EQ(stopped.out, out.substr(0, out.find(stop)) + "\n") << "stop '" << stop << "'";
}

TEST(Cli, PerplexityIsFiniteAndRefusesTooShortText) {
  const TempFile text_file("ppl.txt");
  const std::string& text_path = text_file.path();
  {
    std::ofstream f(text_path);
    for (int i = 0; i < 60; ++i) f << "the quick brown fox jumps over the lazy dog " << i << ". ";
  }
  CliResult r = run_cli("perplexity --json -m " + kModel + " --ctx 64 -f '" + text_path + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_LT(j["ppl"].get<double>(), 1e6);
  EXPECT_EQ(j["n_scored"].get<int>(), j["n_chunks"].get<int>() * (64 - 1 - 32));
  expect_error(run_cli("perplexity -m " + kModel + " --ctx 100000 -f '" + text_path + "'"),
               "need at least");
}

TEST(Cli, BenchRefusesBadValues) {
  expect_error(run_cli("bench -m " + kModel + " --reps 0"), "--reps must be >= 1");
  expect_error(run_cli("bench -m " + kModel + " --prefill 0"), "--prefill");
}

}  // namespace
