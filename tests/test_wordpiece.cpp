// The `bert` (WordPiece) tokenizer on small hand-built vocabularies in llama.cpp's layout:
// the basic tokenizer's cleaning, lowercasing, accent stripping, punctuation and CJK splits,
// greedy longest-match pieces with continuations, [UNK], framing, and bad vocabularies.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tokenizer.h"

namespace engram {
namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581, llama.cpp's word-initial mark

struct Built {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

// Pieces as in a Hugging Face vocab.txt ("word", "##cont", "[SPECIAL]"), converted as
// llama.cpp's converter does. Ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, then the pieces.
std::unique_ptr<Built> bert_vocab(const std::vector<std::string>& pieces,
                                  bool with_sep_key = true) {
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  std::vector<int32_t> types = {3, 3, 3, 3};
  for (const std::string& p : pieces) {
    tokens.push_back(p.starts_with("##") ? p.substr(2) : kSp + p);
    types.push_back(1);
  }
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "bert");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.unknown_token_id", 1);
  if (with_sep_key) w.set_u32("tokenizer.ggml.seperator_token_id", 3);
  auto b = std::make_unique<Built>();
  b->bytes = w.to_bytes();
  b->file = GgufFile::parse(b->bytes, "bert.gguf");
  b->tok = Tokenizer::from_gguf(*b->file);
  return b;
}

// The pieces of `text` (no framing), as vocab.txt spells them.
std::vector<std::string> pieces(const Tokenizer& tok, std::string_view text) {
  std::vector<std::string> out;
  for (int32_t id : tok.encode(text, false, false)) {
    const std::string& t = tok.token_text(id);
    if (tok.token_type(id) == TokenType::Control)
      out.push_back(t);
    else if (t.starts_with(kSp))
      out.push_back(t.substr(kSp.size()));
    else
      out.push_back("##" + t);
  }
  return out;
}

using P = std::vector<std::string>;

const std::vector<std::string> kPieces = {
    "the",   "cafe", "naive", "un", "##want", "##ed", "##able", "want", "play",
    "##ing", "##s",  ".",     ",",  "!",      "'",    "-",      "a",    "##a",
    "b",     "##b",  "中",    "文", "uber",   "$",    "s",
};

TEST(WordPiece, FramesWithClsAndSep) {
  auto b = bert_vocab(kPieces);
  const Tokenizer& t = *b->tok;
  EXPECT_EQ(t.model(), TokenizerModel::Bert);
  EXPECT_EQ(t.bos(), 2);
  EXPECT_EQ(t.eos(), 3);
  EXPECT_EQ(t.unk(), 1);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.encode("the", true, false), (std::vector<int32_t>{2, t.find_token(kSp + "the"), 3}));
  EXPECT_EQ(t.encode("", true, false), (std::vector<int32_t>{2, 3}));
  EXPECT_TRUE(t.encode("", false, false).empty());
  EXPECT_TRUE(t.encode(" \t\n ", false, false).empty());
}

TEST(WordPiece, GreedyLongestPiecesWithContinuations) {
  auto b = bert_vocab(kPieces);
  EXPECT_EQ(pieces(*b->tok, "unwanted"), (P{"un", "##want", "##ed"}));
  EXPECT_EQ(pieces(*b->tok, "wanted playing"), (P{"want", "##ed", "play", "##ing"}));
  EXPECT_EQ(pieces(*b->tok, "plays"), (P{"play", "##s"}));
  // "##want" is a continuation only: a word cannot start with it.
  EXPECT_EQ(pieces(*b->tok, "able"), (P{"[UNK]"}));
  EXPECT_EQ(pieces(*b->tok, "abab"), (P{"a", "##b", "##a", "##b"}));
}

TEST(WordPiece, UnknownWordsBecomeOneUnk) {
  auto b = bert_vocab(kPieces);
  // "playx": "play" matches, the remainder does not: the whole word is [UNK], not play + [UNK].
  EXPECT_EQ(pieces(*b->tok, "the playx cafe"), (P{"the", "[UNK]", "cafe"}));
  EXPECT_EQ(pieces(*b->tok, "zzz"), (P{"[UNK]"}));
  // Longer than 100 characters: [UNK] even though every piece exists.
  EXPECT_EQ(pieces(*b->tok, std::string(100, 'a')).size(), 100u);
  EXPECT_EQ(pieces(*b->tok, std::string(101, 'a')), (P{"[UNK]"}));
}

