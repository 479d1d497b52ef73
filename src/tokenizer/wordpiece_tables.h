// Unicode data for BERT's basic tokenizer (internal; generated into wordpiece_tables.cpp by
// tools/tokenizer/gen_wordpiece_tables.js).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tokenizer/unicode.h"

namespace engram::tok {

extern const CodepointRange kPunctuationRanges[];  // \p{P}
extern const size_t kPunctuationRanges_size;
extern const CodepointRange kOtherRanges[];  // \p{C}: control, format, unassigned, private use
extern const size_t kOtherRanges_size;
extern const CodepointRange kSpaceSeparatorRanges[];  // \p{Zs}
extern const size_t kSpaceSeparatorRanges_size;
extern const CodepointRange kNonspacingMarkRanges[];  // \p{Mn}
extern const size_t kNonspacingMarkRanges_size;

// A code point whose lowercase differs: one code point, or two (second != 0).
struct LowercaseMapping {
  uint32_t cp, first, second;
};
extern const LowercaseMapping kLowercase[];  // sorted by cp
extern const size_t kLowercase_size;

}  // namespace engram::tok
