// What engram::Grammar and engram::GrammarVocab hold.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engram/grammar.h"
#include "grammar/cfg.h"
#include "grammar/token_trie.h"

namespace engram {

struct Grammar::Impl {
  grammar::Cfg cfg;
  // Per vocabulary, per terminal and DFA state: the cached masks of that lexer state, found by
  // the language the state accepts (so equal states of different grammars share them).
  mutable std::mutex mask_mu;
  mutable std::map<const void*, std::vector<std::vector<std::shared_ptr<grammar::DfaMasks>>>>
      mask_tables;
};

struct GrammarVocab::Impl {
  std::unique_ptr<grammar::TokenTrie> trie;
  std::vector<int32_t> eog;
};

namespace grammar {

// Throws engram::Error once a compilation has run longer than its cap.
class CompileClock {
 public:
  explicit CompileClock(double max_seconds)
      : start_(std::chrono::steady_clock::now()), max_seconds_(max_seconds) {}
  void check(const std::string& where) const;

 private:
  std::chrono::steady_clock::time_point start_;
  double max_seconds_;
};

// Front ends: each builds a finished Cfg.
void build_json_schema(std::string_view schema, const GrammarOptions& opt, Cfg& out);
void build_any_json_object(const GrammarOptions& opt, Cfg& out);
void build_gbnf(std::string_view text, const GrammarOptions& opt, Cfg& out);
void build_regex(std::string_view pattern, const GrammarOptions& opt, Cfg& out);

}  // namespace grammar
}  // namespace engram
