// The `engram` executable: parses the command line and dispatches to a sub-command.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "engram/error.h"

int main(int argc, char** argv) {
  CLI::App app{"engram: a CPU inference engine for language models that remember"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "engram 0.1.0");
  engram::cli::add_inspect_command(app);
  engram::cli::add_quantize_command(app);
  engram::cli::add_tokenize_command(app);
  engram::cli::add_import_tokenizer_command(app);
  engram::cli::add_run_command(app);
  engram::cli::add_bench_command(app);
  engram::cli::add_perplexity_command(app);
  engram::cli::add_chat_command(app);
  engram::cli::add_serve_command(app);
  engram::cli::add_eval_command(app);
  engram::cli::add_demo_command(app);
  engram::cli::add_memory_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and succeed; any other parse error is bad input like the rest:
    // one line naming it, exit code 1.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "engram: error: %s (see --help)\n", e.what());
    return 1;
  } catch (const engram::Error& e) {
    std::fprintf(stderr, "engram: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engram: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
