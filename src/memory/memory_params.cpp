// Defaults scaled to the model's trained context, validation, and the policy factory.
#include <fmt/format.h>

#include <cmath>

#include "engram/error.h"
#include "engram/memory.h"
#include "engram/model.h"
#include "memory/policies.h"

namespace engram {
namespace {

[[noreturn]] void refuse(const char* field, const char* flag, double value,
                         const std::string& why) {
  throw Error(fmt::format("memory parameter {} ({} {}) {}", field, flag, value, why));
}

// Written as !(value >= lo) so that NaN is refused too.
void at_least(const char* field, const char* flag, double value, double lo) {
  if (!(value >= lo)) refuse(field, flag, value, fmt::format("must be >= {}", lo));
}

// -1 asks for the default scaled to the trained context; any other negative value is a mistake.
void default_or_value(const char* field, const char* flag, int value) {
  if (value < -1) refuse(field, flag, value, "must be >= 0, or -1 for the default");
}

}  // namespace

ModelShape model_shape(const ModelConfig& c) {
  return {c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.n_ctx_train};
}

MemoryParams resolve_memory_params(const MemoryParams& in, const ModelShape& shape) {
  MemoryParams p = in;
  const int T = shape.n_ctx_train;
  if (T <= 0) throw Error(fmt::format("memory: the model's trained context is {}", T));
  const std::string& k = p.kind;
  if (k != "full" && k != "window" && k != "sinks" && k != "blocks" && k != "episodic") {
    throw Error(
        fmt::format("--memory '{}' is not one of full, window, sinks, blocks, episodic", k));
  }
  // A model trained on T tokens keeps its last 3/4 T as the local window (DESIGN.md: 256-384 for
  // 512); the rest of the trained positions hold the initial tokens and the query block.
  default_or_value("n_local", "--n-local", p.n_local);
  default_or_value("block_size", "--block-size", p.block_size);
  default_or_value("n_mem", "--n-mem", p.n_mem);
  default_or_value("topk", "--topk", p.topk);
  default_or_value("tau", "--tau", p.tau);
  default_or_value("max_event", "--max-event", p.max_event);
  if (p.n_local == -1) p.n_local = T * 3 / 4;
  if (p.block_size == -1) p.block_size = std::max(1, T / 16);
  if (p.n_mem == -1) p.n_mem = std::max(1, T / 4);
  if (p.topk == -1) p.topk = std::max(1, p.n_mem / std::max(1, p.block_size));
  if (p.tau == -1) p.tau = std::max(2, p.n_local);
  if (p.max_event == -1) p.max_event = std::max(p.min_event, T / 8);

  if (!p.kv_dir.empty() && k != "blocks" && k != "episodic") {
    throw Error(fmt::format(
        "memory parameter kv_dir (--kv-dir '{}') needs --memory blocks or episodic: {} keeps no "
        "memory units to move out of RAM",
        p.kv_dir, k));
  }
  if (k == "full") {
    at_least("n_ctx", "--ctx", static_cast<double>(p.n_ctx), 0);
    return p;
  }
  at_least("n_local", "--n-local", p.n_local, 1);
  int reserved = 0;  // trained positions used besides the local window and the query block
  if (k == "sinks") {
    at_least("n_sink", "--n-sink", p.n_sink, 1);
    reserved = p.n_sink;
  } else if (k == "blocks" || k == "episodic") {
    at_least("n_init", "--n-init", p.n_init, 0);
    // Retrieved memory shares the last initial token's position (its own when n_init is 0).
    reserved = std::max(p.n_init, 1);
  }
  if (int64_t{reserved} + p.n_local >= T) {  // in 64 bits: both may be near INT_MAX
    refuse("n_local", "--n-local", p.n_local,
           fmt::format("leaves no room for a query block: {} reserved + n_local must be < the "
                       "model's trained context {}",
                       reserved, T));
  }
  if (k == "blocks" || k == "episodic") {
    at_least("retrieve_every", "--retrieve-every", p.retrieve_every, 1);
    at_least("kv_cache_mib", "--kv-cache", p.kv_cache_mib, 1);
    if (std::isnan(p.chunk_gate)) refuse("chunk_gate", "--chunk-gate", p.chunk_gate, "is NaN");
    at_least("lexical", "--lexical", p.lexical, 0);
    if (!std::isfinite(p.lexical)) refuse("lexical", "--lexical", p.lexical, "must be finite");
  }
  if (k == "blocks") {
    at_least("block_size", "--block-size", p.block_size, 1);
    if (p.block_size > p.n_local) {
      refuse("block_size", "--block-size", p.block_size,
             fmt::format("must be <= n_local {}", p.n_local));
    }
    at_least("topk", "--topk", p.topk, 1);
    at_least("repr_topk", "--repr-topk", p.repr_topk, 1);
  }
  if (k == "episodic") {
    at_least("n_mem", "--n-mem", p.n_mem, 1);
    at_least("repr_topk", "--repr-topk", p.repr_topk, 1);
    at_least("gamma", "--gamma", p.gamma, 0);
    if (!std::isfinite(p.gamma)) refuse("gamma", "--gamma", p.gamma, "must be finite");
    at_least("tau", "--tau", p.tau, 2);
    at_least("min_event", "--min-event", p.min_event, 1);
    if (p.max_event < p.min_event) {
      refuse("max_event", "--max-event", p.max_event,
             fmt::format("must be >= min_event {}", p.min_event));
    }
    if (p.max_event > p.n_local) {
      refuse("max_event", "--max-event", p.max_event,
             fmt::format("must be <= n_local {} (an open event has to fit the local window)",
                         p.n_local));
    }
    if (!(p.contiguity >= 0 && p.contiguity < 1)) {
      refuse("contiguity", "--contiguity", p.contiguity, "must be in [0, 1)");
    }
    // The similarity buffer has to hold the longest event, or such events can never be loaded.
    const int64_t sim_budget = p.n_mem - std::llround(p.contiguity * p.n_mem);
    if (sim_budget < p.max_event) {
      refuse("n_mem", "--n-mem", p.n_mem,
             fmt::format("leaves a similarity buffer of {} tokens (n_mem x (1 - contiguity {})), "
                         "less than max_event {}: the longest events could never be retrieved",
                         sim_budget, p.contiguity, p.max_event));
    }
  }
  return p;
}

std::unique_ptr<MemoryPolicy> make_memory_policy(const MemoryParams& in, const ModelShape& shape) {
  const MemoryParams p = resolve_memory_params(in, shape);
  if (p.kind == "full") return make_full_policy(p.n_ctx > 0 ? p.n_ctx : shape.n_ctx_train);
  if (p.kind == "window" || p.kind == "sinks") return make_sliding_policy(p, shape);
  return make_unit_policy(p, shape);
}

}  // namespace engram
