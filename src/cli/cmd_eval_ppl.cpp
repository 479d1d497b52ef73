// `engram eval ppl`: streaming perplexity under a memory policy. The text (one or more files,
// joined by a blank line) is one stream read by chunked prefill; every token is scored from
// everything before it as the policy keeps it, and the perplexity of each bucket of N
// consecutive tokens is reported as a curve over position, beside the overall figure.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
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

struct PplOptions {
  std::string model;
  std::vector<std::string> files;
  int64_t max_tokens = 0;
  int64_t bucket = 4096;
  int threads = 0;
  std::string json_out;
  std::string csv_out;
  bool quiet = false;
  MemoryOptions memory;
};

struct Bucket {
  int64_t end = 0;  // tokens [end - n, end) of the stream were predicted
  int64_t n = 0;
  double nll = 0;  // sum
  int64_t cells_held = 0, units = 0;
  uint64_t memory_bytes = 0;
  double tok_per_s = 0;
};

void ppl(const PplOptions& o) {
  if (o.files.empty()) throw Error("eval ppl: -f FILE is required");
  if (o.bucket < 1) throw Error(fmt::format("eval ppl: --bucket must be >= 1, got {}", o.bucket));
  if (o.max_tokens < 0) {
    throw Error(fmt::format("eval ppl: --max-tokens must be >= 0, got {}", o.max_tokens));
  }
  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  std::string text;
  for (const std::string& f : o.files) {
    if (!text.empty()) text += "\n\n";
    text += read_text_file(f);
  }
  std::vector<int32_t> tokens = tok->encode(text, tok->add_bos(), false);
  text.clear();
  text.shrink_to_fit();
  if (o.max_tokens > 0 && int64_t(tokens.size()) > o.max_tokens) tokens.resize(o.max_tokens);

  ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
  Context ctx(*model, pool, {}, make_policy(o.memory, *model, 0));
  const std::string name = ctx.policy().name();
  bool truncated = false;
  if (int64_t(tokens.size()) > ctx.n_ctx()) {
    // `full` cannot hold the stream: score what it holds and say so.
    std::fprintf(stderr, "[%s] stream cut to the %lld tokens it holds (of %zu)\n", name.c_str(),
                 (long long)ctx.n_ctx(), tokens.size());
    tokens.resize(ctx.n_ctx());
    truncated = true;
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < 2) throw Error("eval ppl: the text has fewer than 2 tokens");

  std::vector<Bucket> curve;
  Bucket cur;
  double sum = 0;
  int64_t count = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t slice = static_cast<int64_t>(stream_slice(ctx, 2048));
  for (int64_t a = 0; a < n; a += slice) {
    const int64_t b = std::min(n, a + slice);
    ctx.eval(std::span<const int32_t>(tokens.data() + a, size_t(b - a)), /*all_logits=*/true);
    // Logits of token t predict token t + 1.
    for (int64_t t = a; t < b && t + 1 < n; ++t) {
      const double v = token_nll(ctx.logits(t - a), tokens[t + 1]);
      sum += v;
      ++count;
      cur.nll += v;
      ++cur.n;
      if (cur.n == o.bucket || t + 2 == n) {
        const MemoryStats m = ctx.memory_stats();
        cur.end = t + 2;
        cur.cells_held = m.cells_held;
        cur.units = m.units;
        cur.memory_bytes = ctx.memory_bytes();
        cur.tok_per_s = double(b) / std::max(seconds_since(t0), 1e-9);
        curve.push_back(cur);
        cur = Bucket();
      }
    }
    if (!o.quiet) {
      const double secs = seconds_since(t0);
      std::fprintf(stderr,
                   "\r[%s] %lld/%lld tokens %3.0f%% | %.0f tok/s | ppl %.2f (last bucket %.2f) | "
                   "units %lld | %s   ",
                   name.c_str(), (long long)b, (long long)n, 100.0 * b / n,
                   b / std::max(secs, 1e-9), std::exp(sum / count),
                   curve.empty() ? 0.0 : std::exp(curve.back().nll / curve.back().n),
                   (long long)ctx.memory_stats().units, format_bytes(ctx.memory_bytes()).c_str());
      std::fflush(stderr);
    }
  }
  if (!o.quiet) std::fputc('\n', stderr);
  const double secs = seconds_since(t0);
  const double overall = std::exp(sum / count);
  const double first = std::exp(curve.front().nll / curve.front().n);
  const double last = std::exp(curve.back().nll / curve.back().n);
  std::printf(
      "memory %s: ppl %.3f over %lld tokens (first bucket %.3f, last %.3f; bucket %lld tokens), "
      "%.0f tok/s\n",
      name.c_str(), overall, (long long)count, first, last, (long long)o.bucket,
      n / std::max(secs, 1e-9));

  if (!o.json_out.empty()) {
    nlohmann::json j;
    j["task"] = "ppl";
    j["model"] = o.model;
    j["files"] = o.files;
    j["memory"] = name;
    j["n_tokens"] = n;
    j["truncated"] = truncated;
    j["n_scored"] = count;
    j["bucket"] = o.bucket;
    j["ppl"] = overall;
    j["mean_nll"] = sum / count;
    j["seconds"] = secs;
    j["tok_per_s"] = n / std::max(secs, 1e-9);
    j["curve"] = nlohmann::json::array();
    for (const Bucket& c : curve) {
      j["curve"].push_back({{"end", c.end},
                            {"n", c.n},
                            {"ppl", std::exp(c.nll / c.n)},
                            {"cells_held", c.cells_held},
                            {"units", c.units},
                            {"memory_bytes", c.memory_bytes},
                            {"tok_per_s", c.tok_per_s}});
    }
    std::ofstream f = open_output(o.json_out, "eval ppl", "--json");
    f << j.dump(2) << "\n";
  }
  if (!o.csv_out.empty()) {
    std::ofstream f = open_output(o.csv_out, "eval ppl", "--csv");
    f << "memory,end,n,ppl,cells_held,units,memory_bytes,tok_per_s\n";
    for (const Bucket& c : curve) {
      f << fmt::format("{},{},{},{:.6f},{},{},{},{:.1f}\n", name, c.end, c.n, std::exp(c.nll / c.n),
                       c.cells_held, c.units, c.memory_bytes, c.tok_per_s);
    }
  }
}

}  // namespace

void add_eval_ppl_command(CLI::App* eval) {
  auto o = std::make_shared<PplOptions>();
  o->model = default_model_path();
  CLI::App* cmd =
      eval->add_subcommand("ppl", "Streaming perplexity under a memory policy, over position");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-f,--file", o->files, "Text file(s), read as one stream joined by blank lines")
      ->required();
  cmd->add_option("--max-tokens", o->max_tokens, "Read at most this many tokens (0: all)");
  cmd->add_option("--bucket", o->bucket, "Tokens per point of the curve")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--json", o->json_out, "Write the figure and the curve as JSON");
  cmd->add_option("--csv", o->csv_out, "Write the curve as CSV");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  add_memory_options(cmd, o->memory);
  cmd->callback([o] { ppl(*o); });
}

}  // namespace engram::cli
