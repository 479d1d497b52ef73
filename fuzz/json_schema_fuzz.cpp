// Fuzz target: compiling a JSON Schema (fuzz/grammar_fuzz_driver.h says what is checked).
//
// Input: the text to compile.
#include "grammar_fuzz_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz_grammar(data, size, &engram::Grammar::from_json_schema);
}
