// `engram import-tokenizer DIR -o OUT.gguf`: a Hugging Face tokenizer directory as a
// vocab-only GGUF, so real vocabularies can be used and tested without model weights.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "engram/gguf.h"
#include "engram/tokenizer.h"

namespace engram::cli {

void add_import_tokenizer_command(CLI::App& app) {
  struct Options {
    std::string dir, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "import-tokenizer", "Convert a Hugging Face tokenizer.json directory to a vocab-only GGUF");
  cmd->add_option("dir", o->dir, "Directory with tokenizer.json (+ tokenizer_config.json)")
      ->required();
  cmd->add_option("-o,--output", o->out, "GGUF file to write")->required();
  cmd->callback([o]() {
    GgufWriter w;
    import_hf_tokenizer(o->dir, w);
    // Check the result loads before claiming success.
    const std::vector<uint8_t> bytes = w.to_bytes();
    auto file = GgufFile::parse(bytes, o->out);
    auto tok = Tokenizer::from_gguf(*file);
    w.write(o->out);
    fmt::print("wrote {}: {} tokens, model {}{}\n", o->out, tok->n_vocab(),
               tok->model() == TokenizerModel::Llama ? "llama" : "gpt2",
               tok->pre().empty() ? "" : fmt::format(", pre {}", tok->pre()));
  });
}

}  // namespace engram::cli
