// `engram bench memory`: a small stream on a golden model reports one row per length with the
// figures the benchmark exists for, and bad values are refused naming them.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::TempFile;

const std::string kModel =
    std::string("'") + ENGRAM_SOURCE_DIR + "/tests/fixtures/golden/llama_f32.gguf'";

// Written on first use; removed with the test run.
const std::string& text_file() {
  static const TempFile file("bench_memory.txt");
  static const bool written = [] {
    std::ofstream f(file.path());
    for (int i = 0; i < 200; ++i) f << "the quick brown fox " << i << " jumps over the lazy dog. ";
    return true;
  }();
  (void)written;
  return file.path();
}

TEST(BenchMemoryCli, ReportsEveryLengthWithEventsMemoryAndPeakRss) {
  const std::string file = text_file();
  CliResult r = run_cli("bench memory --json -t 1 -m " + kModel + " -f '" + file +
                        "' --lengths 300,1500 --decode 4");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["policy"], "episodic");
  ASSERT_EQ(j["rows"].size(), 2u);
  const auto& a = j["rows"][0];
  const auto& b = j["rows"][1];
  EXPECT_EQ(a["tokens"], 300);
  EXPECT_EQ(b["tokens"], 1500);
  EXPECT_GT(b["units"].get<int64_t>(), a["units"].get<int64_t>());  // events keep forming
  // Prefill tops the stream up to each length; the decode steps then join it. Episodic keeps
  // every cell.
  EXPECT_EQ(b["cells_held"].get<int64_t>(), 1500 + 4);
  EXPECT_GT(b["memory_bytes"].get<uint64_t>(), a["memory_bytes"].get<uint64_t>());
  EXPECT_GT(b["peak_rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(b["decode_ms_per_token"].get<double>(), 0.0);
  EXPECT_GT(b["prefill_tok_per_s"].get<double>(), 0.0);
}

TEST(BenchMemoryCli, RefusesBadValues) {
  const std::string file = text_file();
  const std::string base = "bench memory -m " + kModel + " -f '" + file + "'";
  CliResult r = run_cli(base + " --lengths 600,300");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--lengths must be increasing"), std::string::npos) << r.err;
  r = run_cli(base + " --decode 0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--decode must be >= 1"), std::string::npos) << r.err;
  r = run_cli(base + " --memory full --lengths 100000");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("'full' policy holds"), std::string::npos) << r.err;
  r = run_cli(base + " --gamma -1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--gamma"), std::string::npos) << r.err;
}

}  // namespace
