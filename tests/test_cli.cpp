// The command line's error paths and a smoke run of run/perplexity/bench on a golden model.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::temp_path;

const std::string kModel =
    std::string("'") + ENGRAM_SOURCE_DIR + "/tests/fixtures/golden/llama_f32.gguf'";

void expect_error(const CliResult& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

TEST(Cli, UnknownSubcommandAndFlagAreRefused) {
  CliResult r = run_cli("frobnicate");
  EXPECT_NE(r.status, 0);
  r = run_cli("run --no-such-flag -p hi");
  expect_error(r, "no-such-flag");
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

TEST(Cli, PerplexityIsFiniteAndRefusesTooShortText) {
  const std::string text_path = temp_path("ppl.txt");
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
  std::remove(text_path.c_str());
}

TEST(Cli, BenchRefusesBadValues) {
  expect_error(run_cli("bench -m " + kModel + " --reps 0"), "--reps must be >= 1");
  expect_error(run_cli("bench -m " + kModel + " --prefill 0"), "--prefill");
}

}  // namespace
