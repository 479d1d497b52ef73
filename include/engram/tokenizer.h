// Tokenizers built from GGUF metadata (tokenizer.ggml.*).
//
// Three models: `llama` (SentencePiece BPE: merges by piece score, U+2581 for spaces, byte
// fallback), `gpt2` (byte-level BPE: ranked merges after a pre-tokenizer split chosen by
// tokenizer.ggml.pre), both checked against Hugging Face's tokenizers (transformers.js) on the
// Llama-2, Llama-3 and Qwen3 vocabularies (see tools/tokenizer/), and `bert` (WordPiece in
// llama.cpp's layout: word-initial pieces prefixed with U+2581, "##" pieces stored bare;
// src/tokenizer/wordpiece.cpp), checked against a Python reference (tools/py/bert_reference.py).
//
// Text in is bytes: ill-formed UTF-8 is replaced by U+FFFD per maximal subpart (what a
// JavaScript/Python client decoding the same bytes would pass on), so encode never fails.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace engram {

class GgufFile;
class GgufWriter;

// Values of tokenizer.ggml.token_type.
enum class TokenType : uint8_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

enum class TokenizerModel : uint8_t { Llama, Gpt2, Bert };

class Tokenizer {
 public:
  // Reads and validates the vocabulary; throws engram::Error naming the key and value that
  // is wrong (missing model, lengths that disagree, merges naming unknown tokens, ...).
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // add_bos: prepend BOS (pass add_bos() for the vocabulary's default); for `bert`, put
  // [CLS] first and [SEP] last.
  // parse_special: recognise control/unknown token texts such as "<|eot_id|>" in the text
  // (longest match, leftmost first); otherwise they are plain text. User-defined tokens
  // (type 4, e.g. Qwen's "<think>") are always recognised, as llama.cpp and HF do.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // Concatenated bytes of the tokens. Control tokens are dropped unless render_special.
  // For `llama` vocabularies the space the encoder prefixed is removed again.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;

  // Raw bytes of one token as it is output (byte tokens give their byte, "▁" a space,
  // byte-level BPE characters their bytes). May be partial UTF-8. Control tokens give ""
  // unless render_special. Out-of-range ids give "".
  std::string token_to_piece(int32_t id, bool render_special = false) const;

  int32_t n_vocab() const;
  int32_t bos() const;  // -1 when the vocabulary has none
  int32_t eos() const;
  int32_t unk() const;
  int32_t pad() const;
  bool add_bos() const;  // tokenizer.ggml.add_bos_token (default per model)
  bool add_eos() const;
  bool add_space_prefix() const;  // llama: encode prefixes a space, decode removes it
  bool is_eog(int32_t id) const;  // end of generation: EOS, EOT, EOM and similar control tokens
  bool is_control(int32_t id) const;
  TokenizerModel model() const;
  const std::string& pre() const;  // tokenizer.ggml.pre as read ("" for llama)

  // Token text as stored in the vocabulary ("▁the", "Ġthe", "<0x0A>"); "" when out of range.
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;
  float token_score(int32_t id) const;
  // Id of the token whose stored text is exactly `text`, or -1.
  int32_t find_token(std::string_view text) const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns token ids into text while streaming: bytes of a UTF-8 sequence split across tokens
// are held back until the sequence is complete. Ill-formed bytes are passed through as soon
// as they cannot become well-formed. The tokenizer must outlive the streamer.
class TokenStreamer {
 public:
  explicit TokenStreamer(const Tokenizer& tok, bool render_special = false)
      : tok_(tok), render_special_(render_special) {}
  // Text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back (incomplete UTF-8 at the end of the stream).
  std::string flush();
  void reset();

 private:
  const Tokenizer& tok_;
  bool render_special_;
  bool at_start_ = true;
  std::string pending_;
};

// Converts a Hugging Face tokenizer directory (tokenizer.json, optional
// tokenizer_config.json) into vocab-only GGUF metadata (tokenizer.ggml.*, plus
// tokenizer.chat_template). SentencePiece-style BPE (byte_fallback, U+2581 pieces) becomes
// `llama` with score = -(rank of the first merge producing the piece); byte-level BPE becomes
// `gpt2` with tokenizer.ggml.pre recognised from the pre-tokenizer regex. Throws
// engram::Error naming the file and field it cannot convert.
void import_hf_tokenizer(const std::string& dir, GgufWriter& out);

}  // namespace engram