TEST(WordPiece, LowercasesAndStripsAccentsForAnUncasedVocabulary) {
  auto b = bert_vocab(kPieces);
  EXPECT_EQ(pieces(*b->tok, "THE Café NAÏVE"), (P{"the", "cafe", "naive"}));
  // Decomposed input (e + U+0301) gives the same as precomposed.
  EXPECT_EQ(pieces(*b->tok, "cafe\xCC\x81"), (P{"cafe"}));
  EXPECT_EQ(pieces(*b->tok,
                   "\xC3\x9C"
                   "BER"),
            (P{"uber"}));  // ÜBER
}

TEST(WordPiece, KeepsCaseForACasedVocabulary) {
  auto b = bert_vocab({"The", "the", "Caf", "##é", "caf", "##e"});
  EXPECT_EQ(pieces(*b->tok, "The the"), (P{"The", "the"}));
  EXPECT_EQ(pieces(*b->tok, "Café"), (P{"Caf", "##é"}));
  // Cased: accents stay, NFC composes e + U+0301 into é.
  EXPECT_EQ(pieces(*b->tok, "cafe\xCC\x81"), (P{"caf", "##é"}));
  EXPECT_EQ(pieces(*b->tok, "THE"), (P{"[UNK]"}));
}

TEST(WordPiece, SplitsPunctuationIntoWordsOfTheirOwn) {
  auto b = bert_vocab(kPieces);
  EXPECT_EQ(pieces(*b->tok, "the cafe's."), (P{"the", "cafe", "'", "s", "."}));
  EXPECT_EQ(pieces(*b->tok, "un-wanted!,"), (P{"un", "-", "want", "##ed", "!", ","}));
  // '$' is an ASCII symbol BERT counts as punctuation; '€' (a currency symbol) is not.
  EXPECT_EQ(pieces(*b->tok, "a$b"), (P{"a", "$", "b"}));
  EXPECT_EQ(pieces(*b->tok,
                   "a\xE2\x82\xAC"
                   "b"),
            (P{"[UNK]"}));
}

TEST(WordPiece, SplitsCjkCharacters) {
  auto b = bert_vocab(kPieces);
  EXPECT_EQ(pieces(*b->tok, "中文the"), (P{"中", "文", "the"}));
  // Hiragana is not in BERT's CJK blocks: it stays inside the word.
  EXPECT_EQ(pieces(*b->tok, "中\xE3\x81\x82"), (P{"中", "[UNK]"}));
}

TEST(WordPiece, CleansControlCharactersAndWhitespace) {
  auto b = bert_vocab(kPieces);
  // Control and format characters vanish (joining the word); tabs, newlines, NBSP and the
  // ideographic space separate words.
  EXPECT_EQ(pieces(*b->tok,
                   "ca\x07"
                   "fe\xE2\x80\x8B"),
            (P{"cafe"}));
  EXPECT_EQ(pieces(*b->tok,
                   "the\tcafe\nthe\xC2\xA0"
                   "cafe\xE3\x80\x80the"),
            (P{"the", "cafe", "the", "cafe", "the"}));
  // Ill-formed UTF-8 becomes U+FFFD, which BERT drops.
  EXPECT_EQ(pieces(*b->tok, "the\xFF cafe"), (P{"the", "cafe"}));
}

TEST(WordPiece, ParsesSpecialTokensOnlyWhenAsked) {
  auto b = bert_vocab({"[", "]", "sep", "the"});
  const Tokenizer& t = *b->tok;
  EXPECT_EQ(t.encode("the [SEP]", false, true),
            (std::vector<int32_t>{t.find_token(kSp + "the"), 3}));
  EXPECT_EQ(pieces(t, "the [SEP]"), (P{"the", "[", "sep", "]"}));
}

TEST(WordPiece, DecodesPiecesBackToWords) {
  auto b = bert_vocab(kPieces);
  const Tokenizer& t = *b->tok;
  const std::vector<int32_t> ids = t.encode("unwanted cafe", true, false);
  EXPECT_EQ(t.decode(ids), "unwanted cafe");
  TokenStreamer stream(t);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  EXPECT_EQ(streamed + stream.flush(), "unwanted cafe");
}

TEST(WordPiece, FindsSeparatorByTextWithoutTheKey) {
  auto b = bert_vocab(kPieces, /*with_sep_key=*/false);
  EXPECT_EQ(b->tok->eos(), 3);
}

TEST(WordPiece, RefusesAVocabularyWithoutUnk) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "bert");
  w.set_string_array("tokenizer.ggml.tokens", {"[CLS]", "[SEP]", kSp + "a"});
  w.set_i32_array("tokenizer.ggml.token_type", {3, 3, 1});
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes, "bert.gguf");
  try {
    Tokenizer::from_gguf(*f);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no [UNK] token"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace engram
