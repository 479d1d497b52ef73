// What the three grammar fuzz targets share: the input is compiled by one front end, which
// either works or throws engram::Error within the compile caps; a compiled grammar then runs
// over the input's own bytes as tokens (a byte vocabulary), and every mask must agree with the
// single-token check.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engram/error.h"
#include "engram/grammar.h"

using GrammarCompiler = std::shared_ptr<const engram::Grammar> (*)(std::string_view,
                                                                   const engram::GrammarOptions&);

inline int fuzz_grammar(const uint8_t* data, size_t size, GrammarCompiler compile) {
  static std::shared_ptr<engram::GrammarVocab> vocab = [] {
    std::vector<std::string> pieces;
    for (int b = 0; b < 256; ++b) pieces.push_back(std::string(1, static_cast<char>(b)));
    pieces.push_back("ab");
    pieces.push_back("\": ");
    pieces.push_back("");  // end of generation
    return std::make_shared<engram::GrammarVocab>(pieces, std::vector<int32_t>{258});
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  engram::GrammarOptions opt;
  opt.max_compile_seconds = 5.0;
  std::shared_ptr<const engram::Grammar> g;
  try {
    g = compile(text, opt);
  } catch (const engram::Error&) {
    return 0;
  }
  engram::GrammarMatcher m(g, vocab);
  std::vector<uint64_t> bits;
  for (size_t i = 0; i < size && i < 48; ++i) {
    m.fill_mask(bits);
    for (int32_t t : {0, 34, 97, 123, 256, 257, 258}) {
      const bool in_mask = (bits[t >> 6] >> (t & 63)) & 1;
      if (in_mask != m.allows(t)) {
        std::fprintf(stderr, "mask and allows() disagree on token %d\n", t);
        std::abort();
      }
    }
    if (!m.accept(data[i])) break;
  }
  return 0;
}
