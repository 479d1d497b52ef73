#include "tokenizer/unicode.h"

#include <algorithm>

namespace engram::tok {

bool in_ranges(const CodepointRange* r, size_t n, uint32_t cp) {
  const CodepointRange* end = r + n;
  // First range whose upper bound is >= cp.
  const CodepointRange* it =
      std::lower_bound(r, end, cp, [](const CodepointRange& a, uint32_t v) { return a.hi < v; });
  return it != end && it->lo <= cp;
}

namespace {

bool is_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

}  // namespace

size_t utf8_seq_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 1;
}

uint32_t next_codepoint(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  size_t need = utf8_seq_len(b0) - 1;
  if (need == 0) {  // stray continuation byte or invalid lead (C0, C1, F5..FF)
    ++pos;
    return kReplacementChar;
  }
  uint32_t cp = b0 & (0x3F >> need);
  // The second byte's allowed range depends on the lead (no overlongs, surrogates, > U+10FFFF).
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 == 0xE0) lo = 0xA0;
  if (b0 == 0xED) hi = 0x9F;
  if (b0 == 0xF0) lo = 0x90;
  if (b0 == 0xF4) hi = 0x8F;
  size_t i = pos + 1;
  for (size_t k = 0; k < need; ++k, ++i) {
    if (i >= s.size()) {
      pos = i;  // truncated sequence: one replacement for the whole maximal subpart
      return kReplacementChar;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    const bool ok = k == 0 ? (c >= lo && c <= hi) : is_cont(c);
    if (!ok) {
      pos = i;  // the offending byte starts the next decode
      return kReplacementChar;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  pos = i;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_valid_utf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const uint32_t cp = next_codepoint(s, pos);
    // A genuine U+FFFD in the input is 3 bytes; a replacement for bad bytes never is EF BF BD.
    if (cp == kReplacementChar && s.substr(start, pos - start) != "\xEF\xBF\xBD") return false;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const uint32_t cp = next_codepoint(s, pos);
    if (cp == kReplacementChar)
      append_utf8(out, cp);
    else
      out.append(s.substr(start, pos - start));
  }
  return out;
}

bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(kLetterRanges, kLetterRanges_size, cp);
}

bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(kNumberRanges, kNumberRanges_size, cp);
}

bool is_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return in_ranges(kSpaceRanges, kSpaceRanges_size, cp);
}

}  // namespace engram::tok
