#include "grammar/token_trie.h"

#include <algorithm>

#include "engram/error.h"

namespace engram::grammar {

TokenTrie::TokenTrie(const std::vector<std::string>& pieces)
    : pieces_(pieces), n_vocab_(static_cast<int32_t>(pieces.size())) {
  std::vector<int32_t> order;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    if (!pieces[i].empty()) order.push_back(i);
    max_piece_ = std::max<uint32_t>(max_piece_, static_cast<uint32_t>(pieces[i].size()));
    if (pieces[i].size() > 255) {
      throw Error("grammar: token " + std::to_string(i) + " is longer than 255 bytes");
    }
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return pieces[a] != pieces[b] ? pieces[a] < pieces[b] : a < b;
  });
  node_of_.assign(n_vocab_, 0);
  nodes_.push_back({0, 0, -1, 0, 0});
  std::vector<uint32_t> path = {0};  // path[d] = node at depth d
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = pieces[id];
    size_t lcp = 0;
    if (prev) {
      while (lcp < s.size() && lcp < prev->size() && (*prev)[lcp] == s[lcp]) ++lcp;
    }
    while (path.size() > lcp + 1) {
      nodes_[path.back()].subtree_end = static_cast<uint32_t>(nodes_.size());
      path.pop_back();
    }
    for (size_t k = lcp; k < s.size(); ++k) {
      const auto idx = static_cast<uint32_t>(nodes_.size());
      nodes_.push_back({0, path.back(), -1, static_cast<uint8_t>(s[k]),
                        static_cast<uint8_t>(std::min<size_t>(k + 1, 255))});
      path.push_back(idx);
    }
    Node& end = nodes_[path.back()];
    if (end.token < 0) {
      end.token = id;
    } else {
      duplicates_.emplace_back(path.back(), id);
    }
    node_of_[id] = path.back();
    prev = &s;
  }
  while (!path.empty()) {
    nodes_[path.back()].subtree_end = static_cast<uint32_t>(nodes_.size());
    path.pop_back();
  }
}

std::shared_ptr<DfaMasks> TokenTrie::masks_for(uint32_t n_states,
                                               std::pair<uint64_t, uint64_t> fp) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cache_.find(fp);
  if (it != cache_.end()) return it->second;
  if (cache_bytes_ > kCacheBudget) {
    // Grammars in use keep their own references; the rest is recomputed on demand.
    cache_.clear();
    cache_bytes_ = 0;
  }
  auto m = std::make_shared<DfaMasks>();
  m->states.resize(n_states);
  cache_bytes_ += n_states * sizeof(void*);
  cache_.emplace(fp, m);
  return m;
}

const StateMask& TokenTrie::state_mask(DfaMasks& m, const Terminal& term, uint32_t slot,
                                       uint32_t lex) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (m.states[slot]) return *m.states[slot];
  }
  auto sm = std::make_unique<StateMask>(compute(term, lex));
  std::lock_guard<std::mutex> lock(mu_);
  if (!m.states[slot]) {
    cache_bytes_ += sm->bytes();
    m.states[slot] = std::move(sm);
  }
  return *m.states[slot];
}

StateMask TokenTrie::compute(const Terminal& term, uint32_t state) const {
  StateMask out;
  std::vector<int32_t> ids;
  // One pass over the preorder array with the lexer state per depth; a dead node skips its
  // whole subtree. Sequential memory access: about a nanosecond or two per live node.
  uint32_t st[256];
  st[0] = state;
  const uint32_t n = static_cast<uint32_t>(nodes_.size());
  for (uint32_t c = 1; c < n;) {
    const Node& node = nodes_[c];
    const uint32_t nx = term.step(st[node.depth_clamped - 1], node.byte);
    if (nx == Dfa::kDead) {
      c = node.subtree_end;
      continue;
    }
    st[node.depth_clamped] = nx;
    if (node.token >= 0) ids.push_back(node.token);
    if (node.subtree_end > c + 1 && term.accepting(nx)) out.frontier.push_back(c);
    ++c;
  }
  if (!duplicates_.empty() && !ids.empty()) {
    std::vector<int32_t> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    for (auto [node, id] : duplicates_) {
      if (std::binary_search(sorted.begin(), sorted.end(), nodes_[node].token)) ids.push_back(id);
    }
  }
  if (ids.size() * 32 > static_cast<size_t>(n_vocab_)) {
    out.dense.assign((n_vocab_ + 63) / 64, 0);
    for (int32_t id : ids) out.dense[id >> 6] |= uint64_t{1} << (id & 63);
  } else {
    std::sort(ids.begin(), ids.end());
    out.sparse = std::move(ids);
  }
  return out;
}

}  // namespace engram::grammar
