// `engram perplexity`: perplexity over a text file, computed as llama.cpp's llama-perplexity
// does so figures compare across engines: the text is tokenized once (with BOS), cut into
// non-overlapping windows of n_ctx tokens, the first token of each window is replaced by BOS,
// and only the second half of each window is scored (tokens n_ctx/2+1 .. n_ctx-1, predicted
// from the full left context of the window).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/memory_options.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"

namespace engram::cli {
namespace {

struct PerplexityOptions {
  std::string model;
  std::string file;
  int64_t n_ctx = 0;
  int threads = 0;
  int max_chunks = 0;
  bool json = false;
  MemoryOptions memory;
  int64_t every = 4096;
  int64_t max_tokens = 0;
};

// With a memory policy other than `full` the file is one stream: every token is scored from
// everything before it as the policy keeps it, and the perplexity of each `every` tokens is
// reported as a curve over position.
void stream_perplexity(const PerplexityOptions& o, const Model& model,
                       std::vector<int32_t> tokens) {
  if (o.every < 1) throw Error(fmt::format("perplexity: --every must be >= 1, got {}", o.every));
  if (o.max_tokens > 0 && int64_t(tokens.size()) > o.max_tokens) tokens.resize(o.max_tokens);
  if (tokens.size() < 2) throw Error(fmt::format("perplexity: '{}' has too few tokens", o.file));
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  Context ctx(model, pool, {}, make_policy(o.memory, model, o.n_ctx));
  const int64_t n = static_cast<int64_t>(tokens.size());
  double sum = 0, seg_sum = 0;
  int64_t count = 0, seg_count = 0;
  nlohmann::json curve = nlohmann::json::array();
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t slice = 2048;
  for (int64_t a = 0; a < n; a += slice) {
    const int64_t b = std::min(n, a + slice);
    ctx.eval(std::span<const int32_t>(tokens.data() + a, size_t(b - a)), /*all_logits=*/true);
    for (int64_t t = a; t < b && t + 1 < n; ++t) {
      const double v = token_nll(ctx.logits(t - a), tokens[t + 1]);
      sum += v;
      seg_sum += v;
      ++count;
      if (++seg_count == o.every || t + 2 == n) {
        const MemoryStats m = ctx.memory_stats();
        curve.push_back({{"pos", t + 2},
                         {"ppl", std::exp(seg_sum / seg_count)},
                         {"cells_held", m.cells_held},
                         {"units", m.units},
                         {"memory_bytes", ctx.memory_bytes()}});
        if (!o.json) {
          std::fprintf(stderr, "[%lld] %.4f | held %lld cells, %s, %.0f tok/s\n",
                       (long long)(t + 2), std::exp(seg_sum / seg_count), (long long)m.cells_held,
                       format_bytes(ctx.memory_bytes()).c_str(), (t + 2) / seconds_since(t0));
        }
        seg_sum = 0;
        seg_count = 0;
      }
    }
  }
  const double secs = seconds_since(t0);
  const double ppl = std::exp(sum / count);
  if (o.json) {
    nlohmann::json j;
    j["file"] = o.file;
    j["model"] = o.model;
    j["memory"] = ctx.policy().name();
    j["n_tokens"] = n;
    j["n_scored"] = count;
    j["mean_nll"] = sum / count;
    j["ppl"] = ppl;
    j["seconds"] = secs;
    j["curve"] = curve;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "Final estimate: PPL = %.4f  (stream of %lld tokens, memory %s, %lld scored, %.1f s)\n",
        ppl, (long long)n, ctx.policy().name().c_str(), (long long)count, secs);
  }
}

void perplexity(const PerplexityOptions& o) {
  if (o.file.empty()) throw Error("perplexity: -f FILE is required");
  if (o.n_ctx < 0 || o.n_ctx == 1) {
    throw Error(fmt::format("perplexity: --ctx must be >= 2, got {}", o.n_ctx));
  }
  const std::string text = read_text_file(o.file);
  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  const int64_t n_ctx = o.n_ctx > 0 ? o.n_ctx : model->config().n_ctx_train;
  std::vector<int32_t> tokens = tok->encode(text, tok->add_bos(), false);
  if (o.memory.params.kind != "full") return stream_perplexity(o, *model, std::move(tokens));
  int64_t n_chunk = int64_t(tokens.size()) / n_ctx;
  if (o.max_chunks > 0) n_chunk = std::min<int64_t>(n_chunk, o.max_chunks);
  if (n_chunk < 1) {
    throw Error(fmt::format("perplexity: '{}' has {} tokens; need at least --ctx = {}", o.file,
                            tokens.size(), n_ctx));
  }
  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_batch = static_cast<int>(std::min<int64_t>(n_ctx, 512));
  Context ctx(*model, pool, cp);

  const int64_t first = n_ctx / 2;
  double sum = 0, sum2 = 0;
  int64_t count = 0;
  std::vector<double> running;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n_chunk; ++i) {
    std::vector<int32_t> window(tokens.begin() + i * n_ctx, tokens.begin() + (i + 1) * n_ctx);
    if (tok->add_bos()) window[0] = tok->bos();
    ctx.clear();
    ctx.eval(window, /*all_logits=*/true);
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const double v = token_nll(ctx.logits(j), window[j + 1]);
      sum += v;
      sum2 += v * v;
      ++count;
    }
    running.push_back(std::exp(sum / count));
    if (!o.json) {
      std::fprintf(stderr, "[%lld]%.4f,", (long long)(i + 1), running.back());
      std::fflush(stderr);
    }
  }
  const double mean = sum / count;
  // Standard error of the mean NLL, carried to the perplexity (as llama.cpp reports it).
  const double var = std::max(0.0, sum2 / count - mean * mean);
  const double ppl = std::exp(mean);
  const double ppl_err = ppl * std::sqrt(var / std::max<int64_t>(1, count - 1));
  const double secs = seconds_since(t0);
  if (o.json) {
    nlohmann::json j;
    j["file"] = o.file;
    j["model"] = o.model;
    j["n_ctx"] = n_ctx;
    j["n_tokens"] = tokens.size();
    j["n_chunks"] = n_chunk;
    j["n_scored"] = count;
    j["mean_nll"] = mean;
    j["ppl"] = ppl;
    j["ppl_stderr"] = ppl_err;
    j["seconds"] = secs;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::fprintf(stderr, "\n");
    std::printf(
        "Final estimate: PPL = %.4f +/- %.5f  (%lld chunks of %lld tokens, %lld scored, "
        "%.1f s)\n",
        ppl, ppl_err, (long long)n_chunk, (long long)n_ctx, (long long)count, secs);
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  o->model = default_model_path();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text file");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-f,--file", o->file, "Text file")->required();
  cmd->add_option("--ctx", o->n_ctx, "Window size (default: the model's trained context)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--chunks", o->max_chunks, "Score at most this many windows (0: all)");
  cmd->add_flag("--json", o->json, "Print the result as JSON on stdout");
  cmd->add_option("--every", o->every,
                  "Streaming (--memory other than full): tokens per curve "
                  "point")
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens, "Streaming: score at most this many tokens");
  add_memory_options(cmd, o->memory);
  cmd->callback([o] { perplexity(*o); });
}

}  // namespace engram::cli
