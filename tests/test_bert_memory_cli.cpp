// `engram memory add/search --embed-model FILE`: memories get the bert encoder's embeddings
// (the same vectors as the PyTorch reference), search becomes hybrid, and a store whose
// embeddings another encoder made is refused instead of mixed.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.h"

namespace engram {
namespace {

using testing_cli::CliResult;
using testing_cli::run_cli;
using testing_cli::TempFile;

const std::string kGolden = std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/golden/";
const std::string kMean = kGolden + "bert_mean_f32.gguf";

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void expect_error(const CliResult& r, const std::string& part) {
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << "expected '" << part << "' in: " << r.err;
}

TEST(BertMemoryCli, AddStoresTheEncodersEmbeddingAndSearchUsesIt) {
  TempFile db("bert_memory.db");
  const std::string store = "--db '" + db.path() + "' --user u";
  const std::string text = "My sister lives in Paris.";
  ASSERT_EQ(run_cli("memory add " + store + " '" + text + "' --embed-model '" + kMean + "'").status,
            0);
  ASSERT_EQ(run_cli("memory add " + store + " 'I like coffee, and you like tea!' --embed-model '" +
                    kMean + "'")
                .status,
            0);

  // The stored vector is the reference's for that text.
  std::ifstream f(kGolden + "bert_mean_f32.json");
  const nlohmann::json golden = nlohmann::json::parse(f);
  std::vector<float> want;
  for (const auto& c : golden["cases"])
    if (c["text"] == text) want = c["embedding"].get<std::vector<float>>();
  ASSERT_EQ(want.size(), 32u);
  const CliResult list = run_cli("memory list " + store + " --json");
  ASSERT_EQ(list.status, 0) << list.err;
  const auto rows = lines_of(list.out);
  ASSERT_EQ(rows.size(), 2u);
  const auto got = nlohmann::json::parse(rows[0])["embedding"].get<std::vector<float>>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;

  // A query sharing no word with any memory: full text finds nothing, the hybrid search ranks
  // both memories by cosine.
  const CliResult text_only = run_cli("memory search " + store + " 'xyzzy'");
  EXPECT_EQ(text_only.status, 0) << text_only.err;
  EXPECT_EQ(text_only.out, "");
  const CliResult hybrid =
      run_cli("memory search " + store + " 'xyzzy' --json --embed-model '" + kMean + "'");
  EXPECT_EQ(hybrid.status, 0) << hybrid.err;
  EXPECT_EQ(lines_of(hybrid.out).size(), 2u) << hybrid.out;
  // A query that is one memory's text finds that memory first.
  const CliResult same =
      run_cli("memory search " + store + " '" + text + "' --json --embed-model '" + kMean + "'");
  ASSERT_EQ(same.status, 0) << same.err;
  ASSERT_FALSE(lines_of(same.out).empty());
  EXPECT_EQ(nlohmann::json::parse(lines_of(same.out)[0])["summary"], text);
}

TEST(BertMemoryCli, RefusesToMixEncoders) {
  TempFile db("bert_mix.db");
  const std::string store = "--db '" + db.path() + "' --user u";
  ASSERT_EQ(run_cli("memory add " + store + " 'first' --embed-model '" + kMean + "'").status, 0);
  // Another file (same dimension, another model): refused, for add and for search.
  expect_error(
      run_cli("memory add " + store + " 'second' --embed-model '" + kGolden + "bert_cls_f32.gguf'"),
      "embeddings were made by encoder 'bert:bert_mean_f32:32:mean:");
  expect_error(run_cli("memory search " + store + " 'first' --embed-model '" + kGolden +
                       "bert_mean_f16.gguf'"),
               "embeddings of different encoders cannot be compared");
  EXPECT_EQ(lines_of(run_cli("memory list " + store).out).size(), 1u);
  // Another user of the same store, same encoder: fine.
  EXPECT_EQ(
      run_cli("memory add --db '" + db.path() + "' --user v 'x' --embed-model '" + kMean + "'")
          .status,
      0);
}

TEST(BertMemoryCli, BadEmbedModelIsAClearError) {
  TempFile db("bert_bad.db");
  const std::string store = "--db '" + db.path() + "' --user u";
  expect_error(
      run_cli("memory add " + store + " 'x' --embed-model '" + kGolden + "llama_f32.gguf'"),
      "architecture 'llama' is not an embedding model engram can run (supported: bert)");
  expect_error(run_cli("memory add " + store + " 'x' --embed-model /nonexistent.gguf"),
               "--embed-model");
}

}  // namespace
}  // namespace engram
