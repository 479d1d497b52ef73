// Regular expressions -> DFAs over bytes.
//
// The syntax is the ECMAScript subset JSON Schema `pattern`s use: literals, `.`, classes
// (`[a-z]`, `[^...]`, `\d \w \s` and their negations, `\uXXXX`, `\xHH`), groups `( )`,
// `(?: )`, `(?<name> )`, alternation, `* + ?`, `{m}`, `{m,}`, `{m,n}` (a lazy `?` suffix is
// accepted: it changes which match a search reports, never which strings match), and `^`/`$`
// at the edges. Backreferences, lookaround and `\b` are a compile error naming the offset.
//
// A regex matches characters (Unicode code points). How a character becomes bytes is the
// Encoding: plain UTF-8, or the text of a JSON string body (a `"` is written `\"`, a control
// character `\n` or `\u00XX`, ...), so a `pattern` constrains the JSON text a model writes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grammar/dfa.h"

namespace engram::grammar {

// A set of code points as sorted, disjoint, non-adjacent closed ranges.
struct CharSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;

  static CharSet of(uint32_t lo, uint32_t hi);
  static CharSet any();  // every scalar value (no surrogates)
  void add(uint32_t lo, uint32_t hi);
  void add(const CharSet& o);
  CharSet negated() const;  // within the scalar values
  bool contains(uint32_t c) const;
  bool empty() const { return ranges.empty(); }
};

// The regex syntax tree; groups leave no node of their own.
struct RegexNode {
  enum class Kind { Empty, Set, Bytes, Concat, Alt, Repeat, AnchorStart, AnchorEnd };
  Kind kind = Kind::Empty;
  CharSet set;                                   // Set
  std::string bytes;                             // Bytes: written as-is in any encoding
  std::vector<std::shared_ptr<RegexNode>> kids;  // Concat, Alt, Repeat (one kid)
  uint32_t min = 0, max = 0;                     // Repeat; max == kUnbounded for no bound
  static constexpr uint32_t kUnbounded = UINT32_MAX;
};
using RegexPtr = std::shared_ptr<RegexNode>;

RegexPtr re_empty();
RegexPtr re_set(CharSet s);
RegexPtr re_char(uint32_t c);
RegexPtr re_literal(std::string_view utf8);  // a sequence of the text's code points
RegexPtr re_bytes(std::string_view bytes);   // raw bytes, not re-encoded (JSON quotes)
RegexPtr re_concat(std::vector<RegexPtr> kids);
RegexPtr re_alt(std::vector<RegexPtr> kids);
RegexPtr re_repeat(RegexPtr kid, uint32_t min, uint32_t max);

// Parses an ECMAScript pattern; throws engram::Error("<where>: regex ... at offset N: ...").
RegexPtr parse_regex(std::string_view pattern, const std::string& where);

// Removes `^`/`$` at the edges. search = true gives JSON Schema's semantics (a pattern matches
// anywhere in the string unless anchored), false a whole-string match. Anchors elsewhere are an
// error naming `where`.
RegexPtr anchor(const RegexPtr& re, bool search, const std::string& where);

enum class Encoding { Utf8, JsonString };

struct RegexLimits {
  uint32_t max_dfa_states = 20000;
  uint32_t max_nfa_states = 400000;
};

// Compiles to a trimmed, minimized DFA over bytes. Throws engram::Error naming `where` when
// the automaton would exceed the limits.
Dfa compile_regex(const RegexPtr& re, Encoding enc, const std::string& where,
                  const RegexLimits& limits = {});

// Appends the UTF-8 bytes of a code point.
void append_utf8(std::string& out, uint32_t c);

}  // namespace engram::grammar
