// `engram bench memory`: the cost of a memory policy as a stream grows. One stream of text is
// prefilled up to each length in turn (4k, 32k, 128k, 1M tokens by default); at each length the
// prefill speed since the previous length, the decode time per token (greedy, single-token
// steps), the units formed, the memory held and the peak RSS of the process are reported. Beside
// wall-clock time, the process CPU time is reported: on a machine shared with other work, CPU
// time per token (with one thread) measures the work itself, wall time the wait as well.
#include <fmt/format.h>
#include <sys/resource.h>
#include <time.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
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
#include "kernels/matmul.h"

namespace engram::cli {
namespace {

struct BenchMemoryOptions {
  std::string model;
  std::vector<std::string> files;
  std::vector<int64_t> lengths = {4096, 32768, 131072, 1048576};
  int decode = 64;
  int threads = 0;
  int n_batch = 512;
  bool json = false;
  MemoryOptions memory;
};

// Peak resident set of this process so far, in bytes.
uint64_t peak_rss() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

// CPU time of every thread of this process, in seconds.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

void bench_memory(const BenchMemoryOptions& o) {
  if (o.files.empty()) throw Error("bench memory: give the stream text with -f FILE (repeatable)");
  if (o.lengths.empty()) throw Error("bench memory: --lengths is empty");
  for (size_t i = 0; i < o.lengths.size(); ++i) {
    if (o.lengths[i] < 1 || (i > 0 && o.lengths[i] <= o.lengths[i - 1])) {
      throw Error(fmt::format("bench memory: --lengths must be increasing and >= 1, got {} at {}",
                              o.lengths[i], i));
    }
  }
  if (o.decode < 1)
    throw Error(fmt::format("bench memory: --decode must be >= 1, got {}", o.decode));
  if (o.threads < 0) throw Error(fmt::format("bench memory: -t must be >= 1, got {}", o.threads));

  auto model = Model::load(o.model);
  auto tok = Tokenizer::from_gguf(model->file());
  const int threads = o.threads > 0 ? o.threads : default_thread_count();
  ThreadPool pool(threads);
  auto say = [&](const std::string& s) {
    if (!o.json) std::fprintf(stderr, "%s\n", s.c_str());
  };

  // The stream: the files in order, repeated if they are shorter than the longest length.
  std::vector<int32_t> text;
  for (size_t i = 0; i < o.files.size(); ++i) {
    const auto ids = tok->encode(read_text_file(o.files[i]), i == 0 && tok->add_bos(), false);
    text.insert(text.end(), ids.begin(), ids.end());
  }
  if (text.empty()) throw Error("bench memory: the stream text is empty after tokenization");
  const int64_t longest = o.lengths.back();
  const double repeats = double(longest) / double(text.size());

  ContextParams cp;
  cp.n_batch = o.n_batch;
  Context ctx(*model, pool, cp, make_policy(o.memory, *model, 0));
  if (ctx.n_ctx() < longest + int64_t(o.lengths.size()) * o.decode) {
    throw Error(
        fmt::format("bench memory: the '{}' policy holds {} tokens, fewer than the longest "
                    "length {} (choose --memory sinks|blocks|episodic)",
                    ctx.policy().name(), ctx.n_ctx(), longest));
  }
  say(fmt::format("model: {} | policy: {} | threads: {} | kernels: {}", o.model,
                  ctx.policy().name(), threads, matmul_isa()));
  say(fmt::format("stream: {} tokens of text{}", text.size(),
                  repeats > 1 ? fmt::format(", repeated to reach {} tokens", longest) : ""));
  say(fmt::format("{:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8} {:>10} {:>10} {:>10}", "tokens",
                  "prefill t/s", "(cpu t/s)", "stream t/s", "decode ms/t", "(cpu ms/t)", "units",
                  "held", "on disk", "peak RSS"));

  nlohmann::json out;
  out["model"] = o.model;
  out["policy"] = ctx.policy().name();
  out["threads"] = threads;
  out["isa"] = matmul_isa();
  out["text_tokens"] = text.size();
  out["decode_tokens"] = o.decode;
  out["rows"] = nlohmann::json::array();

  size_t cursor = 0;  // next token of `text` to feed
  double prefill_secs = 0;
  int64_t prefilled = 0;
  const size_t slice = stream_slice(ctx, 4096);
  std::vector<int32_t> buf;
  for (int64_t target : o.lengths) {
    const int64_t start = ctx.n_past();
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    while (ctx.n_past() < target) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(slice, target - ctx.n_past()));
      buf.clear();
      for (size_t i = 0; i < n; ++i) {
        buf.push_back(text[cursor]);
        cursor = (cursor + 1) % text.size();
      }
      ctx.eval(buf);
      if (!o.json) {
        const double s = seconds_since(t0);
        std::fprintf(stderr, "\r  prefill %lld/%lld tokens, %.0f tok/s   ", (long long)ctx.n_past(),
                     (long long)target, (ctx.n_past() - start) / std::max(s, 1e-9));
        std::fflush(stderr);
      }
    }
    const double secs = seconds_since(t0);
    const double cpu_secs = cpu_seconds() - c0;
    prefill_secs += secs;
    prefilled += ctx.n_past() - start;
    if (!o.json) std::fprintf(stderr, "\r%*s\r", 60, "");

