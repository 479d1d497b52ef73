// Internal state of engram::Tokenizer, shared by the model-specific encoders.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engram/tokenizer.h"
#include "tokenizer/pretokenize.h"

namespace engram {

struct Tokenizer::Impl {
  TokenizerModel model = TokenizerModel::Llama;
  std::string pre_name;
  tok::PreTokenizer pre = tok::PreTokenizer::Gpt2;
  bool ignore_merges = false;  // Llama-3: a pre-token that is itself a token is not merged
  bool nfc = false;            // Qwen2: NFC-normalise text first (the HF normalizer does)

  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<TokenType> types;
  std::unordered_map<std::string_view, int32_t> token_ids;  // views into `tokens`

  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;  // llama only
  bool spm_word_split = false;   // llama: no piece has U+2581 after another character
  std::vector<uint8_t> eog;      // per token

  // Tokens matched in the text before the model sees it, grouped by first byte, longest
  // first. Control/unknown tokens only with parse_special; user-defined ones always.
  std::array<std::vector<int32_t>, 256> specials_by_byte;

  // llama: byte-fallback token per byte value (-1 when missing).
  std::array<int32_t, 256> byte_token{};
  // gpt2: token of each byte's byte-level character, and merges keyed by (left << 32 | right).
  std::array<int32_t, 256> byte_char_token{};
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  std::unordered_map<uint64_t, Merge> merges;
  // bert: lowercase and strip accents (an uncased vocabulary), the longest piece in bytes.
  bool wordpiece_lowercase = true;
  size_t wordpiece_max_piece_bytes = 0;

  int32_t find(std::string_view text) const {
    auto it = token_ids.find(text);
    return it == token_ids.end() ? -1 : it->second;
  }
  bool valid(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < tokens.size(); }

  // Model-specific encoding of one text fragment (no special tokens in it), appended to out.
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void encode_spm_word(std::string_view escaped, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void encode_wordpiece(std::string_view text, std::vector<int32_t>& out) const;  // wordpiece.cpp
};

namespace tok {
// GPT-2's reversible byte <-> character map (printable bytes keep their code point, the rest
// move to U+0100 and up): the UTF-8 text of the character standing for byte b.
const std::string& byte_to_char(uint8_t b);
// Inverse: the byte a byte-level character stands for, or -1.
int char_to_byte(uint32_t cp);
// NFC normalisation of valid UTF-8 (nfc.cpp).
std::string nfc_normalize(std::string_view text);
// Whether cp is an upper-case letter: its lowercase differs (wordpiece.cpp).
bool has_lowercase(uint32_t cp);
// NFD of code points: full canonical decomposition, then canonical ordering (nfc.cpp).
std::vector<uint32_t> nfd(const std::vector<uint32_t>& cps);
}  // namespace tok

}  // namespace engram
