// Fuzz target: tokenizing arbitrary bytes never crashes and keeps its invariants.
//
// Input: byte 0 picks the vocabulary (small built-in SentencePiece, byte-level BPE with
// the gpt-2 / llama-bpe / qwen2 pre-tokenizer, or WordPiece), parse_special and add_bos; the
// rest is the text. Mode 7 instead reads the rest as a GGUF file and builds a tokenizer from it,
// which must either work or throw engram::Error. Checked invariants:
//   - every id is in range; streaming the ids gives exactly decode(ids);
//   - without special parsing, byte-level BPE (no NFC) decodes back to the input with
//     ill-formed UTF-8 replaced by U+FFFD, and so does SentencePiece when the text has no
//     U+2581 of its own and no user-defined token.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engram/error.h"
#include "engram/gguf.h"
#include "engram/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace {

using engram::GgufFile;
using engram::GgufWriter;
using engram::Tokenizer;

struct Vocab {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

const std::vector<std::string> kSpecials = {"<s>", "</s>", "<|eot_id|>", "<|im_end|>"};

Vocab make(const GgufWriter& w) {
  Vocab v;
  v.bytes = w.to_bytes();
  v.file = GgufFile::parse(v.bytes, "fuzz-vocab");
  v.tok = Tokenizer::from_gguf(*v.file);
  return v;
}

Vocab spm() {
  const std::string sp = "\xE2\x96\x81";
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
  const char* pieces[] = {"a", "b", "e", "t", "h", "th", "the", "he", "日", "本", "日本", "<", ">"};
  float score = -1;
  for (std::string p : {sp, sp + "t", sp + "th", sp + "the", sp + sp}) {
    tokens.push_back(p);
    scores.push_back(score--);
    types.push_back(1);
  }
  for (const char* p : pieces) {
    tokens.push_back(p);
    scores.push_back(score--);
    types.push_back(1);
  }
  tokens.push_back("<think>");
  scores.push_back(0);
  types.push_back(4);
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  return make(w);
}

Vocab bpe(const char* pre) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(engram::tok::byte_to_char(static_cast<uint8_t>(b)));
    types.push_back(1);
  }
  const std::vector<std::string> merges = {"Ġ t", "h e",  "Ġt he", "i n",  "Ġ Ġ", "ĠĠ ĠĠ",
                                           "1 2", "12 3", "æ Ĺ",   "æĹ ¥", "Ċ Ċ"};
  for (const std::string& m : merges) {
    const size_t s = m.find(' ', 1);
    tokens.push_back(m.substr(0, s) + m.substr(s + 1));
    types.push_back(1);
  }
  for (const std::string& s : kSpecials) {
    tokens.push_back(s);
    types.push_back(3);
  }
  tokens.push_back("<think>");
  types.push_back(4);
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", merges);
  w.set_u32("tokenizer.ggml.eos_token_id", 256 + static_cast<uint32_t>(merges.size()) + 1);
  return make(w);
}

// WordPiece in llama.cpp's layout: [PAD] [UNK] [CLS] [SEP], word-initial pieces with U+2581,
// continuation pieces bare.
Vocab wordpiece() {
  const std::string sp = "\xE2\x96\x81";
  std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  std::vector<int32_t> types = {3, 3, 3, 3};
  for (const char* p : {"the", "a", "un", "caf", "日", "本", ".", ",", "!", "["}) {
    tokens.push_back(sp + p);
    types.push_back(1);
  }
  for (const char* p : {"e", "want", "ed", "s", "a", "b"}) {
    tokens.push_back(p);
    types.push_back(1);
  }
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "bert");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.unknown_token_id", 1);
  return make(w);
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant failed: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Built once; immutable afterwards.
  static const Vocab vocabs[5] = {spm(), bpe("gpt-2"), bpe("llama-bpe"), bpe("qwen2"), wordpiece()};
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

  if ((mode & 7) == 7) {  // arbitrary GGUF bytes as a vocabulary
    try {
      auto file = GgufFile::parse({data + 1, size - 1}, "fuzz.gguf");
      auto tok = Tokenizer::from_gguf(*file);
      const std::vector<int32_t> ids = tok->encode("Hello, world! 日本語 <s>", true, true);
      for (int32_t id : ids) check(id >= 0 && id < tok->n_vocab(), "id out of range (gguf)");
      (void)tok->decode(ids, true);
    } catch (const engram::Error&) {
    }
    return 0;
  }

  const Vocab& v = vocabs[(mode & 7) % 5];
  const Tokenizer& tok = *v.tok;
  const bool parse_special = mode & 8;
  const bool add_bos = mode & 16;
  const std::vector<int32_t> ids = tok.encode(text, add_bos, parse_special);
  for (int32_t id : ids) check(id >= 0 && id < tok.n_vocab(), "id out of range");

  const std::string decoded = tok.decode(ids);
  engram::TokenStreamer stream(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  check(streamed == decoded, "streamed text differs from decode()");

  if (!parse_special) {
    const std::string clean = engram::tok::sanitize_utf8(text);
    const bool spm_model = tok.model() == engram::TokenizerModel::Llama;
    const bool nfc = tok.pre() == "qwen2";
    // WordPiece normalises (case, accents, spaces): only the ids' range and streaming hold.
    const bool wordpiece_model = tok.model() == engram::TokenizerModel::Bert;
    // SentencePiece prefixes a space to the text after a user-defined token, as HF does.
    const bool spm_lossy = spm_model && (clean.find("\xE2\x96\x81") != std::string::npos ||
                                         clean.find("<think>") != std::string::npos);
    if (!nfc && !spm_lossy && !wordpiece_model)
      check(decoded == clean, "decode(encode(text)) != text");
  }
  return 0;
}
