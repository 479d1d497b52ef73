#include "grammar/earley.h"

namespace engram::grammar {

namespace {

inline uint64_t item_hash(const EarleyItem& it) {
  uint64_t h = (static_cast<uint64_t>(it.rule) << 16) ^ it.dot;
  h = h * 0x9E3779B97F4A7C15ull ^ it.origin;
  h = h * 0xC2B2AE3D27D4EB4Full ^ it.lex;
  h ^= h >> 31;
  return h * 0x165667B19E3779F9ull;
}

inline bool same(const EarleyItem& a, const EarleyItem& b) {
  return a.rule == b.rule && a.dot == b.dot && a.origin == b.origin && a.lex == b.lex;
}

}  // namespace

EarleyParser::EarleyParser(const Cfg& g) : g_(g) {
  rehash(64);
  set_start_.push_back(0);
  top_fresh_.push_back(0);
  ++stamp_;
  building_base_ = 0;
  building_count_ = 0;
  add({g_.start_rule(), 0, 1, 0, 0});
  closure(0);
  commit();
}

int32_t EarleyParser::next_terminal(const EarleyItem& it) const {
  const Rule& r = g_.rules()[it.rule];
  if (it.dot >= r.rhs.size()) return -1;
  const int32_t s = r.rhs[it.dot];
  return Cfg::is_terminal(s) ? static_cast<int32_t>(Cfg::term_of(s)) : -1;
}

void EarleyParser::rehash(size_t capacity) {
  slot_item_.assign(capacity, 0);
  slot_stamp_.assign(capacity, 0);
  ++stamp_;
  const size_t mask = capacity - 1;
  for (size_t i = building_base_; i < items_.size(); ++i) {
    size_t h = item_hash(items_[i]) & mask;
    while (slot_stamp_[h] == stamp_) h = (h + 1) & mask;
    slot_stamp_[h] = stamp_;
    slot_item_[h] = static_cast<uint32_t>(i);
  }
}

void EarleyParser::add(const EarleyItem& it) {
  if ((building_count_ + 1) * 2 > slot_item_.size()) rehash(slot_item_.size() * 2);
  const size_t mask = slot_item_.size() - 1;
  size_t h = item_hash(it) & mask;
  while (slot_stamp_[h] == stamp_) {
    EarleyItem& other = items_[slot_item_[h]];
    if (same(other, it)) {
      other.fresh |= it.fresh;
      return;
    }
    h = (h + 1) & mask;
  }
  slot_stamp_[h] = stamp_;
  slot_item_[h] = static_cast<uint32_t>(items_.size());
  items_.push_back(it);
  ++building_count_;
}

void EarleyParser::closure(size_t from) {
  const uint32_t cur = static_cast<uint32_t>(set_start_.size() - 1);
  const auto& rules = g_.rules();
  for (size_t i = from; i < items_.size(); ++i) {
    const EarleyItem it = items_[i];
    const Rule& r = rules[it.rule];
    if (it.dot == r.rhs.size()) {
      // Completion; an empty completion in this set was handled at prediction (nullable).
      if (it.origin == cur) continue;
      const size_t b = set_start_[it.origin], e = set_start_[it.origin + 1];
      const int32_t lhs = static_cast<int32_t>(r.lhs);
      for (size_t j = b; j < e; ++j) {
        const EarleyItem w = items_[j];
        const Rule& wr = rules[w.rule];
        if (w.dot < wr.rhs.size() && wr.rhs[w.dot] == lhs) {
          add({w.rule, static_cast<uint16_t>(w.dot + 1), 1, w.origin, 0});
        }
      }
      continue;
    }
    const int32_t s = r.rhs[it.dot];
    if (Cfg::is_terminal(s)) continue;
    const uint32_t nt = static_cast<uint32_t>(s);
    for (uint32_t ri : g_.rules_of(nt)) add({ri, 0, 1, cur, 0});
    if (g_.nullable(nt)) add({it.rule, static_cast<uint16_t>(it.dot + 1), 1, it.origin, 0});
  }
}

bool EarleyParser::push_byte(uint8_t byte, bool fresh_only) {
  const size_t prev_b = set_start_.back(), prev_e = items_.size();
  set_start_.push_back(static_cast<uint32_t>(prev_e));
  ++stamp_;
  building_base_ = prev_e;
  building_count_ = 0;
  const auto& rules = g_.rules();
  const auto& terms = g_.terminals();
  for (size_t i = prev_b; i < prev_e; ++i) {
    const EarleyItem it = items_[i];
    if (fresh_only && !it.fresh) continue;
    const Rule& r = rules[it.rule];
    if (it.dot >= r.rhs.size() || !Cfg::is_terminal(r.rhs[it.dot])) continue;
    const Terminal& term = terms[Cfg::term_of(r.rhs[it.dot])];
    const uint32_t nx = term.step(it.lex, byte);
    if (nx == Dfa::kDead) continue;
    add({it.rule, it.dot, it.fresh, it.origin, nx});
    if (term.accepting(nx)) add({it.rule, static_cast<uint16_t>(it.dot + 1), 1, it.origin, 0});
  }
  if (items_.size() == prev_e) {
    set_start_.pop_back();
    return false;
  }
  closure(prev_e);
  uint8_t fresh = 0;
  for (size_t i = prev_e; i < items_.size(); ++i) fresh |= items_[i].fresh;
  top_fresh_.push_back(fresh);
  return true;
}

void EarleyParser::pop() {
  items_.resize(set_start_.back());
  set_start_.pop_back();
  top_fresh_.pop_back();
}

bool EarleyParser::accepting() const {
  for (const EarleyItem* p = top_begin(); p != top_end(); ++p) {
    if (p->rule == g_.start_rule() && p->dot == 1 && p->origin == 0) return true;
  }
  return false;
}

void EarleyParser::commit() {
  for (size_t i = set_start_.back(); i < items_.size(); ++i) items_[i].fresh = 0;
  top_fresh_.back() = 0;
}

}  // namespace engram::grammar
