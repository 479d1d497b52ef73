// `engram run`: prompt in, streamed continuation out.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "chat/stop_strings.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint_options.h"
#include "cli/memory_options.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/model.h"
#include "engram/sampler.h"
#include "engram/session.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "tokenizer/file_encoder.h"
#include "util/trailing_space.h"

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
  std::vector<std::string> stop;
  MemoryOptions memory;
  std::string save_session;      // write the stream's state here at the end
  std::string load_session;      // continue the stream saved here
  ConstraintOptions constraint;  // --json-schema | --grammar | --regex
};

// Files larger than this are streamed: read, encoded and evaluated piece by piece under a
// progress bar, so their length is bounded by the memory policy, not by RAM for the text.
constexpr uint64_t kStreamBytes = 64 * 1024;

// The question that follows a file (-f FILE -p QUESTION) or a resumed session, as the text
// after it: it is evaluated as its own query block, so that memory policies retrieve for what
// it asks (not for a chunk mixing it with the file). Empty without both.
//
// Joined by one space, not a blank line: engram-tiny saw a newline at every document end in
// training, and a question after "\n\n" reads to it as a new document. On a saved 1M-token
// stream with a pass key 30% deep, the question after "\n\n" was answered "1960.", after a
// space with the key (README, "Memory beyond RAM, and saved sessions").
std::string question_text(const RunOptions& o) {
  if (o.prompt.empty() || (o.file.empty() && o.load_session.empty())) return {};
  return " " + o.prompt;
}

// Prefills the file piece by piece; returns the tokens. Evaluates whole multiples of the
// context's chunk and carries the rest into the next piece, so that only the file's end forms a
// short block (which the memory policy takes for a question). When nothing follows the file
// (`ends_prompt`), that block is the file's last line (prompt_tail): a file may end with its
// question.
int64_t stream_file(Context& ctx, const Tokenizer& tok, Sampler& sampler, const RunOptions& o,
                    bool ends_prompt) {
  // A resumed session's stream already began (with its BOS). Trailing whitespace is left out,
  // as for a short file (see without_trailing_space).
  FileEncoder enc(tok, o.file, tok.add_bos() && !o.no_bos && ctx.n_past() == 0, size_t(1) << 20,
                  /*trim_end=*/true);
  const bool progress = !o.quiet;
  const size_t slice = stream_slice(ctx, 2048);
  const auto t0 = std::chrono::steady_clock::now();
  const double mib = 1.0 / (1 << 20);
  int64_t n = 0;
  std::vector<int32_t> ids, pending;  // pending[done, end): encoded, not yet evaluated
  size_t done = 0;
  auto feed = [&](size_t count) {
    const std::span<const int32_t> part(pending.data() + done, count);
    ctx.eval(part);
    sampler.accept(part);
    n += static_cast<int64_t>(count);
    done += count;
    if (progress) {
      // Bytes read are estimated in proportion to the tokens evaluated of those encoded.
      const double total = double(enc.bytes_total());
      const double left = double(pending.size() - done);
      const double read = double(enc.bytes_done()) * double(n) / (double(n) + left);
      draw_progress(ctx, fmt::format("{:.1f}/{:.1f} MiB, {} tokens", read * mib, total * mib, n),
                    total > 0 ? std::min(read / total, 1.0) : 1.0, n, seconds_since(t0));
    }
  };
  while (enc.next(ids)) {
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(done));
    done = 0;
    pending.insert(pending.end(), ids.begin(), ids.end());
    // Two slices stay pending, so that the end can be cut where prompt_tail says.
    while (pending.size() - done >= 2 * slice) feed(slice);
  }
  const std::span<const int32_t> rest(pending.data() + done, pending.size() - done);
  const size_t tail =
      ends_prompt ? prompt_tail(ctx, rest, tok.encode("\n", false, false).back()) : 0;
  while (pending.size() - done > tail + slice) feed(slice);
  if (pending.size() - done > tail) feed(pending.size() - done - tail);
  if (tail > 0) feed(tail);
  if (progress) std::fputc('\n', stderr);
  return n;
}

