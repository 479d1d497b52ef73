// Filler text for the needle tasks (passkey, multi-key): tokenized once, handed out from a
// random offset and wrapped around, so prompts of any length draw on one text.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace engram {

class Tokenizer;

class Filler {
 public:
  // Throws engram::Error if the text has fewer than `min_tokens` tokens; `task` names the
  // caller in that message.
  Filler(const Tokenizer& tok, const std::string& text, const char* task, int64_t min_tokens = 64);

  // A random starting offset.
  size_t random_offset(std::mt19937_64& rng) const;
  // Appends n filler tokens from offset `off` (wrapping around) and advances it.
  void append(std::vector<int32_t>& seq, int64_t n, size_t& off) const;

 private:
  std::vector<int32_t> tokens_;
};

}  // namespace engram
