// WordPiece, as BERT tokenizes (the `bert` vocabulary of llama.cpp's converter).
//
// The basic tokenizer first: drop NUL, U+FFFD and every \p{C} character except tab/CR/LF;
// whitespace (space, tab, CR, LF, \p{Zs}) becomes a space; each CJK ideograph becomes a word
// of its own; words split at spaces (and U+2028/U+2029, which Python's split() also splits
// at); for an uncased vocabulary each word is lowercased code point by code point, put in NFD
// and its non-spacing marks (accents) dropped, for a cased one it is put in NFC; then every
// punctuation character (\p{P} or ASCII !-/ :-@ [-` {-~) becomes a word of its own.
// Then WordPiece: the longest vocabulary piece that starts the word, then the longest that
// continues it, ...; a word with a remainder no piece matches, or longer than 100 code points,
// is one [UNK]. llama.cpp's converter stores word-initial pieces with a U+2581 prefix and
// "##" continuation pieces without their "##", so "▁" + prefix and the bare remainder are
// what is looked up.
#include <algorithm>

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"
#include "tokenizer/wordpiece_tables.h"

namespace engram {
namespace {

constexpr size_t kMaxWordChars = 100;  // BERT's max_input_chars_per_word
constexpr std::string_view kPhantomSpace = "\xE2\x96\x81";

bool is_bert_whitespace(uint32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  return cp >= 0x80 &&
         tok::in_ranges(tok::kSpaceSeparatorRanges, tok::kSpaceSeparatorRanges_size, cp);
}

bool is_bert_control(uint32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return tok::in_ranges(tok::kOtherRanges, tok::kOtherRanges_size, cp);
}

bool is_bert_punctuation(uint32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return true;
  return cp >= 0x80 && tok::in_ranges(tok::kPunctuationRanges, tok::kPunctuationRanges_size, cp);
}

// The CJK Unified Ideograph blocks BERT splits character by character (its own list).
bool is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

const tok::LowercaseMapping* lowercase_of(uint32_t cp) {
  const auto* end = tok::kLowercase + tok::kLowercase_size;
  const auto* it =
      std::lower_bound(tok::kLowercase, end, cp,
                       [](const tok::LowercaseMapping& m, uint32_t v) { return m.cp < v; });
  return it != end && it->cp == cp ? it : nullptr;
}

void append_lower(std::vector<uint32_t>& out, uint32_t cp) {
  const tok::LowercaseMapping* m = lowercase_of(cp);
  if (!m) {
    out.push_back(cp);
    return;
  }
  out.push_back(m->first);
  if (m->second) out.push_back(m->second);
}

// The words of the basic tokenizer, as code points.
std::vector<std::vector<uint32_t>> basic_words(std::string_view text, bool lowercase) {
  std::vector<std::vector<uint32_t>> raw(1);  // split at whitespace
  auto end_word = [&] {
    if (!raw.back().empty()) raw.emplace_back();
  };
  for (size_t pos = 0; pos < text.size();) {
    const uint32_t cp = tok::next_codepoint(text, pos);
    if (cp == 0 || cp == tok::kReplacementChar || is_bert_control(cp)) continue;
    if (is_bert_whitespace(cp) || cp == 0x2028 || cp == 0x2029) {
      end_word();
    } else if (is_cjk(cp)) {
      end_word();
      raw.back().push_back(cp);
      end_word();
    } else {
      raw.back().push_back(cp);
    }
  }
  std::vector<std::vector<uint32_t>> words;
  for (const std::vector<uint32_t>& w : raw) {
    if (w.empty()) continue;
    std::vector<uint32_t> norm;
    if (lowercase) {
      std::vector<uint32_t> lower;
      for (uint32_t cp : w) append_lower(lower, cp);
      for (uint32_t cp : tok::nfd(lower))
        if (!tok::in_ranges(tok::kNonspacingMarkRanges, tok::kNonspacingMarkRanges_size, cp))
          norm.push_back(cp);
    } else {
      std::string s;
      for (uint32_t cp : w) tok::append_utf8(s, cp);
      const std::string n = tok::nfc_normalize(s);
      for (size_t pos = 0; pos < n.size();) norm.push_back(tok::next_codepoint(n, pos));
    }
    std::vector<uint32_t> cur;
    for (uint32_t cp : norm) {
      if (is_bert_punctuation(cp)) {
        if (!cur.empty()) words.push_back(std::move(cur));
        cur.clear();
        words.push_back({cp});
      } else {
        cur.push_back(cp);
      }
    }
    if (!cur.empty()) words.push_back(std::move(cur));
  }
  return words;
}

}  // namespace

bool tok::has_lowercase(uint32_t cp) {
  return lowercase_of(cp) != nullptr;
}

void Tokenizer::Impl::encode_wordpiece(std::string_view text, std::vector<int32_t>& out) const {
  for (const std::vector<uint32_t>& word : basic_words(text, wordpiece_lowercase)) {
    if (word.size() > kMaxWordChars) {
      out.push_back(unk);
      continue;
    }
    // Byte offset of each code point, so candidate pieces are substrings of one string.
    std::string utf8;
    std::vector<size_t> at;
    for (uint32_t cp : word) {
      at.push_back(utf8.size());
      tok::append_utf8(utf8, cp);
    }
    at.push_back(utf8.size());
    const size_t start_size = out.size();
    std::string key;
    size_t i = 0;
    while (i < word.size()) {
      int32_t found = -1;
      size_t next = i;
      for (size_t j = word.size(); j > i; --j) {
        const size_t bytes = at[j] - at[i];
        if (bytes > wordpiece_max_piece_bytes) continue;
        key.assign(i == 0 ? kPhantomSpace : std::string_view());
        key.append(utf8, at[i], bytes);
        const int32_t id = find(key);
        if (id >= 0 && types[id] == TokenType::Normal) {
          found = id;
          next = j;
          break;
        }
      }
      if (found < 0) {
        out.resize(start_size);
        out.push_back(unk);
        break;
      }
      out.push_back(found);
      i = next;
    }
  }
}

}  // namespace engram
