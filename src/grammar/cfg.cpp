#include "grammar/cfg.h"

#include <algorithm>

#include "engram/error.h"

namespace engram::grammar {

uint32_t Cfg::add_nonterminal(std::string name) {
  names_.push_back(std::move(name));
  return static_cast<uint32_t>(names_.size() - 1);
}

int32_t Cfg::add_regular(Dfa dfa, const std::string& name) {
  dfa.trim();
  const auto fp = dfa.fingerprint();
  auto it = by_fingerprint_.find(fp);
  if (it != by_fingerprint_.end()) return it->second;
  int32_t sym;
  if (dfa.empty()) {
    sym = static_cast<int32_t>(add_nonterminal(name + " (empty language)"));
  } else {
    const bool nullable = dfa.nullable();
    Dfa body = nullable ? dfa.without_empty() : std::move(dfa);
    int32_t t_sym = 0;
    const bool has_body = !body.empty();
    if (has_body) {
      if (terminals_.size() >= limits_.max_terminals) {
        throw Error("grammar: more than " + std::to_string(limits_.max_terminals) + " terminals");
      }
      dfa_bytes_ += static_cast<uint64_t>(body.n_states()) * 1024;
      if (dfa_bytes_ > limits_.max_dfa_bytes) {
        throw Error("grammar: the terminals' automata need more than " +
                    std::to_string(limits_.max_dfa_bytes >> 20) + " MiB (at " + name + ")");
      }
      const auto body_fp = body.fingerprint();
      terminals_.push_back({std::move(body), name, body_fp});
      t_sym = term_symbol(static_cast<uint32_t>(terminals_.size() - 1));
    }
    if (!nullable) {
      sym = t_sym;
    } else {
      const uint32_t nt = add_nonterminal(name + "?");
      add_rule(nt, {});
      if (has_body) add_rule(nt, {t_sym});
      sym = static_cast<int32_t>(nt);
    }
  }
  by_fingerprint_.emplace(fp, sym);
  return sym;
}

int32_t Cfg::add_counted(Dfa dfa, uint32_t count_from, uint32_t min_count, uint32_t max_count,
                         const std::string& name) {
  if (dfa.n_states() >= 256 || dfa.nullable()) {
    throw Error("grammar: internal: counted terminal " + name + " has a bad automaton");
  }
  auto fp = dfa.fingerprint();
  max_count = std::min(max_count, Terminal::kMaxCount);
  if (min_count > max_count) {
    const uint32_t nt = add_nonterminal(name + " (empty language)");
    return static_cast<int32_t>(nt);
  }
  fp.first ^= (static_cast<uint64_t>(min_count) << 32 | max_count) * 0x9E3779B97F4A7C15ull;
  fp.second += (static_cast<uint64_t>(count_from) + 1) * 0xC2B2AE3D27D4EB4Full;
  auto it = by_fingerprint_.find(fp);
  if (it != by_fingerprint_.end()) return it->second;
  Terminal t;
  t.dfa = std::move(dfa);
  t.name = name;
  t.fingerprint = fp;
  t.counted = true;
  t.count_from = count_from;
  t.min_count = min_count;
  t.max_count = max_count;
  terminals_.push_back(std::move(t));
  const int32_t sym = term_symbol(static_cast<uint32_t>(terminals_.size() - 1));
  by_fingerprint_.emplace(fp, sym);
  return sym;
}

void Cfg::add_rule(uint32_t lhs, std::vector<int32_t> rhs) {
  if (rules_.size() >= limits_.max_rules) {
    throw Error("grammar: more than " + std::to_string(limits_.max_rules) + " rules");
  }
  rules_.push_back({lhs, std::move(rhs)});
}

void Cfg::finish(uint32_t start) {
  // Augmented start S' -> start, so acceptance is one completed item.
  const uint32_t s0 = add_nonterminal("<start>");
  add_rule(s0, {static_cast<int32_t>(start)});
  const uint32_t n = n_nonterminals();

  // Productive nonterminals: fixpoint over rules whose symbols are all productive.
  std::vector<uint8_t> productive(n, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (const Rule& r : rules_) {
      if (productive[r.lhs]) continue;
      bool ok = true;
      for (int32_t s : r.rhs) {
        if (!is_terminal(s) && !productive[s]) {
          ok = false;
          break;
        }
      }
      if (ok) {
        productive[r.lhs] = 1;
        changed = true;
      }
    }
  }
  if (!productive[s0]) {
    throw Error("grammar: the language is empty (rule '" + names_[start] +
                "' never produces a finite string)");
  }
  std::vector<Rule> kept;
  kept.reserve(rules_.size());
  // The augmented rule first, so its index is fixed.
  for (const Rule& r : rules_) {
    if (r.lhs != s0) continue;
    kept.push_back(r);
  }
  for (const Rule& r : rules_) {
    if (r.lhs == s0) continue;
    bool ok = true;
    for (int32_t s : r.rhs) {
      if (!is_terminal(s) && !productive[s]) ok = false;
    }
    if (ok) kept.push_back(r);
  }
  rules_ = std::move(kept);
  start_rule_ = 0;

  rules_by_lhs_.assign(n, {});
  for (uint32_t i = 0; i < rules_.size(); ++i) rules_by_lhs_[rules_[i].lhs].push_back(i);

  nullable_.assign(n, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (const Rule& r : rules_) {
      if (nullable_[r.lhs]) continue;
      bool all = true;
      for (int32_t s : r.rhs) {
        if (is_terminal(s) || !nullable_[s]) {
          all = false;
          break;
        }
      }
      if (all) {
        nullable_[r.lhs] = 1;
        changed = true;
      }
    }
  }
}

}  // namespace engram::grammar
