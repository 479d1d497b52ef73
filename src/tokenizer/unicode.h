// UTF-8 and Unicode helpers for the tokenizers (internal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace engram::tok {

struct CodepointRange {
  uint32_t lo, hi;  // inclusive
};

// Generated tables (unicode_tables.cpp).
extern const CodepointRange kLetterRanges[];
extern const size_t kLetterRanges_size;
extern const CodepointRange kNumberRanges[];
extern const size_t kNumberRanges_size;
extern const CodepointRange kSpaceRanges[];
extern const size_t kSpaceRanges_size;

constexpr uint32_t kReplacementChar = 0xFFFD;

// Whether cp lies in one of the n sorted ranges r.
bool in_ranges(const CodepointRange* r, size_t n, uint32_t cp);

// Decodes one code point at `pos` and advances it. Ill-formed input yields U+FFFD for each
// maximal subpart (the WHATWG/TextDecoder rule), so we see exactly what a JS string built
// from the same bytes would hold. pos must be < s.size().
uint32_t next_codepoint(std::string_view s, size_t& pos);

void append_utf8(std::string& out, uint32_t cp);

// True when s is well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

// s with every ill-formed subsequence replaced by U+FFFD (see next_codepoint).
std::string sanitize_utf8(std::string_view s);

// Length of the UTF-8 sequence announced by a lead byte (1 for stray bytes).
size_t utf8_seq_len(unsigned char lead);

// JavaScript regex classes: \p{L}, \p{N}, \s.
bool is_letter(uint32_t cp);
bool is_number(uint32_t cp);
bool is_space(uint32_t cp);

}  // namespace engram::tok
