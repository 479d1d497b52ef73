// The vocabulary as a byte trie, and the per-lexer-state token masks computed over it.
//
// Nodes are stored in preorder, so a subtree is the index range [node, subtree_end) and a
// node's first child is node + 1. For a terminal's DFA state s, StateMask holds
//   - the tokens whose whole text keeps the DFA alive from s (the lexeme continues), as a
//     bitset, or as a list when there are few;
//   - the frontier: trie nodes where the DFA accepts and the node has children, i.e. where a
//     token may end this lexeme and go on into the next one. Only those are resolved against
//     the parser at run time.
// Masks are computed when a state is first met and cached by the DFA's fingerprint, so every
// grammar over this vocabulary shares them (JSON strings, numbers, whitespace ...).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grammar/cfg.h"
#include "grammar/dfa.h"

namespace engram::grammar {

struct StateMask {
  std::vector<uint64_t> dense;     // n_vocab bits, or empty when `sparse` is used
  std::vector<int32_t> sparse;     // token ids
  std::vector<uint32_t> frontier;  // trie nodes, preorder
  size_t bytes() const {
    return dense.capacity() * 8 + sparse.capacity() * 4 + frontier.capacity() * 4 + 64;
  }
};

// Masks of one DFA, by state, filled lazily.
struct DfaMasks {
  std::vector<std::unique_ptr<StateMask>> states;
};

class TokenTrie {
 public:
  struct Node {
    uint32_t subtree_end;
    uint32_t parent;
    int32_t token;  // -1: no token ends here
    uint8_t byte;
    uint8_t depth_clamped;
  };

  // pieces[i] = the bytes token i writes ("" = never allowed: control and empty tokens).
  explicit TokenTrie(const std::vector<std::string>& pieces);

  const std::vector<Node>& nodes() const { return nodes_; }
  int32_t n_vocab() const { return n_vocab_; }
  // Other ids with the same bytes as the token at a node (rare), by node.
  const std::vector<std::pair<uint32_t, int32_t>>& duplicates() const { return duplicates_; }
  // The node where token `id` ends, or 0 (root) for tokens not in the trie.
  uint32_t node_of(int32_t id) const { return node_of_[id]; }
  const std::string& piece(int32_t id) const { return pieces_[id]; }

  // Longest token text in bytes: a token holds at most this many characters.
  uint32_t max_piece_bytes() const { return max_piece_; }

  // The cached masks for a lexer (computed state by state on demand), keyed by `fp`.
  // Thread-safe.
  std::shared_ptr<DfaMasks> masks_for(uint32_t n_states, std::pair<uint64_t, uint64_t> fp);
  // The mask of lexer state `lex` of `term`; computes it on first use. For a counted terminal
  // `term` carries the (capped) bounds left and `lex` is a bare DFA state. Thread-safe.
  const StateMask& state_mask(DfaMasks& m, const Terminal& term, uint32_t slot, uint32_t lex);

  size_t cache_bytes() const { return cache_bytes_; }

 private:
  StateMask compute(const Terminal& term, uint32_t lex) const;

  std::vector<Node> nodes_;
  std::vector<uint32_t> node_of_;
  std::vector<std::pair<uint32_t, int32_t>> duplicates_;
  std::vector<std::string> pieces_;
  int32_t n_vocab_ = 0;
  uint32_t max_piece_ = 0;

  struct FpHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& p) const { return p.first ^ p.second; }
  };
  std::mutex mu_;
  std::unordered_map<std::pair<uint64_t, uint64_t>, std::shared_ptr<DfaMasks>, FpHash> cache_;
  size_t cache_bytes_ = 0;
  static constexpr size_t kCacheBudget = size_t{768} << 20;
};

}  // namespace engram::grammar
