#include "grammar/dfa.h"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

#include "engram/error.h"

namespace engram::grammar {

uint32_t Dfa::add_state(bool accepting) {
  const uint32_t id = n_states();
  trans_.resize(trans_.size() + 256, kDead);
  accepting_.push_back(accepting ? 1 : 0);
  return id;
}

void Dfa::trim() {
  const uint32_t n = n_states();
  if (n == 0) return;
  // Reachable from the start.
  std::vector<uint8_t> reach(n, 0);
  std::vector<uint32_t> stack = {0};
  reach[0] = 1;
  while (!stack.empty()) {
    const uint32_t s = stack.back();
    stack.pop_back();
    for (int b = 0; b < 256; ++b) {
      const uint32_t t = next(s, static_cast<uint8_t>(b));
      if (t != kDead && !reach[t]) {
        reach[t] = 1;
        stack.push_back(t);
      }
    }
  }
  // Co-reachable: can reach an accepting state (reverse edges).
  std::vector<std::vector<uint32_t>> rev(n);
  for (uint32_t s = 0; s < n; ++s) {
    if (!reach[s]) continue;
    for (int b = 0; b < 256; ++b) {
      const uint32_t t = next(s, static_cast<uint8_t>(b));
      if (t != kDead && (rev[t].empty() || rev[t].back() != s)) rev[t].push_back(s);
    }
  }
  std::vector<uint8_t> live(n, 0);
  for (uint32_t s = 0; s < n; ++s) {
    if (reach[s] && accepting(s)) {
      live[s] = 1;
      stack.push_back(s);
    }
  }
  while (!stack.empty()) {
    const uint32_t s = stack.back();
    stack.pop_back();
    for (uint32_t p : rev[s]) {
      if (!live[p]) {
        live[p] = 1;
        stack.push_back(p);
      }
    }
  }
  if (!live[0]) {
    trans_.clear();
    accepting_.clear();
    return;
  }
  std::vector<uint32_t> map(n, kDead);
  uint32_t m = 0;
  for (uint32_t s = 0; s < n; ++s) {
    if (live[s]) map[s] = m++;
  }
  std::vector<uint32_t> trans(static_cast<size_t>(m) * 256, kDead);
  std::vector<uint8_t> acc(m);
  for (uint32_t s = 0; s < n; ++s) {
    if (!live[s]) continue;
    acc[map[s]] = accepting_[s];
    for (int b = 0; b < 256; ++b) {
      const uint32_t t = next(s, static_cast<uint8_t>(b));
      trans[map[s] * 256u + b] = t == kDead ? kDead : map[t];
    }
  }
  trans_ = std::move(trans);
  accepting_ = std::move(acc);
}

void Dfa::minimize() {
  const uint32_t n = n_states();
  if (n <= 1) return;
  // Moore's algorithm: refine classes by (class, classes of successors) until stable.
  std::vector<uint32_t> cls(n);
  for (uint32_t s = 0; s < n; ++s) cls[s] = accepting_[s];
  uint32_t n_cls = 0;
  for (;;) {
    std::map<std::vector<uint32_t>, uint32_t> sig_to_cls;
    std::vector<uint32_t> next_cls(n);
    std::vector<uint32_t> sig(257);
    for (uint32_t s = 0; s < n; ++s) {
      sig[0] = cls[s];
      for (int b = 0; b < 256; ++b) {
        const uint32_t t = next(s, static_cast<uint8_t>(b));
        sig[b + 1] = t == kDead ? kDead : cls[t];
      }
      auto [it, inserted] = sig_to_cls.emplace(sig, static_cast<uint32_t>(sig_to_cls.size()));
      next_cls[s] = it->second;
    }
    const uint32_t count = static_cast<uint32_t>(sig_to_cls.size());
    cls = std::move(next_cls);
    if (count == n_cls) break;
    n_cls = count;
  }
  if (n_cls == n) return;
  // Renumber so that the start's class is 0, in order of first appearance.
  std::vector<uint32_t> order(n_cls, kDead);
  uint32_t m = 0;
  order[cls[0]] = m++;
  for (uint32_t s = 0; s < n; ++s) {
    if (order[cls[s]] == kDead) order[cls[s]] = m++;
  }
  std::vector<uint32_t> trans(static_cast<size_t>(m) * 256, kDead);
  std::vector<uint8_t> acc(m);
  for (uint32_t s = 0; s < n; ++s) {
    const uint32_t c = order[cls[s]];
    acc[c] = accepting_[s];
    for (int b = 0; b < 256; ++b) {
      const uint32_t t = next(s, static_cast<uint8_t>(b));
      trans[c * 256u + b] = t == kDead ? kDead : order[cls[t]];
    }
  }
  trans_ = std::move(trans);
  accepting_ = std::move(acc);
}

Dfa Dfa::without_empty() const {
  if (!nullable()) return *this;
  // A fresh, non-accepting start with the old start's edges.
  Dfa d;
  d.add_state(false);
  for (uint32_t s = 0; s < n_states(); ++s) d.add_state(accepting(s));
  for (uint32_t s = 0; s < n_states(); ++s) {
    for (int b = 0; b < 256; ++b) {
      const uint32_t t = next(s, static_cast<uint8_t>(b));
      if (t != kDead) d.set_next(s + 1, static_cast<uint8_t>(b), t + 1);
    }
  }
  for (int b = 0; b < 256; ++b) {
    const uint32_t t = next(0, static_cast<uint8_t>(b));
    if (t != kDead) d.set_next(0, static_cast<uint8_t>(b), t + 1);
  }
  d.trim();
  return d;
}

std::pair<uint64_t, uint64_t> Dfa::fingerprint() const {
  uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull;
  auto mix = [&](uint64_t v) {
    h1 = (h1 ^ v) * 1099511628211ull;
    h2 = (h2 + v + 0x632be59bd9b4e019ull) * 0xff51afd7ed558ccdull;
    h2 ^= h2 >> 29;
  };
  mix(n_states());
  for (uint8_t a : accepting_) mix(a);
  for (uint32_t t : trans_) mix(t);
  return {h1, h2};
}

std::pair<uint64_t, uint64_t> Dfa::rooted_fingerprint(uint32_t state, uint32_t max_states) const {
  std::unordered_map<uint32_t, uint32_t> id;
  std::vector<uint32_t> order = {state};
  id.emplace(state, 0);
  uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;
  auto mix = [&](uint64_t v) {
    h1 = (h1 ^ v) * 1099511628211ull;
    h2 = (h2 + v + 0x632be59bd9b4e019ull) * 0xff51afd7ed558ccdull;
    h2 ^= h2 >> 29;
  };
  for (size_t i = 0; i < order.size(); ++i) {
    const uint32_t s = order[i];
    mix(accepting(s) ? 0xACCull : 0x0ull);
    for (int b = 0; b < 256; ++b) {
      const uint32_t t = next(s, static_cast<uint8_t>(b));
      if (t == kDead) {
        mix(0xDEADull);
        continue;
      }
      auto [it, inserted] = id.emplace(t, static_cast<uint32_t>(order.size()));
      if (inserted) {
        if (order.size() >= max_states) return {0, 0};
        order.push_back(t);
      }
      mix(it->second + 1);
    }
  }
  return {h1, h2};
}

bool Dfa::matches(std::string_view s) const {
  if (empty()) return false;
  uint32_t st = 0;
  for (char c : s) {
    st = next(st, static_cast<uint8_t>(c));
    if (st == kDead) return false;
  }
  return accepting(st);
}

Dfa Dfa::intersect(const Dfa& a, const Dfa& b, uint32_t max_states) {
  Dfa d;
  if (a.empty() || b.empty()) return d;
  std::unordered_map<uint64_t, uint32_t> ids;
  std::deque<std::pair<uint32_t, uint32_t>> queue;
  auto id_of = [&](uint32_t x, uint32_t y) {
    const uint64_t key = (static_cast<uint64_t>(x) << 32) | y;
    auto it = ids.find(key);
    if (it != ids.end()) return it->second;
    if (d.n_states() >= max_states) {
      throw Error("grammar: an intersection of two patterns needs more than " +
                  std::to_string(max_states) + " automaton states");
    }
    const uint32_t id = d.add_state(a.accepting(x) && b.accepting(y));
    ids.emplace(key, id);
    queue.emplace_back(x, y);
    return id;
  };
  id_of(0, 0);
  uint32_t cur = 0;
  while (!queue.empty()) {
    auto [x, y] = queue.front();
    queue.pop_front();
    for (int c = 0; c < 256; ++c) {
      const uint32_t nx = a.next(x, static_cast<uint8_t>(c));
      const uint32_t ny = b.next(y, static_cast<uint8_t>(c));
      if (nx == kDead || ny == kDead) continue;
      d.set_next(cur, static_cast<uint8_t>(c), id_of(nx, ny));
    }
    ++cur;
  }
  d.trim();
  if (d.n_states() <= 4000) d.minimize();
  return d;
}

Dfa Dfa::complement(const Dfa& a) {
  // Complete the automaton with an explicit sink, then flip acceptance.
  Dfa d;
  const uint32_t n = a.n_states();
  for (uint32_t s = 0; s < n; ++s) d.add_state(!a.accepting(s));
  const uint32_t sink = d.add_state(true);
  for (uint32_t s = 0; s <= n; ++s) {
    for (int c = 0; c < 256; ++c) {
      const uint32_t t = s < n ? a.next(s, static_cast<uint8_t>(c)) : kDead;
      d.set_next(s, static_cast<uint8_t>(c), t == kDead ? sink : t);
    }
  }
  d.trim();
  return d;
}

Dfa Dfa::literal(std::string_view s) {
  Dfa d;
  for (size_t i = 0; i <= s.size(); ++i) d.add_state(i == s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    d.set_next(static_cast<uint32_t>(i), static_cast<uint8_t>(s[i]), static_cast<uint32_t>(i + 1));
  }
  return d;
}

}  // namespace engram::grammar
