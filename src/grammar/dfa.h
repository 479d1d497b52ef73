// A deterministic automaton over bytes: the form every terminal of a grammar takes.
//
// States are numbered from 0 (the start); kDead means "no string with this prefix is in the
// language". Every state a Dfa keeps can still reach an accepting state (trim() removes the
// others), which is what makes a parser over these terminals prefix-correct: a live lexer
// state always has a completion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace engram::grammar {

class Dfa {
 public:
  static constexpr uint32_t kDead = UINT32_MAX;

  Dfa() = default;
  uint32_t n_states() const { return static_cast<uint32_t>(accepting_.size()); }
  uint32_t next(uint32_t state, uint8_t byte) const { return trans_[state * 256u + byte]; }
  bool accepting(uint32_t state) const { return accepting_[state] != 0; }
  bool empty() const { return accepting_.empty(); }  // the empty language
  // Whether the start state accepts, i.e. the empty string is in the language.
  bool nullable() const { return !empty() && accepting(0); }

  uint32_t add_state(bool accepting);
  void set_next(uint32_t state, uint8_t byte, uint32_t to) { trans_[state * 256u + byte] = to; }
  void set_accepting(uint32_t state, bool a) { accepting_[state] = a ? 1 : 0; }

  // Drops states that cannot reach an accepting state or are unreachable, renumbering the rest
  // (start stays 0). The empty language becomes a Dfa with no states.
  void trim();
  // Merges equivalent states (Moore refinement); keeps the language.
  void minimize();
  // The same language without the empty string.
  Dfa without_empty() const;
  // A 128-bit fingerprint of the (trimmed, minimized) table, for caches keyed by language.
  std::pair<uint64_t, uint64_t> fingerprint() const;
  bool matches(std::string_view s) const;
  // A fingerprint of the language accepted from `state` (the reachable part, numbered in
  // breadth-first order), or {0, 0} when more than `max_states` states are reachable.
  std::pair<uint64_t, uint64_t> rooted_fingerprint(uint32_t state, uint32_t max_states) const;

  static Dfa intersect(const Dfa& a, const Dfa& b, uint32_t max_states);
  // Strings over all bytes not in the language.
  static Dfa complement(const Dfa& a);
  static Dfa literal(std::string_view s);

 private:
  std::vector<uint32_t> trans_;     // [n_states * 256]
  std::vector<uint8_t> accepting_;  // [n_states]
};

}  // namespace engram::grammar
