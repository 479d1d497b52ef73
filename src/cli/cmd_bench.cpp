// `engram bench`: prefill and decode speed of a model on this machine, next to the machine's
// own memory read bandwidth, so decode can be judged against its roofline.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "kernels/matmul.h"
#include "util/read_bandwidth.h"

namespace engram::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::vector<int> prefill = {512, 4096};
  int decode = 128;
  std::vector<int> decode_ctx = {0};  // depths: tokens cached before the timed decode steps
  int threads = 0;
  int reps = 2;
  bool json = false;
};

std::vector<int32_t> random_tokens(int n, int n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % uint32_t(n_vocab));
  return t;
}

void bench(const BenchOptions& o) {
  if (o.decode < 0) throw Error(fmt::format("bench: --decode must be >= 0, got {}", o.decode));
  for (int n : o.decode_ctx) {
    if (n < 0) throw Error(fmt::format("bench: --decode-ctx depths must be >= 0, got {}", n));
  }
  if (o.reps < 1) throw Error(fmt::format("bench: --reps must be >= 1, got {}", o.reps));
  for (int n : o.prefill) {
    if (n < 1) throw Error(fmt::format("bench: --prefill sizes must be >= 1, got {}", n));
  }
  auto model = Model::load(o.model);
  const ModelConfig& c = model->config();
  const int threads = o.threads > 0 ? o.threads : default_thread_count();
  ThreadPool pool(threads);
  auto say = [&](const std::string& s) {
    if (!o.json) std::fprintf(stderr, "%s\n", s.c_str());
  };
  say(fmt::format("model: {} ({} {}L {}d, {:.1f}M params, {:.1f} MiB of weights read per token)",
                  o.model, c.arch, c.n_layer, c.n_embd, model->n_params() / 1e6,
                  model->weight_bytes() / 1048576.0));
  say(fmt::format("threads: {}, kernels: {}", threads, matmul_isa()));

  const double bw = measure_read_bandwidth(pool);
  say(fmt::format("memory read bandwidth: {:.2f} GB/s", bw / 1e9));

  nlohmann::json out;
  out["model"] = o.model;
  out["arch"] = c.arch;
  out["n_params"] = model->n_params();
  out["weight_bytes"] = model->weight_bytes();
  out["threads"] = threads;
  out["isa"] = matmul_isa();
  out["bandwidth_bytes_per_s"] = bw;

  for (int n : o.prefill) {
    ContextParams cp;
    cp.n_ctx = std::max<int64_t>(n + o.decode, c.n_ctx_train);
    Context ctx(*model, pool, cp);
    auto tokens = random_tokens(n, c.n_vocab, 1234);
    double best = 0;
    for (int r = 0; r < o.reps; ++r) {
      ctx.clear();
      auto t0 = std::chrono::steady_clock::now();
      ctx.eval(tokens);
      best = std::max(best, n / seconds_since(t0));
    }
    say(fmt::format("prefill {:>5} tokens: {:8.1f} tok/s", n, best));
    out["prefill"][std::to_string(n)] = best;
  }

  // Decode from an empty context (the weights' roofline) and at each further depth: the steps
  // of a long conversation attend to everything before them, a cache filled first, untimed.
  for (size_t di = 0; o.decode > 0 && di < o.decode_ctx.size(); ++di) {
    const int depth = o.decode_ctx[di];
    ContextParams cp;
    cp.n_ctx = std::max<int64_t>(int64_t{depth} + o.decode + 1, c.n_ctx_train);
    Context ctx(*model, pool, cp);
    auto tokens = random_tokens(o.decode, c.n_vocab, 99);
    auto prompt = random_tokens(depth, c.n_vocab, 1234);
    double best = 0;
    for (int r = 0; r < o.reps; ++r) {
      ctx.clear();
      if (!prompt.empty()) ctx.eval(prompt);
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < o.decode; ++i) ctx.eval(std::span<const int32_t>(&tokens[i], 1));
      best = std::max(best, o.decode / seconds_since(t0));
    }
    const double roofline = double(model->weight_bytes()) * best / bw;
    say(fmt::format(
        "decode  {:>5} tokens at depth {:>5}: {:8.1f} tok/s  ({:.2f} GB/s of weights, {:.0f}% of "
        "measured bandwidth)",
        o.decode, depth, best, model->weight_bytes() * best / 1e9, roofline * 100));
    out["decode_at"][std::to_string(depth)] = best;
    if (di == 0) {  // the first depth (0 by default) also under the keys of earlier versions
      out["decode_tokens"] = o.decode;
      out["decode"] = best;
      out["decode_roofline_ratio"] = roofline;
    }
  }
  if (o.json) std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  o->model = default_model_path();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill/decode speed and memory bandwidth");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("--prefill", o->prefill, "Prompt sizes to time")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--decode", o->decode, "Tokens to decode (0: skip)")->capture_default_str();
  cmd->add_option("--decode-ctx", o->decode_ctx,
                  "Depths to decode at: prompt tokens cached before the timed decode steps")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--reps", o->reps, "Repetitions; the best is reported")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print results as JSON on stdout");
  add_bench_memory_command(*cmd);
  add_bench_grammar_command(*cmd);
  // A sub-command (`bench memory`, `bench grammar`) runs instead of the model speed benchmark.
  cmd->callback([o, cmd] {
    if (cmd->get_subcommands().empty()) bench(*o);
  });
}

}  // namespace engram::cli