void run(const RunOptions& o, const CLI::App& cmd) {
  if (o.prompt.empty() && o.file.empty() && o.load_session.empty()) {
    throw Error("run: give -p TEXT, -f FILE or both (or --load-session FILE)");
  }
  if (!o.load_session.empty()) {
    refuse_memory_flags(cmd, "--load-session continues with the policy the session was saved with");
    if (cmd.count("--ctx") > 0) {
      throw Error(
          "--ctx cannot be used here: --load-session continues with the saved context size");
    }
  }
  if (o.n_predict < 0) throw Error(fmt::format("run: -n must be >= 0, got {}", o.n_predict));
  if (o.threads < 0) throw Error(fmt::format("run: -t must be >= 1, got {}", o.threads));
  if (!o.save_session.empty()) check_session_path(o.save_session);  // not after a long read
  SamplerParams sp = o.sampling;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  sp.validate();
  const auto constraint = output_grammar(o.constraint);  // bad schemas fail before the model loads

  std::error_code size_error;
  const bool stream = !o.file.empty() && std::filesystem::is_regular_file(o.file, size_error) &&
                      std::filesystem::file_size(o.file, size_error) > kStreamBytes;
  // With both, the file is read first and the prompt (a question) follows it as its own block;
  // so does a prompt after a resumed session.
  const std::string text = stream           ? std::string()
                           : o.file.empty() ? (o.load_session.empty() ? o.prompt : std::string())
                                            : without_trailing_space(read_text_file(o.file));
  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  ContextParams cp;
  cp.n_ctx = o.n_ctx;
  cp.n_batch = o.n_batch;
  MemoryParams memory = memory_params(o.memory, o.n_ctx);
  std::unique_ptr<Context> owned;
  Sampler sampler(sp);
  if (constraint) {
    sampler.set_grammar(
        std::make_shared<GrammarMatcher>(constraint, std::make_shared<GrammarVocab>(*tok)));
  }
  if (o.load_session.empty()) {
    owned = std::make_unique<Context>(*model, pool, cp,
                                      make_memory_policy(memory, model_shape(model->config())));
  } else {
    const auto t = std::chrono::steady_clock::now();
    LoadedSession loaded = load_session(o.load_session, *model, pool, cp, o.memory.params.kv_dir,
                                        o.memory.params.kv_cache_mib);
    memory = loaded.memory;
    owned = std::move(loaded.ctx);
    // Repetition penalties look back over the last tokens the stream holds.
    sampler.accept(owned->tokens());
    if (!o.quiet) {
      std::fprintf(
          stderr, "session: %lld tokens, %s memory, %lld units, %s (+ %s on disk), %.1f s\n",
          (long long)owned->n_past(), owned->policy().name().c_str(),
          (long long)owned->memory_stats().units, format_bytes(owned->memory_bytes()).c_str(),
          format_bytes(owned->memory_stats().bytes_on_disk).c_str(), seconds_since(t));
    }
  }
  Context& ctx = *owned;

  int64_t n_prompt = 0;
  auto t0 = std::chrono::steady_clock::now();
  const std::string question_str = question_text(o);
  const std::vector<int32_t> question = tok->encode(question_str, false, false);
  if (stream) {
    n_prompt = stream_file(ctx, *tok, sampler, o, question.empty());
  } else if (!text.empty()) {
    std::vector<int32_t> prompt =
        tok->encode(text, tok->add_bos() && !o.no_bos && ctx.n_past() == 0, false);
    if (prompt.empty()) throw Error("run: the prompt is empty after tokenization");
    const size_t total = prompt.size() + question.size() + size_t(ctx.n_past());
    if (static_cast<int64_t>(total) > ctx.n_ctx()) {
      throw Error(
          fmt::format("run: the prompt has {} tokens, more than the context of {} "
                      "(use --ctx, or --memory sinks|blocks|episodic)",
                      total, ctx.n_ctx()));
    }
    const bool long_prompt = prompt.size() > 4096;  // shown as a progress bar, not echoed
    if (!o.quiet && !long_prompt) {
      std::fputs(text.c_str(), stdout);
      std::fputs(question_str.c_str(), stdout);
      std::fflush(stdout);
    }
    sampler.accept(prompt);
    t0 = std::chrono::steady_clock::now();
    if (question.empty()) {
      prefill_prompt(ctx, prompt, tok->encode("\n", false, false).back(), !o.quiet && long_prompt);
    } else {
      prefill(ctx, prompt, !o.quiet && long_prompt);
    }
    n_prompt = static_cast<int64_t>(prompt.size());
  }
  if (!question.empty()) {
    ctx.eval(question);
    sampler.accept(question);
    n_prompt += static_cast<int64_t>(question.size());
  }
  if (n_prompt == 0 && ctx.n_past() == 0)
    throw Error("run: the prompt is empty after tokenization");
  const double t_prefill = seconds_since(t0);

  TokenStreamer streamer(*tok);
  chat::StopStrings stops(o.stop);
  int n_gen = 0;
  int32_t unread = -1;  // the last token shown, not yet evaluated
  auto t1 = std::chrono::steady_clock::now();
  while (n_gen < o.n_predict) {
    if (sampler.grammar() && sampler.grammar()->finished()) break;  // the output is complete
    const int32_t next = sampler.sample(ctx.logits());
    if (tok->is_eog(next)) break;
    sampler.accept(next);
    unread = next;
    const std::string shown = stops.push(streamer.push(next));
    std::fwrite(shown.data(), 1, shown.size(), stdout);
    std::fflush(stdout);
    ++n_gen;
    if (stops.stopped()) break;
    if (ctx.n_past() >= ctx.n_ctx()) {
      std::fprintf(stderr, "\n[context full at %lld tokens]\n", (long long)ctx.n_past());
      break;
    }
    const int32_t one[1] = {next};
    ctx.eval(one);
    unread = -1;
  }
  std::string rest = stops.push(streamer.flush());
  rest += stops.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  const double t_decode = seconds_since(t1);
  if (!o.save_session.empty()) {
    const auto t = std::chrono::steady_clock::now();
    // The session holds everything shown, the last generated token too.
    if (unread >= 0 && ctx.n_past() < ctx.n_ctx()) {
      const int32_t one[1] = {unread};
      ctx.eval(one);
    }
    save_session(ctx, memory, o.save_session);
    if (!o.quiet) {
      std::error_code ec;
      std::fprintf(stderr, "saved session '%s': %lld tokens, %s, %.1f s\n", o.save_session.c_str(),
                   (long long)ctx.n_past(),
                   format_bytes(std::filesystem::file_size(o.save_session, ec)).c_str(),
                   seconds_since(t));
    }
  }
  if (!o.quiet) {
    std::fprintf(
        stderr,
        "\nprompt: %lld tokens, %.1f tok/s | generated: %d tokens, %.1f tok/s | seed %llu\n",
        (long long)n_prompt, n_prompt / t_prefill, n_gen, n_gen > 0 ? n_gen / t_decode : 0.0,
        (unsigned long long)sp.seed);
  }
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  o->model = default_model_path();
  CLI::App* cmd = app.add_subcommand("run", "Generate a continuation of a prompt");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-p,--prompt", o->prompt,
                  "Prompt text; with -f or --load-session, a question read after the text "
                  "(joined by one space)");
  cmd->add_option("-f,--file", o->file,
                  "Read the prompt from a file (its trailing whitespace left out)");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--ctx", o->n_ctx, "Context size in tokens (default: the model's trained one)");
  cmd->add_option("--batch", o->n_batch, "Prefill chunk size")->capture_default_str();
  add_sampling_options(cmd, o->sampling, o->seed);
  cmd->add_option("--stop", o->stop, "Stop generating at this text, not shown (repeatable)");
  add_constraint_options(cmd, o->constraint);
  cmd->add_flag("--no-bos", o->no_bos, "Do not prepend BOS");
  cmd->add_flag("-q,--quiet", o->quiet, "Print only the generated text");
  cmd->add_option("--save-session", o->save_session,
                  "Save the stream (tokens, K/V, memory) to this file at the end");
  cmd->add_option("--load-session", o->load_session,
                  "Continue a saved stream: -f reads more text into it, -p asks a question "
                  "(memory flags come from the session, except --kv-dir/--kv-cache)");
  add_memory_options(cmd, o->memory);
  cmd->callback([o, cmd] { run(*o, *cmd); });
}

}  // namespace engram::cli
