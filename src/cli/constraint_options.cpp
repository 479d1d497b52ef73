#include "cli/constraint_options.h"

#include <CLI/CLI.hpp>

#include "cli/common.h"
#include "engram/grammar.h"

namespace engram::cli {

void add_constraint_options(CLI::App* cmd, ConstraintOptions& o) {
  auto* js = cmd->add_option("--json-schema", o.json_schema,
                             "Constrain the output to JSON valid against this JSON Schema file");
  auto* gb = cmd->add_option("--grammar", o.grammar,
                             "Constrain the output to this GBNF grammar file (llama.cpp format)");
  auto* rx = cmd->add_option("--regex", o.regex, "Constrain the whole output to match this regex");
  js->excludes(gb)->excludes(rx);
  gb->excludes(rx);
}

std::shared_ptr<const Grammar> output_grammar(const ConstraintOptions& o) {
  if (!o.json_schema.empty()) return Grammar::from_json_schema(read_text_file(o.json_schema));
  if (!o.grammar.empty()) return Grammar::from_gbnf(read_text_file(o.grammar));
  if (!o.regex.empty()) return Grammar::from_regex(o.regex);
  return nullptr;
}

}  // namespace engram::cli