    // Decode: greedy single-token steps from here (they join the stream).
    double worst = 0;
    const double c1 = cpu_seconds();
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.decode; ++i) {
      const auto ts = std::chrono::steady_clock::now();
      const int32_t one[1] = {argmax(ctx.logits())};
      ctx.eval(one);
      worst = std::max(worst, seconds_since(ts));
    }
    const double decode_ms = 1e3 * seconds_since(t1) / o.decode;
    const double decode_cpu_ms = 1e3 * (cpu_seconds() - c1) / o.decode;

    const MemoryStats m = ctx.memory_stats();
    const double seg_tokens = double(ctx.n_past() - o.decode - start);
    const double seg_tps = seg_tokens / std::max(secs, 1e-9);
    const double seg_cpu_tps = seg_tokens / std::max(cpu_secs, 1e-9);
    const double stream_tps = prefilled / std::max(prefill_secs, 1e-9);
    const uint64_t rss = peak_rss();
    say(fmt::format(
        "{:>9} {:>11.0f} {:>11.0f} {:>11.0f} {:>11.3f} {:>11.3f} {:>8} {:>10} {:>10} {:>10}",
        target, seg_tps, seg_cpu_tps, stream_tps, decode_ms, decode_cpu_ms, m.units,
        format_bytes(ctx.memory_bytes()), format_bytes(m.bytes_on_disk), format_bytes(rss)));
    nlohmann::json row;
    row["tokens"] = target;
    row["prefill_tok_per_s"] = seg_tps;
    row["prefill_tok_per_cpu_s"] = seg_cpu_tps;
    row["stream_prefill_tok_per_s"] = stream_tps;
    row["decode_ms_per_token"] = decode_ms;
    row["decode_cpu_ms_per_token"] = decode_cpu_ms;
    row["decode_worst_ms"] = worst * 1e3;
    row["units"] = m.units;
    row["cells_held"] = m.cells_held;
    row["memory_bytes"] = ctx.memory_bytes();
    row["bytes_on_disk"] = m.bytes_on_disk;
    row["peak_rss_bytes"] = rss;
    out["rows"].push_back(row);
  }
  const auto& rows = out["rows"];
  auto ratio = [&](const char* key) {
    return rows.back()[key].get<double>() / rows.front()[key].get<double>();
  };
  out["decode_ratio_last_first"] = ratio("decode_ms_per_token");
  out["decode_cpu_ratio_last_first"] = ratio("decode_cpu_ms_per_token");
  out["stream_prefill_tok_per_s"] = prefilled / std::max(prefill_secs, 1e-9);
  say(fmt::format("decode time per token at {} vs {} tokens: x{:.2f} wall, x{:.2f} cpu",
                  o.lengths.back(), o.lengths.front(), ratio("decode_ms_per_token"),
                  ratio("decode_cpu_ms_per_token")));
  if (o.json) std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace

void add_bench_memory_command(CLI::App& bench) {
  auto o = std::make_shared<BenchMemoryOptions>();
  o->model = default_model_path();
  o->memory.params.kind = "episodic";
  CLI::App* cmd = bench.add_subcommand(
      "memory", "Cost of a memory policy as a stream grows: prefill, decode, memory, peak RSS");
  cmd->add_option("-m,--model", o->model, "GGUF model file")->capture_default_str();
  cmd->add_option("-f,--file", o->files, "Stream text, in order (repeatable); repeated if short")
      ->required();
  cmd->add_option("--lengths", o->lengths, "Stream lengths to report at, increasing")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--decode", o->decode, "Decode steps timed at each length")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores, at most 8)");
  cmd->add_option("--batch", o->n_batch, "Prefill chunk size")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print results as JSON on stdout");
  add_memory_options(cmd, o->memory);
  cmd->callback([o] { bench_memory(*o); });
}

}  // namespace engram::cli
