// An Earley parser over a Cfg whose terminals are DFAs, stepped one byte at a time.
//
// Why Earley and not a pushdown automaton: JSON Schema front ends produce ambiguous grammars
// (anyOf branches that share prefixes, keys that may be a listed property or an additional
// one, whitespace on either side of a separator) and GBNF users write left recursion; Earley
// parses any CFG, keeps every live alternative in one item set, and handles left recursion
// (lists are emitted left-recursive, which Earley runs in constant items per byte). Its cost
// is per byte and item; the token masks avoid most of it (see matcher.cpp).
//
// An item whose next symbol is a terminal carries its lexer state (the DFA state after the
// lexeme's bytes so far), so lexing is part of the parse: a lexeme may end wherever its DFA
// accepts, and every possibility stays alive. The chart is a stack of item sets, one per
// byte: push_byte() adds one, pop() removes the last, which is how the mask computation
// explores token bytes and backs out.
#pragma once

#include <cstdint>
#include <vector>

#include "grammar/cfg.h"

namespace engram::grammar {

struct EarleyItem {
  uint32_t rule;
  uint16_t dot;
  // Set when the item was made by a completion or prediction after the last committed
  // position (a lexeme began inside the bytes being probed); scanning copies it.
  uint16_t fresh;
  uint32_t origin;  // index of the set where the rule began
  uint32_t lex;     // DFA state of the terminal after the dot (0 = its start)
};

class EarleyParser {
 public:
  explicit EarleyParser(const Cfg& g);

  // Scans one byte into a new set; returns false (and adds nothing) when no item survives.
  // fresh_only: scan only the fresh items (see EarleyItem::fresh) -- what the mask
  // computation needs below a lexeme boundary inside a token, where the tokens that continue
  // an older lexeme are already in the precomputed masks.
  bool push_byte(uint8_t b, bool fresh_only = false);
  void pop();
  size_t n_sets() const { return set_start_.size(); }
  // The grammar's start symbol has been completed over all bytes so far.
  bool accepting() const;
  // Whether the last set holds an item made after the last commit() (see EarleyItem::fresh).
  bool top_has_fresh() const { return top_fresh_.back() != 0; }
  // Marks the last set as the new committed position.
  void commit();

  // Items of the last set.
  const EarleyItem* top_begin() const { return items_.data() + set_start_.back(); }
  const EarleyItem* top_end() const { return items_.data() + items_.size(); }
  // The terminal after the item's dot, or -1.
  int32_t next_terminal(const EarleyItem& it) const;
  // Bytes held by the chart (its items), for memory caps.
  size_t bytes() const { return items_.capacity() * sizeof(EarleyItem); }

 private:
  void add(const EarleyItem& it);
  void closure(size_t from);
  void rehash(size_t capacity);

  const Cfg& g_;
  std::vector<EarleyItem> items_;
  std::vector<uint32_t> set_start_;
  std::vector<uint8_t> top_fresh_;  // per set: holds a fresh item
  // Open-addressed index of the set under construction: item positions, valid when the
  // stamp matches.
  std::vector<uint32_t> slot_item_;
  std::vector<uint32_t> slot_stamp_;
  uint32_t stamp_ = 0;
  size_t building_count_ = 0;
  size_t building_base_ = 0;
};

}  // namespace engram::grammar
