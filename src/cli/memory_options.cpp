#include "cli/memory_options.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>

#include "cli/common.h"
#include "engram/context.h"
#include "engram/error.h"
#include "engram/model.h"

namespace engram::cli {

void add_memory_options(CLI::App* cmd, MemoryOptions& o) {
  MemoryParams& p = o.params;
  const std::string g = "Memory";
  cmd->add_option("--memory", p.kind, "KV memory policy: full|window|sinks|blocks|episodic")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--n-local", p.n_local,
                  "Local window in tokens (default: 3/4 of the trained "
                  "context)")
      ->group(g);
  cmd->add_option("--n-sink", p.n_sink, "sinks: initial tokens kept")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--n-init", p.n_init, "blocks/episodic: initial tokens kept")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--block-size", p.block_size, "blocks: tokens per memory block")->group(g);
  cmd->add_option("--topk", p.topk, "blocks: memory blocks loaded per query block")->group(g);
  cmd->add_option("--repr-topk", p.repr_topk, "blocks/episodic: representative keys per unit")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--n-mem", p.n_mem, "episodic: retrieved tokens per query block")->group(g);
  cmd->add_option("--gamma", p.gamma, "episodic: boundary threshold in std devs of surprise")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--tau", p.tau, "episodic: surprise statistics window (default: n_local)")
      ->group(g);
  cmd->add_option("--min-event", p.min_event, "episodic: smallest event")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--max-event", p.max_event, "episodic: largest event")->group(g);
  cmd->add_option("--refine", o.refine, "episodic: boundary refinement none|modularity|conductance")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--retrieve-every", p.retrieve_every,
                  "blocks/episodic: decode steps and prefill chunks reuse the last retrieval "
                  "for this many tokens (1: retrieve at every block; a question always "
                  "retrieves)")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--chunk-gate", p.chunk_gate,
                  "blocks/episodic: a prefill chunk loads a memory unit only if it scores this "
                  "many nats above the local window (-1e9: always load the best, as the "
                  "reference systems do)")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--lexical", p.lexical,
                  "blocks/episodic: nats a question adds to a memory unit sharing all its words "
                  "(BM25 over token ids; 0: attention alone)")
      ->capture_default_str()
      ->group(g);
  cmd->add_flag("--shared-retrieval,!--no-shared-retrieval", p.shared_retrieval,
                "blocks/episodic: read a question twice, every layer loading the units all "
                "layers chose (--no-shared-retrieval: each layer loads only its own)")
      ->capture_default_str()
      ->group(g);
  cmd->add_flag("--kv-f16", p.kv_f16, "Store K/V as f16 (all policies but full)")->group(g);
  cmd->add_option("--kv-dir", p.kv_dir,
                  "blocks/episodic: move memory units' K/V out of RAM into a temporary file in "
                  "this directory (removed at once; freed when engram exits)")
      ->group(g);
  cmd->add_option("--kv-cache", p.kv_cache_mib,
                  "blocks/episodic with --kv-dir: MiB of the memory file kept in RAM")
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--contiguity", p.contiguity, "episodic: share of n_mem for neighbours of hits")
      ->capture_default_str()
      ->group(g);
}

MemoryParams memory_params(const MemoryOptions& o, int64_t n_ctx) {
  MemoryParams p = o.params;
  if (o.refine == "none") {
    p.refine = Refine::none;
  } else if (o.refine == "modularity") {
    p.refine = Refine::modularity;
  } else if (o.refine == "conductance") {
    p.refine = Refine::conductance;
  } else {
    throw Error(fmt::format("--refine '{}' is not one of none, modularity, conductance", o.refine));
  }
  p.n_ctx = n_ctx;
  return p;
}

std::unique_ptr<MemoryPolicy> make_policy(const MemoryOptions& o, const Model& model,
                                          int64_t n_ctx) {
  return make_memory_policy(memory_params(o, n_ctx), model_shape(model.config()));
}

void refuse_memory_flags(const CLI::App& cmd, const std::string& why) {
  for (const CLI::Option* opt : cmd.get_options()) {
    if (opt->get_group() != "Memory" || opt->count() == 0) continue;
    const std::string name = opt->get_name();
    if (name == "--kv-dir" || name == "--kv-cache") continue;
    throw Error(fmt::format("{} cannot be used here: {}", name, why));
  }
}

std::string format_bytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.2f} GiB", b / double(1ull << 30));
  return fmt::format("{:.1f} MiB", b / double(1ull << 20));
}

void draw_progress(const Context& ctx, const std::string& where, double fraction, int64_t tokens,
                   double secs) {
  const MemoryStats m = ctx.memory_stats();
  const std::string name = ctx.policy().name();
  const char* units = name == "episodic" ? "events" : name == "blocks" ? "blocks" : "units";
  const std::string disk =
      m.bytes_on_disk > 0 ? " + " + format_bytes(m.bytes_on_disk) + " on disk" : std::string();
  std::fprintf(stderr, "\r[%s] %s %3.0f%% | %.0f tok/s | %s %lld | held %lld cells, %s%s   ",
               name.c_str(), where.c_str(), 100.0 * fraction, tokens / std::max(secs, 1e-9), units,
               (long long)m.units, (long long)m.cells_held,
               format_bytes(ctx.memory_bytes()).c_str(), disk.c_str());
  std::fflush(stderr);
}

void prefill(Context& ctx, std::span<const int32_t> tokens, bool progress) {
  const auto t0 = std::chrono::steady_clock::now();
  eval_in_slices(ctx, tokens, [&](int64_t done, int64_t total) {
    if (!progress) return;
    draw_progress(ctx, fmt::format("{}/{} tokens", done, total), double(done) / total, done,
                  seconds_since(t0));
  });
  if (progress) std::fputc('\n', stderr);
}

size_t prompt_tail(const Context& ctx, std::span<const int32_t> tokens, int32_t newline) {
  const size_t n = tokens.size(), limit = static_cast<size_t>(ctx.block_limit());
  if (n <= limit) return 0;
  for (size_t k = 1; k < limit && k <= n; ++k) {
    if (tokens[n - k] != newline) continue;
    if (k - 1 >= 2) return k - 1;
    break;
  }
  return std::min(kPromptTail, limit - 1);
}

void prefill_prompt(Context& ctx, std::span<const int32_t> tokens, int32_t newline, bool progress) {
  const size_t tail = prompt_tail(ctx, tokens, newline);
  prefill(ctx, tokens.first(tokens.size() - tail), progress);
  if (tail > 0) ctx.eval(tokens.last(tail));
}

}  // namespace engram::cli
