// GrammarMatcher: the token mask of one step.
//
// mask = union over the lexer states (terminal, DFA state) of the current item set of their
// precomputed masks (tokens that stay inside the lexeme), plus the tokens that end a lexeme
// and go on into the next one. Those start at frontier nodes of the trie (where a lexeme may
// end); from each, the Earley parser is stepped byte by byte down the subtree, and only while
// a lexeme begun inside the token is alive (EarleyItem::fresh) -- everything else is already
// in the precomputed masks.
#include <algorithm>
#include <map>
#include <tuple>

#include "engram/error.h"
#include "engram/tokenizer.h"
#include "grammar/earley.h"
#include "grammar/grammar_impl.h"

namespace engram {

using grammar::Cfg;
using grammar::DfaMasks;
using grammar::EarleyParser;
using grammar::StateMask;
using grammar::TokenTrie;

void grammar::CompileClock::check(const std::string& where) const {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (s > max_seconds_) {
    throw Error("grammar: compilation took longer than " + std::to_string(max_seconds_) +
                " s (at " + where + ")");
  }
}

// ---- Grammar ----

Grammar::Grammar(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Grammar::~Grammar() = default;
size_t Grammar::n_terminals() const {
  return impl_->cfg.terminals().size();
}
size_t Grammar::n_rules() const {
  return impl_->cfg.rules().size();
}

std::shared_ptr<const Grammar> Grammar::from_json_schema(std::string_view schema_json,
                                                         const GrammarOptions& opt) {
  auto impl = std::make_unique<Impl>();
  grammar::build_json_schema(schema_json, opt, impl->cfg);
  return std::make_shared<const Grammar>(std::move(impl));
}

std::shared_ptr<const Grammar> Grammar::any_json_object(const GrammarOptions& opt) {
  auto impl = std::make_unique<Impl>();
  grammar::build_any_json_object(opt, impl->cfg);
  return std::make_shared<const Grammar>(std::move(impl));
}

std::shared_ptr<const Grammar> Grammar::from_gbnf(std::string_view text,
                                                  const GrammarOptions& opt) {
  auto impl = std::make_unique<Impl>();
  grammar::build_gbnf(text, opt, impl->cfg);
  return std::make_shared<const Grammar>(std::move(impl));
}

std::shared_ptr<const Grammar> Grammar::from_regex(std::string_view pattern,
                                                   const GrammarOptions& opt) {
  auto impl = std::make_unique<Impl>();
  grammar::build_regex(pattern, opt, impl->cfg);
  return std::make_shared<const Grammar>(std::move(impl));
}

// ---- GrammarVocab ----

GrammarVocab::GrammarVocab(const Tokenizer& tok) : impl_(std::make_unique<Impl>()) {
  std::vector<std::string> pieces(tok.n_vocab());
  for (int32_t i = 0; i < tok.n_vocab(); ++i) {
    if (tok.is_eog(i)) impl_->eog.push_back(i);
    const TokenType t = tok.token_type(i);
    if (tok.is_control(i) || t == TokenType::Control || t == TokenType::Unused ||
        t == TokenType::Unknown) {
      continue;
    }
    pieces[i] = tok.token_to_piece(i, false);
  }
  impl_->trie = std::make_unique<TokenTrie>(pieces);
}

GrammarVocab::GrammarVocab(const std::vector<std::string>& pieces, const std::vector<int32_t>& eog)
    : impl_(std::make_unique<Impl>()) {
  for (int32_t id : eog) {
    if (id < 0 || id >= static_cast<int32_t>(pieces.size())) {
      throw Error("GrammarVocab: end-of-generation id " + std::to_string(id) + " out of range");
    }
  }
  impl_->eog = eog;
  std::vector<std::string> p = pieces;
  for (int32_t id : eog) p[id].clear();
  impl_->trie = std::make_unique<TokenTrie>(p);
}

GrammarVocab::~GrammarVocab() = default;
int32_t GrammarVocab::n_vocab() const {
  return impl_->trie->n_vocab();
}

// ---- GrammarMatcher ----

struct GrammarMatcher::Impl {
  std::shared_ptr<const Grammar> grammar;
  std::shared_ptr<GrammarVocab> vocab;
  const Cfg& cfg;
  TokenTrie& trie;
  EarleyParser parser;
  std::vector<std::vector<std::shared_ptr<DfaMasks>>>* table =
      nullptr;  // the grammar's, for this vocabulary
  // Counted terminals: masks per (terminal, capped bounds left), and the bounded copies.
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>,
           std::pair<std::shared_ptr<DfaMasks>, grammar::Terminal>>
      counted;
  std::vector<uint32_t> visited;  // per trie node: walk stamp
  uint32_t walk = 0;
  bool ended = false;
  size_t n_bytes = 0;
  std::vector<uint64_t> lex_states;  // scratch: (terminal << 32 | state)
  std::vector<uint32_t> frontier;    // scratch
  std::vector<uint32_t> path;        // trie nodes pushed onto the parser
  std::vector<uint32_t> chain;       // scratch
  uint64_t* out = nullptr;

  Impl(std::shared_ptr<const Grammar> g, std::shared_ptr<GrammarVocab> v)
      : grammar(std::move(g)),
        vocab(std::move(v)),
        cfg(grammar->impl().cfg),
        trie(*vocab->impl().trie),
        parser(cfg) {}

  bool is_eog(int32_t token) const {
    const auto& e = vocab->impl().eog;
    return std::find(e.begin(), e.end(), token) != e.end();
  }

  void set_token(uint32_t node) {
    const auto& n = trie.nodes()[node];
    if (n.token < 0) return;
    out[n.token >> 6] |= uint64_t{1} << (n.token & 63);
    if (!trie.duplicates().empty()) {
      for (auto [dn, id] : trie.duplicates()) {
        if (dn == node) out[id >> 6] |= uint64_t{1} << (id & 63);
      }
    }
  }

  // Explores the children of `node` (already pushed) while a lexeme begun in this token lives.
  // Only the fresh items are scanned: whatever continues an older lexeme is in the
  // precomputed masks, and where an older lexeme ends further down (another frontier node)
  // walk_frontier() starts again with every item (so nodes here are not marked visited).
  void explore(uint32_t node) {
    const auto& nodes = trie.nodes();
    const uint32_t end = nodes[node].subtree_end;
    for (uint32_t c = node + 1; c < end; c = nodes[c].subtree_end) {
      if (!parser.push_byte(nodes[c].byte, true)) continue;
      set_token(c);
      if (nodes[c].subtree_end > c + 1) explore(c);
      parser.pop();
    }
  }

  void fill(std::vector<uint64_t>& bits) {
    const int32_t n_vocab = trie.n_vocab();
    bits.assign((n_vocab + 63) / 64, 0);
    out = bits.data();
    if (ended) return;
    // The lexer states of the current set.
    lex_states.clear();
    for (const auto* it = parser.top_begin(); it != parser.top_end(); ++it) {
      const int32_t t = parser.next_terminal(*it);
      if (t >= 0) lex_states.push_back((static_cast<uint64_t>(t) << 32) | it->lex);
    }
    std::sort(lex_states.begin(), lex_states.end());
    lex_states.erase(std::unique(lex_states.begin(), lex_states.end()), lex_states.end());
    frontier.clear();
    for (uint64_t ls : lex_states) {
      const uint32_t t = static_cast<uint32_t>(ls >> 32), st = static_cast<uint32_t>(ls);
      const StateMask& sm = state_mask(t, st);
      if (!sm.dense.empty()) {
        for (size_t w = 0; w < sm.dense.size(); ++w) out[w] |= sm.dense[w];
      } else {
        for (int32_t id : sm.sparse) out[id >> 6] |= uint64_t{1} << (id & 63);
      }
      frontier.insert(frontier.end(), sm.frontier.begin(), sm.frontier.end());
    }
    std::sort(frontier.begin(), frontier.end());
    frontier.erase(std::unique(frontier.begin(), frontier.end()), frontier.end());
    if (!frontier.empty()) walk_frontier();
    if (parser.accepting()) {
      for (int32_t id : vocab->impl().eog) out[id >> 6] |= uint64_t{1} << (id & 63);
    }
  }

  const StateMask& state_mask(uint32_t t, uint32_t lex) {
    const auto& term = cfg.terminals()[t];
    if (!term.counted) {
      if (!table) {
        const auto& g = grammar->impl();
        std::lock_guard<std::mutex> lock(g.mask_mu);
        auto& tab = g.mask_tables[&trie];
        if (tab.empty()) tab.resize(cfg.terminals().size());
        table = &tab;
      }
      std::shared_ptr<DfaMasks> dm;
      {
        std::lock_guard<std::mutex> lock(grammar->impl().mask_mu);
        auto& per_state = (*table)[t];
        if (per_state.empty()) per_state.resize(term.dfa.n_states());
        dm = per_state[lex];
      }
      if (!dm) {
        auto fp = term.dfa.rooted_fingerprint(lex, 512);
        if (fp.first == 0 && fp.second == 0) {
          fp = term.fingerprint;
          fp.first ^= (static_cast<uint64_t>(lex) + 1) * 0x9E3779B97F4A7C15ull;
          fp.second += lex;
        }
        dm = trie.masks_for(1, fp);
        std::lock_guard<std::mutex> lock(grammar->impl().mask_mu);
        (*table)[t][lex] = dm;
      }
      return trie.state_mask(*dm, term, 0, lex);
    }
    // A token holds at most max_piece_bytes characters, so bounds beyond that give the same
    // mask: cap them, and share the masks of every count with the same capped bounds.
    const uint32_t cap = trie.max_piece_bytes() + 1;
    const uint32_t cnt = lex >> 8, sub = lex & 0xFF;
    const uint32_t left = term.max_count == grammar::Terminal::kMaxCount
                              ? grammar::Terminal::kMaxCount
                              : std::min(term.max_count - cnt, cap);
    const uint32_t need = std::min(term.min_count > cnt ? term.min_count - cnt : 0, cap);
    auto key = std::make_tuple(t, left, need);
    auto it = counted.find(key);
    if (it == counted.end()) {
      grammar::Terminal bounded;
      bounded.dfa = term.dfa;
      bounded.counted = true;
      bounded.count_from = term.count_from;
      bounded.min_count = need;
      bounded.max_count = left;
      auto fp = term.fingerprint;
      fp.first ^= (static_cast<uint64_t>(left) << 32 | need) * 0xD6E8FEB86659FD93ull;
      fp.second ^= 0xA5A5A5A5ull + left * 31ull + need;
      bounded.fingerprint = fp;
      auto dm = trie.masks_for(256, fp);
      it = counted.emplace(key, std::make_pair(std::move(dm), std::move(bounded))).first;
    }
    return trie.state_mask(*it->second.first, it->second.second, sub, sub);
  }

  void walk_frontier() {
    const auto& nodes = trie.nodes();
    if (visited.size() != nodes.size()) visited.assign(nodes.size(), 0);
    if (++walk == 0) {
      std::fill(visited.begin(), visited.end(), 0);
      walk = 1;
    }
    path.clear();
    for (uint32_t n : frontier) {
      if (visited[n] == walk) continue;
      chain.clear();
      for (uint32_t x = n; x != 0; x = nodes[x].parent) chain.push_back(x);
      std::reverse(chain.begin(), chain.end());
      size_t k = 0;
      while (k < path.size() && k < chain.size() && path[k] == chain[k]) ++k;
      while (path.size() > k) {
        parser.pop();
        path.pop_back();
      }
      bool alive = true;
      for (size_t i = k; i < chain.size(); ++i) {
        if (!parser.push_byte(nodes[chain[i]].byte)) {
          alive = false;
          break;
        }
        path.push_back(chain[i]);
      }
      if (!alive) continue;
      visited[n] = walk;
      explore(n);
    }
    while (!path.empty()) {
      parser.pop();
      path.pop_back();
    }
  }

  bool push_piece(const std::string& piece, size_t& pushed) {
    pushed = 0;
    for (char c : piece) {
      if (!parser.push_byte(static_cast<uint8_t>(c))) return false;
      ++pushed;
    }
    return true;
  }
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar,
                               std::shared_ptr<GrammarVocab> vocab) {
  if (!grammar || !vocab) throw Error("GrammarMatcher: a grammar and a vocabulary are needed");
  impl_ = std::make_unique<Impl>(std::move(grammar), std::move(vocab));
}

GrammarMatcher::~GrammarMatcher() = default;

void GrammarMatcher::fill_mask(std::vector<uint64_t>& bits) {
  impl_->fill(bits);
}

bool GrammarMatcher::allows(int32_t token) {
  Impl& m = *impl_;
  if (m.ended || token < 0 || token >= m.trie.n_vocab()) return false;
  if (m.is_eog(token)) return m.parser.accepting();
  const std::string& piece = m.trie.piece(token);
  if (piece.empty()) return false;
  size_t pushed = 0;
  const bool ok = m.push_piece(piece, pushed);
  for (size_t i = 0; i < pushed; ++i) m.parser.pop();
  return ok;
}

bool GrammarMatcher::accept(int32_t token) {
  Impl& m = *impl_;
  if (m.ended || token < 0 || token >= m.trie.n_vocab()) return false;
  if (m.is_eog(token)) {
    if (!m.parser.accepting()) return false;
    m.ended = true;
    return true;
  }
  const std::string& piece = m.trie.piece(token);
  if (piece.empty()) return false;
  size_t pushed = 0;
  if (!m.push_piece(piece, pushed)) {
    for (size_t i = 0; i < pushed; ++i) m.parser.pop();
    return false;
  }
  m.parser.commit();
  m.n_bytes += piece.size();
  return true;
}

bool GrammarMatcher::accepting() const {
  return !impl_->ended && impl_->parser.accepting();
}

bool GrammarMatcher::finished() {
  Impl& m = *impl_;
  if (m.ended) return true;
  if (!m.parser.accepting()) return false;
  for (const auto* it = m.parser.top_begin(); it != m.parser.top_end(); ++it) {
    const int32_t t = m.parser.next_terminal(*it);
    if (t < 0) continue;
    // step(), not the bare DFA: a counted terminal's lexer state packs its count.
    const auto& term = m.cfg.terminals()[t];
    for (int b = 0; b < 256; ++b) {
      if (term.step(it->lex, static_cast<uint8_t>(b)) != grammar::Dfa::kDead) return false;
    }
  }
  return true;
}

size_t GrammarMatcher::n_bytes() const {
  return impl_->n_bytes;
}

}  // namespace engram
