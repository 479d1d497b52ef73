// `engram eval ppl`, `segment`, `passkey` and `kv` end to end on the golden model
// (context 256, one token per byte): the shape and arithmetic of their JSON, agreement of eval ppl
// with the streaming mode of `engram perplexity`, and their refusals of bad values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using engram::testing_cli::CliResult;
using engram::testing_cli::run_cli;
using engram::testing_cli::slurp;
using engram::testing_cli::TempFile;

const std::string kModel =
    std::string("'") + ENGRAM_SOURCE_DIR + "/tests/fixtures/golden/llama_f32.gguf'";

void expect_error(const CliResult& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
}

TEST(EvalCli, PplCurveAddsUpToTheOverallFigureAndMatchesPerplexityStreaming) {
  const TempFile text_file("ppl_text.txt");
  const std::string& text = text_file.path();
  {
    std::ofstream f(text);
    for (int i = 0; i < 30; ++i) f << "the river bank was steep and the water ran fast. ";
  }
  const TempFile json_file("ppl.json");
  const std::string& json = json_file.path();
  CliResult r = run_cli("eval ppl -m " + kModel + " -t 1 -q --memory sinks --bucket 500 -f '" +
                        text + "' --json '" + json + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(json));
  EXPECT_EQ(j["task"].get<std::string>(), "ppl");
  EXPECT_EQ(j["memory"].get<std::string>(), "sinks");
  // Every token but the first (BOS) is predicted, in buckets of 500 (the last one shorter).
  const int n = j["n_tokens"].get<int>();
  ASSERT_GT(n, 1000);  // 1500 bytes; the vocabulary merges few of them
  EXPECT_EQ(j["n_scored"].get<int>(), n - 1);
  const auto& curve = j["curve"];
  ASSERT_EQ(int(curve.size()), (n - 1 + 499) / 500);
  double nll = 0;
  for (size_t i = 0; i < curve.size(); ++i) {
    const int len = curve[i]["n"].get<int>();
    EXPECT_EQ(len, i + 1 < curve.size() ? 500 : n - 1 - 500 * int(i));
    EXPECT_EQ(curve[i]["end"].get<int>(), 1 + 500 * int(i) + len);
    nll += std::log(curve[i]["ppl"].get<double>()) * len;
  }
  const double ppl = j["ppl"].get<double>();
  EXPECT_NEAR(std::exp(nll / (n - 1)), ppl, 1e-9 * ppl);
  EXPECT_GT(ppl, 1.0);

  // The streaming mode of `engram perplexity` scores the same tokens the same way.
  CliResult p =
      run_cli("perplexity --json -m " + kModel + " -t 1 --memory sinks -f '" + text + "'");
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_NEAR(nlohmann::json::parse(p.out)["ppl"].get<double>(), ppl, 1e-6 * ppl);

  // `full` holds only the trained context: the stream is cut to it, and the JSON says so.
  r = run_cli("eval ppl -m " + kModel + " -t 1 -q --memory full --bucket 100 -f '" + text +
              "' --json '" + json + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto full = nlohmann::json::parse(slurp(json));
  EXPECT_TRUE(full["truncated"].get<bool>());
  EXPECT_EQ(full["n_tokens"].get<int>(), 256);
  EXPECT_EQ(full["curve"].back()["end"].get<int>(), 256);

  expect_error(run_cli("eval ppl -m " + kModel + " --bucket 0 -f '" + text + "'"),
               "--bucket must be >= 1, got 0");
  expect_error(run_cli("eval ppl -m " + kModel + " --memory nope -f '" + text + "'"), "nope");
}

// `full` holds the trained context (256 here): a length that leaves no room for the answer is
// skipped with the reason, the others are run; every trial reports the needle's cells and the
// share of them each layer attended (all of them, under `full`).
TEST(EvalCli, PasskeySkipsLengthsWithoutRoomForTheAnswerAndReportsNeedleCoverage) {
  const TempFile json_file("passkey.json");
  const std::string& json = json_file.path();
  const std::string filler = std::string("'") + ENGRAM_SOURCE_DIR + "/data/heldout_sample.txt'";
  CliResult r =
      run_cli("eval passkey -m " + kModel + " --filler " + filler +
              " -t 1 -q --memory full --lengths 240,256 --depths 0.5 -n 4 --json '" + json + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("length 256 skipped: with the 4 answer tokens (-n) it needs 260 cells"),
            std::string::npos)
      << r.err;
  const auto j = nlohmann::json::parse(slurp(json));
  ASSERT_EQ(j["trials"].size(), 1u);
  const auto& t = j["trials"][0];
  EXPECT_EQ(t["length"].get<int>(), 240);
  const auto needle = t["needle"].get<std::vector<int64_t>>();
  ASSERT_EQ(needle.size(), 2u);
  EXPECT_GT(needle[0], 0);
  EXPECT_LT(needle[0], needle[1]);
  EXPECT_LE(needle[1], 240);
  const auto coverage = t["needle_attended"].get<std::vector<double>>();
  EXPECT_EQ(coverage.size(), 2u);  // the golden model's layers
  for (double c : coverage) EXPECT_EQ(c, 1.0);
  EXPECT_EQ(t["hit_rate"].get<double>(), 1.0);

  expect_error(run_cli("eval passkey -m " + kModel + " --filler " + filler + " -n 0"),
               "--n-predict must be >= 1, got 0");
}

TEST(EvalCli, KvAsksEveryNeedleInTurnAndFullAttentionLoadsThemAll) {
  const TempFile json_file("kv.json");
  const std::string& json = json_file.path();
  const std::string filler = std::string("'") + ENGRAM_SOURCE_DIR + "/data/heldout_sample.txt'";
  CliResult r = run_cli("eval kv -m " + kModel + " --filler " + filler +
                        " -t 1 -q --memory full --keys 2 --trials 4 --lengths 240 -n 4 --json '" +
                        json + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(json));
  EXPECT_EQ(j["task"], "kv");
  EXPECT_EQ(j["keys"].get<int>(), 2);
  ASSERT_EQ(j["trials"].size(), 4u);
  double correct = 0;
  for (size_t i = 0; i < 4; ++i) {
    const auto& t = j["trials"][i];
    EXPECT_EQ(t["asked"].get<int>(), int(i % 2)) << "the needles are asked in turn";
    const auto needles = t["needles"].get<std::vector<std::vector<int64_t>>>();
    ASSERT_EQ(needles.size(), 2u);
    EXPECT_GT(needles[0][0], 0);
    EXPECT_LT(needles[0][0], needles[0][1]);
    EXPECT_LE(needles[0][1], needles[1][0]) << "needles in stream order, apart";
    EXPECT_LE(needles[1][1], 240);
    const auto asked = needles[t["asked"].get<int>()];
    EXPECT_DOUBLE_EQ(t["depth"].get<double>(), double(asked[0]) / 240);
    const auto keys = t["keys"].get<std::vector<std::string>>();
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_NE(keys[0], keys[1]);
    const auto labels = t["labels"].get<std::vector<std::string>>();
    ASSERT_EQ(labels.size(), 2u);
    EXPECT_NE(labels[0], labels[1]);
    // Full attention sees everything: every layer, every needle.
    EXPECT_EQ(t["hit_rate"].get<double>(), 1.0);
    EXPECT_EQ(t["needles_loaded"].get<int>(), 2);
    EXPECT_FALSE(t["correct"].get<bool>() && t["other_key"].get<bool>());
    correct += t["correct"].get<bool>();
  }
  ASSERT_EQ(j["cells"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["cells"][0]["accuracy"].get<double>(), correct / 4);
  EXPECT_DOUBLE_EQ(j["cells"][0]["hit_rate"].get<double>(), 1.0);

  expect_error(run_cli("eval kv -m " + kModel + " --filler " + filler + " --keys 1"),
               "--keys must be in 2..12, got 1");
  expect_error(run_cli("eval kv -m " + kModel + " --filler " + filler + " --keys 13"),
               "--keys must be in 2..12, got 13");
  expect_error(run_cli("eval kv -m " + kModel + " --filler " + filler + " --trials 0"),
               "--trials must be >= 1, got 0");
  expect_error(run_cli("eval kv -m " + kModel + " --filler " + filler +
                       " --memory full --lengths 100 --keys 4"),
               "shorter than the task's");
}

TEST(EvalCli, SegmentReportsEverySegmentationAtTheSameEventCount) {
  // Four documents of different letters, blank lines between them (and a trailing one).
  const TempFile docs_file("segment_docs.txt");
  const std::string& docs = docs_file.path();
  {
    std::ofstream f(docs);
    const char* words[] = {"aab abba baab ", "xyz zyx yzz ", "mom nom mnm ", "qrs srq rqq "};
    for (int d = 0; d < 4; ++d) {
      for (int i = 0; i < 40; ++i) f << words[d];
      f << "\n\n";
    }
  }
  const TempFile json_file("segment.json"), csv_file("segment.csv");
  const std::string& json = json_file.path();
  const std::string& csv = csv_file.path();
  CliResult r = run_cli(
      "eval segment -m " + kModel + " -t 1 -q --trials 3 --window 64 --gammas 2 " +
      "--tolerances 0,4,100000 -k 4 -f '" + docs + "' --json '" + json + "' --csv '" + csv + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(json));
  EXPECT_EQ(j["task"].get<std::string>(), "segment");
  EXPECT_EQ(j["n_documents"].get<int>(), 4);
  EXPECT_EQ(j["n_boundaries"].get<int>(), 3);
  const auto& rows = j["rows"];
  ASSERT_EQ(rows.size(), 10u);
  const char* names[] = {"S", "SM", "SC", "F", "FM", "FC", "R", "S@2", "F@2", "R@2"};
  const double events = rows[0]["events"].get<double>();
  const double events2 = rows[7]["events"].get<double>();
  EXPECT_GT(events, 4);
  EXPECT_LE(events2, events);  // a higher threshold opens fewer events
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& x = rows[i];
    EXPECT_EQ(x["segmentation"].get<std::string>(), names[i]);
    // The same number of events in every row of one threshold.
    EXPECT_EQ(x["events"].get<double>(), i < 7 ? events : events2) << names[i];
    const double r0 = x["recall_by_k"]["0"], r4 = x["recall_by_k"]["4"];
    EXPECT_LE(r0, r4) << names[i];
    EXPECT_EQ(x["recall"].get<double>(), r4);
    EXPECT_EQ(x["recall_by_k"]["100000"].get<double>(), 1.0) << names[i];
    EXPECT_GT(x["windows"].get<int>(), 0) << names[i];
    EXPECT_GE(x["conductance"].get<double>(), 0.0);
    EXPECT_LE(x["conductance"].get<double>(), 1.0);
    EXPECT_LT(std::abs(x["modularity"].get<double>()), 1.0);
  }
  // The CSV has a row per segmentation and tolerance.
  const std::string c = slurp(csv);
  EXPECT_EQ(std::count(c.begin(), c.end(), '\n'), 1 + 10 * 3);

  expect_error(run_cli("eval segment -m " + kModel + " --tolerance=-1 -f '" + docs + "'"),
               "--tolerance must be >= 0, got -1");
  expect_error(run_cli("eval segment -m " + kModel + " --gammas=-1 -f '" + docs + "'"),
               "--gammas value -1 must be >= 0");
  expect_error(run_cli("eval segment -m " + kModel + " --separator '\\q' -f '" + docs + "'"),
               "--separator: unknown escape '\\q'");
  const TempFile one_file("segment_one.txt");
  const std::string& one = one_file.path();
  std::ofstream(one) << "just one document\n";
  expect_error(run_cli("eval segment -m " + kModel + " -f '" + one + "'"), "holds 1 document");
}

}  // namespace
