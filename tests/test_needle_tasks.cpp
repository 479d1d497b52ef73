// The needle tasks of `engram eval` on the shipped model's tokenizer: prompts have exactly the
// length asked for, the needles and the question say what the prompt records, draws follow
// the seed, and impossible requests are refused. (Decoding a slice drops the leading space of
// its first piece.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engram/error.h"
#include "engram/model.h"
#include "engram/tokenizer.h"
#include "eval/haystack.h"
#include "eval/multikey_task.h"
#include "eval/passkey_task.h"

namespace engram {
namespace {

struct Shipped {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::string filler;
  Shipped() {
    const std::string root = std::string(ENGRAM_SOURCE_DIR) + "/";
    model = Model::load(root + "models/engram-tiny.gguf");
    tok = Tokenizer::from_gguf(model->file());
    std::ifstream in(root + "data/heldout_sample.txt", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    filler = ss.str();
  }
  std::string text(const std::vector<int32_t>& t, int64_t b, int64_t e) const {
    return tok->decode(std::span<const int32_t>(t).subspan(b, e - b));
  }
};

TEST(NeedleTasks, PasskeyPromptHasTheLengthAndTheNeedleWhereItSays) {
  const Shipped s;
  const PasskeyTask task(*s.tok, s.filler);
  std::mt19937_64 rng(3);
  for (double depth : {0.0, 0.5, 1.0}) {
    const PasskeyPrompt p = task.make(2000, depth, rng);
    ASSERT_EQ(p.tokens.size(), 2000u);
    EXPECT_EQ(p.tokens[0], s.tok->bos());
    EXPECT_EQ(s.text(p.tokens, p.needle_begin, p.needle_end),
              "The pass key is " + p.key + ". Remember it. " + p.key + " is the pass key.");
    EXPECT_EQ(s.text(p.tokens, p.question_begin, 2000), std::string(kPasskeyQuestion));
    EXPECT_TRUE(passkey_answer_matches(" " + p.key + ".", p.key));
  }
  EXPECT_FALSE(passkey_answer_matches(" 1234", "12345"));
  EXPECT_FALSE(passkey_answer_matches(" 123456", "12345"));
  EXPECT_THROW(task.make(20, 0.5, rng), Error);
  EXPECT_THROW(task.make(2000, 1.5, rng), Error);
}

TEST(NeedleTasks, MultiKeyPromptFilesDistinctKeysUnderDistinctLabelsAndAsksOne) {
  const Shipped s;
  const MultiKeyTask task(*s.tok, s.filler);
  std::mt19937_64 rng(5);
  const MultiKeyPrompt p = task.make(3000, 8, 5, rng);
  ASSERT_EQ(p.tokens.size(), 3000u);
  ASSERT_EQ(p.labels.size(), 8u);
  ASSERT_EQ(p.keys.size(), 8u);
  ASSERT_EQ(p.needles.size(), 8u);
  EXPECT_EQ(std::set<std::string>(p.labels.begin(), p.labels.end()).size(), 8u);
  EXPECT_EQ(std::set<std::string>(p.keys.begin(), p.keys.end()).size(), 8u);
  int64_t prev_end = 1;  // after BOS
  for (int i = 0; i < 8; ++i) {
    const auto [b, e] = p.needles[i];
    EXPECT_GE(b, prev_end) << "needle " << i;
    prev_end = e;
    EXPECT_EQ(s.text(p.tokens, b, e), "The pass key for " + p.labels[i] + " is " + p.keys[i] + ".");
    EXPECT_EQ(p.keys[i].size(), 5u);
  }
  EXPECT_LE(prev_end, p.question_begin);
  EXPECT_EQ(p.asked, 5);
  EXPECT_EQ(
      s.text(p.tokens, p.question_begin, 3000),
      "What is the pass key for " + p.labels[5] + "? The pass key for " + p.labels[5] + " is");

  // The same seed draws the same prompt; another seed another one.
  std::mt19937_64 again(5), other(6);
  EXPECT_EQ(task.make(3000, 8, 5, again).tokens, p.tokens);
  EXPECT_NE(task.make(3000, 8, 5, other).tokens, p.tokens);

  EXPECT_THROW(task.make(3000, 1, 0, rng), Error);
  EXPECT_THROW(task.make(3000, 13, 0, rng), Error);
  EXPECT_THROW(task.make(3000, 4, 4, rng), Error);
  EXPECT_THROW(task.make(3000, 4, -1, rng), Error);
  EXPECT_THROW(task.make(60, 4, 0, rng), Error);
}

// Every built-in wording fills in, the split has at least three held-out wordings per task, and a
// question at the stream's end is a line of its own: a newline, then the question as it reads at
// the start of a line.
TEST(NeedleTasks, WordingsFillInAndTheQuestionCanEndTheStream) {
  const Shipped s;
  for (const auto* list : {&passkey_wordings(), &kv_wordings()}) {
    int held_out = 0;
    for (const NeedleWording& w : *list) held_out += w.held_out;
    EXPECT_GE(held_out, 3);
    EXPECT_EQ(select_wordings(*list, "tuned", "t").size() + held_out, list->size());
  }
  const auto filler = std::make_shared<const Filler>(*s.tok, s.filler, "test");
  for (const NeedleWording& w : passkey_wordings()) {
    const PasskeyTask task(*s.tok, filler, w);
    std::mt19937_64 rng(4), same(4);
    const PasskeyPrompt p = task.make(1500, 0.5, rng, QuestionAt::end);
    const PasskeyPrompt b = task.make(1500, 0.5, same, QuestionAt::block);
    ASSERT_EQ(p.tokens.size(), 1500u) << w.name;
    EXPECT_EQ(p.key, b.key);
    EXPECT_EQ(s.text(p.tokens, p.needle_begin, p.needle_end), fill_wording(w.needle, p.key))
        << w.name;
    EXPECT_EQ(s.tok->decode(std::span<const int32_t>(p.tokens).subspan(p.question_begin)),
              "\n" + w.question)
        << w.name;
    EXPECT_EQ(s.text(b.tokens, b.question_begin, 1500), w.question) << w.name;
  }
  const MultiKeyTask kv(*s.tok, filler, select_wordings(kv_wordings(), "code-of", "t")[0]);
  std::mt19937_64 rng(9);
  const MultiKeyPrompt p = kv.make(2000, 4, 2, rng, QuestionAt::end);
  EXPECT_EQ(s.text(p.tokens, p.needles[1].first, p.needles[1].second),
            "The code of " + p.labels[1] + " is " + p.keys[1] + ". Remember it.");
  EXPECT_EQ(s.tok->decode(std::span<const int32_t>(p.tokens).subspan(p.question_begin)),
            "\nWhat is the code of " + p.labels[2] + "? The code of " + p.labels[2] + " is");

  EXPECT_THROW(select_wordings(passkey_wordings(), "tuned,nope", "t"), Error);
  EXPECT_EQ(select_wordings(passkey_wordings(), "my-code,infinitebench", "t")[1].name,
            "infinitebench");
  EXPECT_THROW(wording_from_templates("no key here", "Q?", false, "t"), Error);
  EXPECT_THROW(wording_from_templates("{key} only", "What for {label}?", true, "t"), Error);
  const NeedleWording c =
      wording_from_templates("Box {label}: {key}.\n", "Box {label}?", true, "t");
  EXPECT_EQ(fill_wording(c.needle, "12345", "A"), "Box A: 12345.");
}

// Haystacks by name read what they say; a missing source is an error that says how to get it.
TEST(NeedleTasks, HaystacksByNameAndPath) {
  const std::string root = ENGRAM_SOURCE_DIR;
  const Haystack brown = read_haystack("brown", {root, "/nonexistent"});
  EXPECT_GT(brown.text.size(), 10000u);
  const std::string dir = testing::TempDir() + "haystack_dir";
  std::filesystem::create_directories(dir);
  for (const auto& [name, text] : {std::pair{"part_10.txt", "ten"}, std::pair{"part_9.txt", "nine"},
                                   std::pair{"skip.json", "{}"}}) {
    std::ofstream(dir + "/" + name) << text;
  }
  EXPECT_EQ(read_haystack(dir, {root, ""}).text, "nine\n\nten");
  try {
    read_haystack("informal", {root, "/nonexistent"});
    FAIL() << "informal without LoCoMo";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--locomo"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_haystack(dir + "/missing.txt", {root, ""}), Error);
}

}  // namespace
}  // namespace engram
