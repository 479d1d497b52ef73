// Tokenizer unit tests on small hand-built vocabularies: merge order, byte fallback, special
// tokens, decoding and streaming, pre-tokenizer splits, NFC, and refusal of bad vocabularies.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tokenizer.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace engram {
namespace {

// A GGUF image in memory and the tokenizer read from it (the bytes must outlive the file).
struct Built {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

std::unique_ptr<Built> build(const GgufWriter& w) {
  auto b = std::make_unique<Built>();
  b->bytes = w.to_bytes();
  b->file = GgufFile::parse(b->bytes, "test.gguf");
  b->tok = Tokenizer::from_gguf(*b->file);
  return b;
}

const std::string kSp = "\xE2\x96\x81";  // U+2581

// SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then pieces with scores.
GgufWriter spm_vocab(const std::vector<std::pair<std::string, float>>& pieces,
                     const std::vector<std::string>& extra_control = {}) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf);
    scores.push_back(0);
    types.push_back(6);
  }
  for (const auto& [p, s] : pieces) {
    tokens.push_back(p);
    scores.push_back(s);
    types.push_back(1);
  }
  for (const std::string& c : extra_control) {
    tokens.push_back(c);
    scores.push_back(0);
    types.push_back(3);
  }
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  return w;
}

// Byte-level BPE vocabulary: the 256 byte characters, then the merges' results, then extras.
struct BpeSpec {
  std::vector<std::string> merges;                     // in byte-character spelling, "a b"
  std::vector<std::pair<std::string, int32_t>> extra;  // text, type
  std::string pre = "llama-bpe";
};

GgufWriter bpe_vocab(const BpeSpec& spec) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(tok::byte_to_char(static_cast<uint8_t>(b)));
    types.push_back(1);
  }
  for (const std::string& m : spec.merges) {
    const size_t sp = m.find(' ', 1);
    tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
    types.push_back(1);
  }
  for (const auto& [t, ty] : spec.extra) {
    tokens.push_back(t);
    types.push_back(ty);
  }
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", spec.pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", spec.merges);
  return w;
}

std::vector<std::string> pieces_of(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.token_text(id));
  return out;
}

using Strs = std::vector<std::string>;

TEST(TokenizerSpm, MergesByScoreWithSpacePrefix) {
  auto b = build(spm_vocab({{kSp, -1},
                            {"a", -2},
                            {"b", -3},
                            {"c", -4},
                            {kSp + "a", -10},
                            {"ab", -5},
                            {"bc", -6},
                            {kSp + "ab", -7},
                            {"abc", -20}}));
  const Tokenizer& t = *b->tok;
  // "ab" (score -5) beats "▁a" (-10); then "▁" + "ab" = "▁ab" (-7); "c" stays alone.
  EXPECT_EQ(pieces_of(t, t.encode("abc", false, false)), (Strs{kSp + "ab", "c"}));
  // BOS by default for llama; a space becomes another U+2581.
  std::vector<int32_t> ids = t.encode("a b", true, false);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(pieces_of(t, ids), (Strs{"<s>", kSp + "a", kSp, "b"}));
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.decode(ids), "a b");
  EXPECT_TRUE(t.encode("", false, false).empty());
  EXPECT_EQ(t.encode("", true, false), (std::vector<int32_t>{1}));
}

TEST(TokenizerSpm, ByteFallbackAndRoundTrip) {
  auto b = build(spm_vocab({{kSp, -1}, {"a", -2}}));
  const Tokenizer& t = *b->tok;
  // "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(pieces_of(t, t.encode("aé", false, false)), (Strs{kSp, "a", "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(t.token_to_piece(t.find_token("<0xC3>")), "\xC3");
  for (std::string s : {"aé", "  leading", "trailing  ", "日本語", "\n\t", "a\xF0\x9F\x98\x80"})
    EXPECT_EQ(t.decode(t.encode(s, true, false)), s) << s;
}

