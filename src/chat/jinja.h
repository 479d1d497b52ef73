// A small interpreter for the Jinja subset that chat templates use.
//
// The reference is @huggingface/jinja (what transformers.js renders chat templates with), and
// where it differs from Python Jinja we follow it, because acceptance is byte-identical output
// to it: trim_blocks and lstrip_blocks are on, booleans print as "true"/"false", str.strip()
// and friends ignore their argument and strip whitespace, `==` compares like JavaScript.
//
// Anything outside the subset (an unknown statement, filter, test or method) raises
// engram::Error naming the construct and its line:column in the template source.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>

namespace engram::chat::jinja {

struct Program;

class Template {
 public:
  // Lexes and parses; throws engram::Error on a syntax error or unsupported statement.
  explicit Template(std::string source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `vars` is a JSON object (ordered: mappings keep their key order) whose members become the
  // template's variables (messages, bos_token, add_generation_prompt, ...). Throws engram::Error on
  // evaluation errors, including raise_exception() from the template itself.
  std::string render(const nlohmann::ordered_json& vars) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::unique_ptr<Program> program_;
};

}  // namespace engram::chat::jinja
