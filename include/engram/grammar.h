// Structured generation: constrain what a model may write to a JSON Schema, a GBNF grammar
// (llama.cpp's format) or a regular expression.
//
// Three objects, each built once and shared:
//   Grammar         a compiled constraint (immutable, thread-safe to share);
//   GrammarVocab    a tokenizer's vocabulary as a byte trie plus the cache of per-lexer-state
//                   token masks (one per tokenizer; share it between requests and threads);
//   GrammarMatcher  one generation's position in the grammar (not thread-safe).
//
// Per step: fill_mask() (or allows() for a single sampled token), then accept(token).
// EOS/EOG tokens are allowed exactly when the output so far is complete (accepting()).
//
//   auto vocab = std::make_shared<engram::GrammarVocab>(tokenizer);
//   auto g = engram::Grammar::from_json_schema(schema_text);
//   engram::GrammarMatcher m(g, vocab);
//   m.fill_mask(bits);            // bit i of bits[i / 64]: token i may come next
//   m.accept(token);              // false: the token is refused, the state is unchanged
//
// Compile errors throw engram::Error naming the place: the JSON pointer and keyword of a
// schema, the line and column of a GBNF file, the offset in a regex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace engram {

class Tokenizer;

struct GrammarOptions {
  // JSON: no whitespace between tokens (otherwise any JSON whitespace is allowed where the
  // JSON grammar allows it, e.g. the ", " and ": " of Python's json.dumps).
  bool compact_json = false;
  // Caps on compilation (a hostile or absurd input is an error, not a hang).
  double max_compile_seconds = 10.0;
  uint64_t max_compile_bytes = uint64_t{1} << 30;
};

class Grammar {
 public:
  // JSON Schema (draft 4 to 2020-12 keywords; see docs/ARCHITECTURE.md for the list).
  static std::shared_ptr<const Grammar> from_json_schema(std::string_view schema_json,
                                                         const GrammarOptions& opt = {});
  // Any JSON value whose top level is an object (OpenAI's response_format json_object).
  static std::shared_ptr<const Grammar> any_json_object(const GrammarOptions& opt = {});
  // llama.cpp GBNF text; the start rule is `root`.
  static std::shared_ptr<const Grammar> from_gbnf(std::string_view text,
                                                  const GrammarOptions& opt = {});
  // The whole output must match the ECMAScript regex (implicitly anchored at both ends).
  static std::shared_ptr<const Grammar> from_regex(std::string_view pattern,
                                                   const GrammarOptions& opt = {});

  struct Impl;
  explicit Grammar(std::unique_ptr<Impl> impl);
  ~Grammar();
  const Impl& impl() const { return *impl_; }
  size_t n_terminals() const;
  size_t n_rules() const;

 private:
  std::unique_ptr<Impl> impl_;
};

class GrammarVocab {
 public:
  explicit GrammarVocab(const Tokenizer& tok);
  // For tests: token i writes pieces[i] ("" = never allowed); eog lists end-of-generation ids.
  GrammarVocab(const std::vector<std::string>& pieces, const std::vector<int32_t>& eog);
  ~GrammarVocab();
  int32_t n_vocab() const;

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class GrammarMatcher {
 public:
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<GrammarVocab> vocab);
  ~GrammarMatcher();
  GrammarMatcher(const GrammarMatcher&) = delete;
  GrammarMatcher& operator=(const GrammarMatcher&) = delete;

  // bits gets (n_vocab + 63) / 64 words; bit i set = token i may come next.
  void fill_mask(std::vector<uint64_t>& bits);
  // Whether one token may come next (cheaper than a whole mask).
  bool allows(int32_t token);
  // Advances past the token; returns false and changes nothing when it is refused.
  // An EOG token is accepted only in an accepting state and ends the matcher.
  bool accept(int32_t token);
  // The output so far is a complete sentence of the grammar (EOG may come next).
  bool accepting() const;
  // Accepting with nothing else allowed, or an EOG token was accepted: generation should stop.
  bool finished();
  // Bytes written so far.
  size_t n_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace engram