TEST(TokenizerSpm, ControlTokensOnlyWhenParsingSpecial) {
  auto b = build(spm_vocab({{kSp, -1}, {"a", -2}, {"<", -3}, {"s", -4}, {">", -5}}));
  const Tokenizer& t = *b->tok;
  const std::vector<int32_t> parsed = t.encode("a<s>a", false, true);
  EXPECT_EQ(pieces_of(t, parsed), (Strs{kSp, "a", "<s>", kSp, "a"}));
  const std::vector<int32_t> plain = t.encode("a<s>a", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(t.decode(plain), "a<s>a");
  EXPECT_EQ(t.decode(parsed), "a a");  // control tokens are not rendered by default
  EXPECT_EQ(t.decode(parsed, true), "a<s> a");
  EXPECT_TRUE(t.is_eog(2));
  EXPECT_FALSE(t.is_eog(1));
}

TEST(TokenizerBpe, MergesByRankAndIgnoreMerges) {
  // "Ġ" is the byte character of a space.
  BpeSpec spec;
  spec.merges = {"h e", "l l", "he ll", "hell o", "Ġ w", "o r"};
  spec.pre = "gpt-2";
  auto b = build(bpe_vocab(spec));
  const Tokenizer& t = *b->tok;
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(pieces_of(t, t.encode("hello world", false, false)),
            (Strs{"hello", "Ġw", "or", "l", "d"}));
  EXPECT_EQ(t.decode(t.encode("hello world", false, false)), "hello world");

  // With Llama-3's rule a pre-token that is a whole token is taken as is, even when the
  // merges cannot build it ("lo" has no merge here).
  BpeSpec s3;
  s3.merges = {"h e"};
  s3.extra = {{"hello", 1}, {"<|eot_id|>", 3}, {"<think>", 4}};
  auto b3 = build(bpe_vocab(s3));
  const Tokenizer& t3 = *b3->tok;
  EXPECT_EQ(pieces_of(t3, t3.encode("hello", false, false)), (Strs{"hello"}));
  EXPECT_EQ(pieces_of(t3, t3.encode("hellx", false, false)), (Strs{"he", "l", "l", "x"}));
  // Control tokens need parse_special; user-defined ones are always recognised.
  EXPECT_EQ(pieces_of(t3, t3.encode("<|eot_id|>", false, true)), (Strs{"<|eot_id|>"}));
  EXPECT_GT(t3.encode("<|eot_id|>", false, false).size(), 1u);
  EXPECT_EQ(pieces_of(t3, t3.encode("<think>", false, false)), (Strs{"<think>"}));
  EXPECT_TRUE(t3.is_eog(t3.find_token("<|eot_id|>")));
  EXPECT_EQ(t3.token_to_piece(t3.find_token("<think>")), "<think>");
}

TEST(TokenizerBpe, InvalidUtf8BecomesReplacementCharacter) {
  BpeSpec spec;
  auto b = build(bpe_vocab(spec));
  const Tokenizer& t = *b->tok;
  // E3 81 is a truncated 3-byte sequence: one U+FFFD (EF BF BD), like TextDecoder.
  EXPECT_EQ(t.encode("a\xE3\x81", false, false), t.encode("a\xEF\xBF\xBD", false, false));
  EXPECT_EQ(t.decode(t.encode("\xFF", false, false)), "\xEF\xBF\xBD");
}

TEST(TokenizerUnicode, SanitizeFollowsMaximalSubparts) {
  EXPECT_EQ(tok::sanitize_utf8("\xE3\x81"
                               "A"),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(tok::sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::sanitize_utf8("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(tok::sanitize_utf8("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::sanitize_utf8("ok \xE6\x97\xA5"), "ok \xE6\x97\xA5");
  EXPECT_TRUE(tok::is_valid_utf8("\xEF\xBF\xBD"));
  EXPECT_FALSE(tok::is_valid_utf8("\xF5"));
  EXPECT_TRUE(tok::is_letter(0x65E5));  // 日
  EXPECT_TRUE(tok::is_number(0x0663));  // Arabic-Indic 3
  EXPECT_TRUE(tok::is_space(0x3000));   // ideographic space
  EXPECT_TRUE(tok::is_space(0xFEFF));   // JS \s includes the BOM
  EXPECT_FALSE(tok::is_letter(0x1F600));
}

TEST(TokenizerUnicode, Nfc) {
  EXPECT_EQ(tok::nfc_normalize("e\xCC\x81"), "\xC3\xA9");                // e + U+0301 -> é
  EXPECT_EQ(tok::nfc_normalize("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"),  // jamo -> 각
            "\xEA\xB0\x81");
  EXPECT_EQ(tok::nfc_normalize("\xE3\x81\x8B\xE3\x82\x99"), "\xE3\x81\x8C");  // か + ゙ -> が
  EXPECT_EQ(tok::nfc_normalize("plain ascii"), "plain ascii");
  // Canonical ordering: dot below (220) moves before dot above (230), then composes.
  EXPECT_EQ(tok::nfc_normalize("s\xCC\x87\xCC\xA3"), "\xE1\xB9\xA9");  // ṩ
}

std::vector<std::string> split(tok::PreTokenizer k, std::string_view s) {
  std::vector<std::string_view> v;
  tok::pretokenize(k, s, v);
  return {v.begin(), v.end()};
}

// Expected splits are what node's String.match gives for the same regexes.
TEST(TokenizerPre, Llama3) {
  using tok::PreTokenizer;
  EXPECT_EQ(split(PreTokenizer::Llama3, "I'M here, it's 12345 ok"),
            (Strs{"I", "'M", " here", ",", " it", "'s", " ", "123", "45", " ok"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "  x\n\n  y \t\n z  "),
            (Strs{" ", " x", "\n\n", " ", " y", " \t\n", " z", "  "}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "x   1"), (Strs{"x", "  ", " ", "1"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "!!?? a\r\n"), (Strs{"!!??", " a", "\r\n"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, "12345"), (Strs{"1", "2", "3", "4", "5"}));
}

TEST(TokenizerPre, Gpt2) {
  using tok::PreTokenizer;
  EXPECT_EQ(split(PreTokenizer::Gpt2, "I'M here, it's 12345 ok"),
            (Strs{"I", "'", "M", " here", ",", " it", "'s", " 12345", " ok"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "  x\n\n  y \t\n z  "),
            (Strs{" ", " x", "\n\n ", " y", " \t\n", " z", "  "}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "x   1"), (Strs{"x", "  ", " 1"}));
}

TEST(TokenizerStream, HoldsIncompleteUtf8) {
  auto b = build(spm_vocab({{kSp, -1}, {kSp + "a", -2}}));
  const Tokenizer& t = *b->tok;
  const int32_t e6 = t.find_token("<0xE6>"), x97 = t.find_token("<0x97>"),
                xa5 = t.find_token("<0xA5>"), ff = t.find_token("<0xFF>");
  TokenStreamer s(t);
  EXPECT_EQ(s.push(1), "");                         // BOS renders nothing
  EXPECT_EQ(s.push(t.find_token(kSp + "a")), "a");  // the prefixed space is dropped
  EXPECT_EQ(s.push(e6), "");
  EXPECT_EQ(s.push(x97), "");
  EXPECT_EQ(s.push(xa5), "\xE6\x97\xA5");
  EXPECT_EQ(s.push(ff), "\xFF");  // can never become valid: passed through at once
  EXPECT_EQ(s.push(e6), "");
  EXPECT_EQ(s.push(t.find_token(kSp)), "\xE6 ");  // broken sequence is released
  EXPECT_EQ(s.push(e6), "");
  EXPECT_EQ(s.flush(), "\xE6");
}

// Each case edits a valid vocabulary and expects a refusal that mentions `needle`.
void expect_refused(const std::function<void(GgufWriter&)>& edit, const std::string& needle) {
  BpeSpec spec;
  spec.merges = {"h e"};
  GgufWriter w = bpe_vocab(spec);
  edit(w);
  try {
    build(w);
    ADD_FAILURE() << "accepted; expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, RefusesInconsistentVocabularies) {
  expect_refused([](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "xyz"); },
                 "tokenizer model 'xyz' is not supported (supported: llama, gpt2, bert)");
  expect_refused([](GgufWriter& w) { w.set_string("tokenizer.ggml.pre", "klingon"); },
                 "tokenizer.ggml.pre 'klingon' is not supported");
  expect_refused(
      [](GgufWriter& w) {
        w.set_string_array("tokenizer.ggml.merges", {"h e", "q zz"});
      },
      "tokenizer.ggml.merges[1] = 'q zz' names 'zz', which is not a token");
  expect_refused([](GgufWriter& w) { w.set_string_array("tokenizer.ggml.merges", {"he"}); },
                 "tokenizer.ggml.merges[0]");
  expect_refused(
      [](GgufWriter& w) {
        w.set_f32_array("tokenizer.ggml.scores", {1.0f, 2.0f});
      },
      "tokenizer.ggml.scores has 2 entries but tokenizer.ggml.tokens has 257");
  expect_refused([](GgufWriter& w) { w.set_i32_array("tokenizer.ggml.token_type", {1}); },
                 "tokenizer.ggml.token_type has 1 entries");
  expect_refused([](GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 99999); },
                 "tokenizer.ggml.bos_token_id = 99999 is out of range");
  expect_refused([](GgufWriter& w) { w.set_u32("tokenizer.ggml.eos_token_id", 257); },
                 "tokenizer.ggml.eos_token_id = 257 is out of range");

  GgufWriter empty;
  empty.set_string("general.name", "no vocabulary");
  EXPECT_THROW(build(empty), Error);
  try {
    build(empty);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.model is missing"), std::string::npos);
  }
}

}  // namespace
}  // namespace engram
