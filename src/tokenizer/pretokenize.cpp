#include "tokenizer/pretokenize.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace engram::tok {

namespace {

// The text as code points; off[i] is the byte offset of cps[i], off[n] the text size.
struct Cps {
  std::vector<uint32_t> cp;
  std::vector<size_t> off;
  size_t n() const { return cp.size(); }
  // Code point at i, or 0 past the end (0 is in none of the classes we test beyond bounds).
  uint32_t at(size_t i) const { return i < cp.size() ? cp[i] : 0; }
};

bool is_other(uint32_t c) {
  return !is_space(c) && !is_letter(c) && !is_number(c);
}
bool is_crlf(uint32_t c) {
  return c == '\r' || c == '\n';
}

uint32_t lower_ascii(uint32_t c) {
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

// 's 't 're 've 'm 'll 'd at i; returns the match length or 0.
size_t match_contraction(const Cps& t, size_t i, bool ignore_case) {
  if (t.at(i) != '\'') return 0;
  auto c = [&](size_t k) { return ignore_case ? lower_ascii(t.at(i + k)) : t.at(i + k); };
  const uint32_t a = c(1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  const uint32_t b = c(2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// End of the maximal run of \s starting at i.
size_t space_run_end(const Cps& t, size_t i) {
  while (i < t.n() && is_space(t.cp[i])) ++i;
  return i;
}

// \s+(?!\S)|\s+ at a whitespace position i: the run, minus its last space when a non-space
// follows (that space then leads the next piece), but never less than one.
size_t match_trailing_space(const Cps& t, size_t i) {
  const size_t j = space_run_end(t, i);
  if (j < t.n() && j - i > 1) return j - 1 - i;
  return j - i;
}

size_t match_gpt2(const Cps& t, size_t i) {
  if (size_t m = match_contraction(t, i, false)) return m;
  const size_t s = (t.at(i) == ' ') ? 1 : 0;  // optional leading space of the next three
  const uint32_t c = t.at(i + s);
  if (i + s < t.n()) {
    size_t j = i + s;
    if (is_letter(c)) {
      while (j < t.n() && is_letter(t.cp[j])) ++j;
      return j - i;
    }
    if (is_number(c)) {
      while (j < t.n() && is_number(t.cp[j])) ++j;
      return j - i;
    }
    if (is_other(c)) {
      while (j < t.n() && is_other(t.cp[j])) ++j;
      return j - i;
    }
  }
  return match_trailing_space(t, i);  // t.cp[i] is whitespace here
}

size_t match_llama3(const Cps& t, size_t i, size_t max_digits) {
  if (size_t m = match_contraction(t, i, true)) return m;
  const uint32_t c = t.cp[i];
  // [^\r\n\p{L}\p{N}]?\p{L}+
  size_t j = i;
  if (!is_letter(c) && !is_number(c) && !is_crlf(c) && is_letter(t.at(i + 1))) j = i + 1;
  if (is_letter(t.at(j)) && j < t.n()) {
    while (j < t.n() && is_letter(t.cp[j])) ++j;
    return j - i;
  }
  // \p{N}{1,max}
  if (is_number(c)) {
    j = i;
    while (j < t.n() && j - i < max_digits && is_number(t.cp[j])) ++j;
    return j - i;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  j = (c == ' ') ? i + 1 : i;
  if (j < t.n() && is_other(t.cp[j])) {
    while (j < t.n() && is_other(t.cp[j])) ++j;
    while (j < t.n() && is_crlf(t.cp[j])) ++j;
    return j - i;
  }
  // \s*[\r\n]+ : the whitespace run up to and including its last CR/LF.
  const size_t run_end = space_run_end(t, i);
  for (size_t k = run_end; k > i; --k) {
    if (is_crlf(t.cp[k - 1])) return k - i;
  }
  return match_trailing_space(t, i);
}

}  // namespace

void pretokenize(PreTokenizer kind, std::string_view text, std::vector<std::string_view>& out) {
  Cps t;
  t.cp.reserve(text.size());
  t.off.reserve(text.size() + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    t.off.push_back(pos);
    t.cp.push_back(next_codepoint(text, pos));
  }
  t.off.push_back(text.size());

  size_t i = 0;
  while (i < t.n()) {
    size_t len = 0;
    switch (kind) {
      case PreTokenizer::Gpt2:
        len = match_gpt2(t, i);
        break;
      case PreTokenizer::Llama3:
        len = match_llama3(t, i, 3);
        break;
      case PreTokenizer::Qwen2:
        len = match_llama3(t, i, 1);
        break;
    }
    if (len == 0) len = 1;  // cannot happen (the classes cover every code point); stay safe
    out.push_back(text.substr(t.off[i], t.off[i + len] - t.off[i]));
    i += len;
  }
}

}  // namespace engram::tok
