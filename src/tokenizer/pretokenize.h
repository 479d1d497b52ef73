// Pre-tokenizers of byte-level BPE vocabularies (internal): hand-written equivalents of the
// split regexes named by tokenizer.ggml.pre, with JavaScript regex semantics ('gu' flags, as
// transformers.js runs them), since std::regex has no \p{L}.
#pragma once

#include <string_view>
#include <vector>

namespace engram::tok {

enum class PreTokenizer {
  Gpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
           //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Qwen2,   // as Llama3 but \p{N} (one digit per piece)
};

// Splits valid UTF-8 text into consecutive pieces covering all of it (views into `text`).
void pretokenize(PreTokenizer kind, std::string_view text, std::vector<std::string_view>& out);

}  // namespace engram::tok
