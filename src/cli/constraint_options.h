// --json-schema, --grammar and --regex: an output constraint (engram/grammar.h), shared by
// `run` and `chat`.
#pragma once

#include <memory>
#include <string>

namespace CLI {
class App;
}

namespace engram {
class Grammar;
}

namespace engram::cli {

struct ConstraintOptions {
  std::string json_schema;  // a JSON Schema file,
  std::string grammar;      // a GBNF file,
  std::string regex;        // or a regex the whole output matches
};

// Registers the three flags (mutually exclusive) on `cmd`.
void add_constraint_options(CLI::App* cmd, ConstraintOptions& o);

// The constraint the options ask for, compiled, or null. Throws engram::Error naming the file
// and the place in it.
std::shared_ptr<const Grammar> output_grammar(const ConstraintOptions& o);

}  // namespace engram::cli
