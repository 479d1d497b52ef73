// A context-free grammar whose terminals are regular languages (one DFA each).
//
// Front ends (JSON Schema, GBNF, regex) build one of these; finish() checks it and prepares
// what the Earley parser needs. Symbols are int32: >= 0 a nonterminal, < 0 terminal -(t+1).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "grammar/dfa.h"

namespace engram::grammar {

// A terminal: a DFA, optionally with a character counter (JSON strings with minLength /
// maxLength, which as plain DFAs would need a state per count). A counted terminal's lexer
// state packs (count << 8 | DFA state). The count goes up on every edge out of `count_from`
// (the state between characters) into a non-accepting state, i.e. when a character *begins*,
// and a character may not begin once the count is max_count; the accepting states may only be
// entered once it reaches min_count. Counting where a character begins rather than where it
// ends keeps every live lexer state completable: a multi-byte character or an escape is only
// entered when it may be finished (counting at its end let a 4th character's lead byte in
// under maxLength 3, after which nothing, not even the closing quote, was allowed).
struct Terminal {
  Dfa dfa;  // trimmed, never nullable
  std::string name;
  std::pair<uint64_t, uint64_t> fingerprint;
  bool counted = false;
  uint32_t count_from = 1;
  uint32_t min_count = 0;
  uint32_t max_count = kMaxCount;
  static constexpr uint32_t kMaxCount = (1u << 24) - 1;  // also "no bound"

  uint32_t step(uint32_t lex, uint8_t byte) const {
    if (!counted) return dfa.next(lex, byte);
    return counted_step(dfa, count_from, min_count, max_count, lex, byte);
  }
  static uint32_t counted_step(const Dfa& dfa, uint32_t count_from, uint32_t min_count,
                               uint32_t max_count, uint32_t lex, uint8_t byte) {
    const uint32_t sub = lex & 0xFF;
    uint32_t cnt = lex >> 8;
    const uint32_t nx = dfa.next(sub, byte);
    if (nx == Dfa::kDead) return Dfa::kDead;
    const bool ends = dfa.accepting(nx);
    if (sub == count_from && !ends) {
      if (cnt >= max_count) return Dfa::kDead;
      ++cnt;
      // Without an upper bound only "reached min_count" matters: keep the state space finite.
      if (max_count == kMaxCount && cnt > min_count) cnt = min_count;
    }
    if (ends && cnt < min_count) return Dfa::kDead;
    return (cnt << 8) | nx;
  }
  bool accepting(uint32_t lex) const { return dfa.accepting(counted ? (lex & 0xFF) : lex); }
};

struct Rule {
  uint32_t lhs;
  std::vector<int32_t> rhs;
};

struct CfgLimits {
  uint32_t max_rules = 2'000'000;
  uint32_t max_terminals = 500'000;
  uint64_t max_dfa_bytes = 1ull << 30;  // the automata's transition tables together
};

class Cfg {
 public:
  static int32_t term_symbol(uint32_t t) { return -static_cast<int32_t>(t) - 1; }
  static uint32_t term_of(int32_t sym) { return static_cast<uint32_t>(-(sym + 1)); }
  static bool is_terminal(int32_t sym) { return sym < 0; }

  explicit Cfg(CfgLimits limits = {}) : limits_(limits) {}

  uint32_t add_nonterminal(std::string name);
  // A symbol for the language of `dfa`: a terminal, or a nonterminal (t | empty) when the DFA
  // accepts the empty string, or one with no rules for the empty language. Equal languages
  // share one terminal.
  int32_t add_regular(Dfa dfa, const std::string& name);
  // A counted terminal (see Terminal) over `dfa`, which must have fewer than 256 states and
  // must not accept the empty string.
  int32_t add_counted(Dfa dfa, uint32_t count_from, uint32_t min_count, uint32_t max_count,
                      const std::string& name);
  void add_rule(uint32_t lhs, std::vector<int32_t> rhs);

  // Checks and indexes the grammar; throws engram::Error naming the rules when the start
  // symbol generates no string. Rules using symbols that generate nothing are dropped.
  void finish(uint32_t start);

  // After finish():
  uint32_t start_rule() const { return start_rule_; }
  const std::vector<Rule>& rules() const { return rules_; }
  const std::vector<Terminal>& terminals() const { return terminals_; }
  const std::vector<uint32_t>& rules_of(uint32_t nt) const { return rules_by_lhs_[nt]; }
  bool nullable(uint32_t nt) const { return nullable_[nt] != 0; }
  const std::string& name(uint32_t nt) const { return names_[nt]; }
  uint32_t n_nonterminals() const { return static_cast<uint32_t>(names_.size()); }

 private:
  CfgLimits limits_;
  std::vector<std::string> names_;
  std::vector<Rule> rules_;
  std::vector<Terminal> terminals_;
  std::map<std::pair<uint64_t, uint64_t>, int32_t> by_fingerprint_;
  std::vector<std::vector<uint32_t>> rules_by_lhs_;
  std::vector<uint8_t> nullable_;
  uint32_t start_rule_ = 0;
  uint64_t dfa_bytes_ = 0;
};

}  // namespace engram::grammar
