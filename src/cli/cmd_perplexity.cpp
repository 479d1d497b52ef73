// `engram perplexity`: perplexity over a text file, computed as llama.cpp's llama-perplexity
// does so figures compare across engines: the text is tokenized once (with BOS), cut into
// non-overlapping windows of n_ctx tokens, the first token of each window is replaced by BOS,
// and only the second half of each window is scored (tokens n_ctx/2+1 .. n_ctx-1, predicted
// from the full left context of the window).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
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
};

// -log softmax(logits)[target], in double for a stable sum over many tokens.
double nll(std::span<const float> logits, int32_t target) {
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - mx);
  return std::log(sum) - (double(logits[target]) - mx);
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
      const double v = nll(ctx.logits(j), window[j + 1]);
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
    std::printf("Final estimate: PPL = %.4f +/- %.5f  (%lld chunks of %lld tokens, %lld scored, "
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
  cmd->callback([o] { perplexity(*o); });
}

}  // namespace engram::cli
