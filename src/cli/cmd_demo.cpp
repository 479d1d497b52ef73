// `engram demo`: what the project is for, in a few minutes. The shipped model reads a long
// stream of held-out Brown text with a pass key hidden in it -- far more than the 512 tokens it
// was trained on -- once per memory policy (by default `sinks`, then `episodic`), and answers
// "What is the pass key?". Prints each answer, whether the needle was in what the model attended
// to when it read the question, the events formed, memory held and speed.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "cli/needle_reading.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "eval/passkey_task.h"

namespace engram::cli {
namespace {

struct DemoOptions {
  std::string model;
  std::string filler;
  int64_t length = 131072;
  double depth = 0.3;
  std::vector<std::string> policies = {"sinks", "episodic"};
  int threads = 0;
  int64_t seed = 7;
  MemoryOptions memory;  // parameters other than --memory apply to every policy
};

struct Outcome {
  std::string policy, answer;
  bool correct = false;
  int needle_layers = 0;  // layers whose question block attended to the whole needle
  int64_t units = 0;
  uint64_t bytes = 0;
  double prefill_tps = 0, decode_tps = 0;
};

std::string default_filler() {
  // The full held-out split when prepare_data.py has produced it (scripts/demo.sh does), else the
  // committed sample.
  const std::string full = std::string(ENGRAM_SOURCE_DIR) + "/build/data/heldout.txt";
  if (std::filesystem::exists(full)) return full;
  return std::string(ENGRAM_SOURCE_DIR) + "/data/heldout_sample.txt";
}

const char* what_it_does(const std::string& policy) {
  if (policy == "sinks") {
    return "StreamingLLM: keeps the first tokens and a sliding local window; stable, but "
           "forgets what left the window";
  }
  if (policy == "episodic") {
    return "EM-LLM: cuts the stream into events where the model is surprised, and retrieves "
           "the events most like the current query";
  }
  if (policy == "blocks") {
    return "InfLLM: fixed-size blocks with representative keys, top-k retrieval";
  }
  if (policy == "window") return "the last n_local tokens only";
  return "dense attention over everything (limited to the trained context)";
}

void demo(const DemoOptions& o) {
  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  const auto task = make_needle_task<PasskeyTask>("demo", *tok, o.filler);
  std::mt19937_64 rng(static_cast<uint64_t>(o.seed));
  const PasskeyPrompt prompt = task.make(o.length, o.depth, rng);

  std::printf("engram demo: %s (%lld-token trained context, threads: %d)\n", o.model.c_str(),
              (long long)model->config().n_ctx_train, pool.size());
  std::printf(
      "The stream: %lld tokens of %s with one sentence hidden at token %lld (%.0f%% deep):\n"
      "  \"%s\"\nthen the question: \"%s\"\n\n",
      (long long)prompt.tokens.size(), o.filler.c_str(), (long long)prompt.needle_begin,
      100 * o.depth, fill_wording(kPasskeyNeedle, prompt.key).c_str(), kPasskeyQuestion);

  std::vector<Outcome> results;
  for (const std::string& policy : o.policies) {
    MemoryOptions m = o.memory;
    m.params.kind = policy;
    Context ctx(*model, pool, {}, make_policy(m, *model, 0));
    std::printf("== --memory %s: %s\n", policy.c_str(), what_it_does(policy));
    std::fflush(stdout);
    Outcome r;
    r.policy = policy;
    const TokenRange needle[1] = {{prompt.needle_begin, prompt.needle_end}};
    const NeedleReading read =
        read_needle_prompt(ctx, *tok, prompt.tokens, prompt.question_begin, needle, 8, true);
    const int n_layer = model->config().n_layer;
    r.prefill_tps = read.prefill_tps;
    r.decode_tps = read.decode_tps;
    r.needle_layers = read.layers_with_needle[0];
    r.units = read.units;
    r.bytes = read.memory_bytes;
    r.answer = read.answer;
    const size_t nl = r.answer.find('\n');
    if (nl != std::string::npos) r.answer.resize(nl);
    r.correct = passkey_answer_matches(r.answer, prompt.key);
    std::printf("   answer: \"%s\" -> %s (the key is %s)\n", r.answer.c_str(),
                r.correct ? "correct" : "wrong", prompt.key.c_str());
    std::printf("   needle among the tokens attended while reading the question: %d of %d layers\n",
                r.needle_layers, n_layer);
    std::printf(
        "   memory units formed: %lld, memory held: %s, prefill %.0f tok/s, decode %.1f tok/s\n\n",
        (long long)r.units, format_bytes(r.bytes).c_str(), r.prefill_tps, r.decode_tps);
    results.push_back(r);
  }
  std::printf("%-10s %-8s %-8s %8s %10s %10s\n", "memory", "answer", "needle", "units", "held",
              "prefill/s");
  for (const Outcome& r : results) {
    std::printf("%-10s %-8s %-8s %8lld %10s %10.0f\n", r.policy.c_str(),
                r.correct ? "correct" : "wrong",
                fmt::format("{}/{}", r.needle_layers, model->config().n_layer).c_str(),
                (long long)r.units, format_bytes(r.bytes).c_str(), r.prefill_tps);
  }
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  o->model = default_model_path();
  o->filler = default_filler();
  CLI::App* cmd = app.add_subcommand(
      "demo", "The shipped model finds a pass key in a long stream, once per memory policy");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("--filler", o->filler, "Haystack text")->capture_default_str();
  cmd->add_option("--length", o->length, "Stream length in tokens")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{64}, int64_t{1} << 30));
  cmd->add_option("--depth", o->depth, "Where the key is hidden, 0..1")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--policies", o->policies, "Memory policies to run, in order")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the key and the filler offset")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  add_memory_options(cmd, o->memory);
  cmd->remove_option(cmd->get_option("--memory"));  // --policies chooses them
  cmd->callback([o] { demo(*o); });
}

}  // namespace engram::cli
