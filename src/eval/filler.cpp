#include "eval/filler.h"

#include <fmt/format.h>

#include "engram/error.h"
#include "engram/tokenizer.h"

namespace engram {

Filler::Filler(const Tokenizer& tok, const std::string& text, const char* task, int64_t min_tokens)
    : tokens_(tok.encode(text, false, false)) {
  if (static_cast<int64_t>(tokens_.size()) < min_tokens) {
    throw Error(fmt::format("{}: the filler text is too short ({} tokens, want >= {})", task,
                            tokens_.size(), min_tokens));
  }
}

size_t Filler::random_offset(std::mt19937_64& rng) const {
  return std::uniform_int_distribution<size_t>(0, tokens_.size() - 1)(rng);
}

void Filler::append(std::vector<int32_t>& seq, int64_t n, size_t& off) const {
  for (int64_t i = 0; i < n; ++i) seq.push_back(tokens_[off++ % tokens_.size()]);
}

}  // namespace engram
