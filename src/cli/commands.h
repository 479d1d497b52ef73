// Sub-commands of the `engram` executable. Each add_*_command registers its options and its
// callback on the CLI11 app; the callback throws engram::Error on bad input, which main()
// reports as "engram: error: ..." with exit code 1.
#pragma once

namespace CLI {
class App;
}

namespace engram::cli {

void add_inspect_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_import_tokenizer_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_bench_memory_command(CLI::App& bench);  // `bench memory`, registered by add_bench_command
// `bench grammar`, registered by add_bench_command
void add_bench_grammar_command(CLI::App& bench);
void add_perplexity_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_memory_command(CLI::App& app);
// Sub-commands of `engram eval` registered by add_eval_command.
void add_eval_ppl_command(CLI::App* eval);
void add_eval_segment_command(CLI::App* eval);
void add_eval_kv_command(CLI::App* eval);
void add_eval_agent_memory_command(CLI::App* eval);

}  // namespace engram::cli
