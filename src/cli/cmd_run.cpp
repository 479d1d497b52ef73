// `engram run`: prompt in, streamed continuation out.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/sampler.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"

namespace engram::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt;
  std::string file;
  int n_predict = 128;
  int threads = 0;
  int64_t n_ctx = 0;
  int n_batch = 512;
  bool no_bos = false;
  bool quiet = false;
  int64_t seed = -1;
  SamplerParams sampling;
  MemoryOptions memory;
};

void run(const RunOptions& o) {
  if (o.prompt.empty() && o.file.empty()) throw Error("run: give -p TEXT, -f FILE or both");
  if (o.n_predict < 0) throw Error(fmt::format("run: -n must be >= 0, got {}", o.n_predict));
  if (o.threads < 0) throw Error(fmt::format("run: -t must be >= 1, got {}", o.threads));
  SamplerParams sp = o.sampling;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  sp.validate();

  // With both, the file is the stream read first and the prompt (a question) follows it.
  const std::string text = o.file.empty()     ? o.prompt
                           : o.prompt.empty() ? read_text_file(o.file)
                                              : read_text_file(o.file) + "\n\n" + o.prompt;
  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  ContextParams cp;
  cp.n_ctx = o.n_ctx;
  cp.n_batch = o.n_batch;
  Context ctx(*model, pool, cp, make_policy(o.memory, *model, o.n_ctx));

  std::vector<int32_t> prompt = tok->encode(text, tok->add_bos() && !o.no_bos, false);
  if (prompt.empty()) throw Error("run: the prompt is empty after tokenization");
  if (static_cast<int64_t>(prompt.size()) > ctx.n_ctx()) {
    throw Error(
        fmt::format("run: the prompt has {} tokens, more than the context of {} "
                    "(use --ctx, or --memory sinks|blocks|episodic)",
                    prompt.size(), ctx.n_ctx()));
  }
  const bool long_prompt = prompt.size() > 4096;  // shown as a progress bar, not echoed
  if (!o.quiet && !long_prompt) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  }

  Sampler sampler(sp);
  for (int32_t t : prompt) sampler.accept(t);
  auto t0 = std::chrono::steady_clock::now();
  prefill(ctx, prompt, !o.quiet && long_prompt);
  const double t_prefill = seconds_since(t0);

  TokenStreamer streamer(*tok);
  int n_gen = 0;
  auto t1 = std::chrono::steady_clock::now();
  while (n_gen < o.n_predict) {
    const int32_t next = sampler.sample(ctx.logits());
    if (tok->is_eog(next)) break;
    sampler.accept(next);
    std::string piece = streamer.push(next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    ++n_gen;
    if (ctx.n_past() >= ctx.n_ctx()) {
      std::fprintf(stderr, "\n[context full at %lld tokens]\n", (long long)ctx.n_past());
      break;
    }
    const int32_t one[1] = {next};
    ctx.eval(one);
  }
  std::string rest = streamer.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  const double t_decode = seconds_since(t1);
  if (!o.quiet) {
    std::fprintf(
        stderr, "\nprompt: %zu tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | seed %llu\n",
        prompt.size(), prompt.size() / t_prefill, n_gen, n_gen > 0 ? n_gen / t_decode : 0.0,
        (unsigned long long)sp.seed);
  }
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  o->model = default_model_path();
  CLI::App* cmd = app.add_subcommand("run", "Generate a continuation of a prompt");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", o->file, "Read the prompt from a file");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--ctx", o->n_ctx, "Context size in tokens (default: the model's trained one)");
  cmd->add_option("--batch", o->n_batch, "Prefill chunk size")->capture_default_str();
  add_sampling_options(cmd, o->sampling, o->seed);
  cmd->add_flag("--no-bos", o->no_bos, "Do not prepend BOS");
  cmd->add_flag("-q,--quiet", o->quiet, "Print only the generated text");
  add_memory_options(cmd, o->memory);
  cmd->callback([o] { run(*o); });
}

}  // namespace engram::cli
